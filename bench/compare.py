"""finegpt against PyTorch on the same machine, in one run (ratios, not absolute times).

  step   one GPT-2 124M training step (12/12/768, B=4, T=64, fp32, AdamW, clipping):
         `finegpt bench` against bench/torch_step.py, interleaved rounds, same threads.
  char   nanoGPT's CPU recipe on character-level tiny Shakespeare (2000 iterations):
         `finegpt train configs/shakespeare_char_cpu.py` against bench/torch_train_char.py
         (our PyTorch rendering of nanoGPT's loop), wall time and final val loss per seed.

Usage: /usr/bin/python3 bench/compare.py step [--rounds 2] [--threads N]
       /usr/bin/python3 bench/compare.py char [--seeds 1337] [--threads N]
Prints a table and one JSON line per benchmark. Run on a quiet machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINEGPT = os.environ.get("FINEGPT_BIN", os.path.join(ROOT, "build", "finegpt"))
SHAKESPEARE = os.path.join(ROOT, "corpora", "tinyshakespeare.txt")  # corpora/README.md
PY = "/usr/bin/python3"


def last_json(out):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("no JSON line in output:\n" + out)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def bench_step(a):
    fg, pt = [], []
    for _ in range(a.rounds):  # interleaved so drift hits both alike
        fg.append(last_json(run([FINEGPT, "bench", "--steps", "5", "--warmup", "2",
                                 "--threads", str(a.threads)]))["step_ms_median"])
        pt.append(last_json(run([PY, os.path.join(ROOT, "bench", "torch_step.py"), "--steps", "5",
                                 "--warmup", "2", "--threads", str(a.threads)]))["step_ms_median"])
    f, p = statistics.median(fg), statistics.median(pt)
    print(f"GPT-2 124M step, B=4 T=64, {a.threads} threads")
    print(f"  finegpt  {f:8.1f} ms   (rounds: {', '.join(f'{x:.0f}' for x in fg)})")
    print(f"  pytorch  {p:8.1f} ms   (rounds: {', '.join(f'{x:.0f}' for x in pt)})")
    print(f"  ratio finegpt/pytorch = {f / p:.3f}")
    print(json.dumps({"bench": "step", "threads": a.threads, "finegpt_ms": f, "pytorch_ms": p,
                      "ratio": f / p}))


def bench_char(a):
    text = SHAKESPEARE
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shakespeare_char")
        run([FINEGPT, "prepare", "--tokenizer", "char", "--input", text, "--out", data])
        for seed in a.seeds:
            t0 = time.time()
            out = run([FINEGPT, "train", os.path.join(ROOT, "configs", "shakespeare_char_cpu.py"),
                       f"--data_dir={data}", f"--out_dir={tmp}/out{seed}", f"--seed={seed}",
                       f"--threads={a.threads}"])
            fg_s = time.time() - t0
            fg_val = [float(l.split("val loss ")[1]) for l in out.splitlines()
                      if l.startswith("step ")][-1]
            pt = last_json(run([PY, os.path.join(ROOT, "bench", "torch_train_char.py"),
                                "--input", text, "--threads", str(a.threads), "--seed", str(seed),
                                "--log_interval", "0"]))
            rows.append((seed, fg_s, fg_val, pt["wall_s"], pt["final_val_loss"]))
    print(f"nanoGPT CPU recipe, char tiny Shakespeare, 2000 iterations, {a.threads} threads")
    print("  seed   finegpt s  val     pytorch s  val     time ratio")
    for seed, fs, fv, ps, pv in rows:
        print(f"  {seed:5d}  {fs:8.1f}  {fv:.4f}  {ps:8.1f}  {pv:.4f}  {fs / ps:.3f}")
    fs = sum(r[1] for r in rows) / len(rows)
    ps = sum(r[3] for r in rows) / len(rows)
    print(json.dumps({"bench": "char", "threads": a.threads,
                      "finegpt_s": fs, "finegpt_val": [r[2] for r in rows],
                      "pytorch_s": ps, "pytorch_val": [r[4] for r in rows], "ratio": fs / ps}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("which", choices=["step", "char"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[1337])
    a = p.parse_args()
    bench_step(a) if a.which == "step" else bench_char(a)


if __name__ == "__main__":
    main()
