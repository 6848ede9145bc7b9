"""Data-parallel scaling on the CPU: the same run on 1 rank x 2 threads and on 2 ranks x 1
thread (the same two cores), tokens/s and the time per step spent in the gradient all-reduce
(and ZeRO-1's reduce-scatter + all-gather). Model 6/6/384, micro-batch 8 x 256, 4 global
accumulation steps, sequential data.

Usage: python3 bench/mpi_scaling.py     (prints a table and one JSON line)
"""
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINEGPT = os.environ.get("FINEGPT_BIN", os.path.join(ROOT, "build", "finegpt"))
SHAKESPEARE = os.path.join(ROOT, "corpora", "tinyshakespeare.txt")  # corpora/README.md
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
ARGS = ["--n_layer=6", "--n_head=6", "--n_embd=384", "--batch_size=8", "--block_size=256",
        "--gradient_accumulation_steps=4", "--max_iters=12", "--eval_interval=1000",
        "--eval_iters=1", "--data_order=sequential", "--device=cpu"]


def run(ranks, threads, extra, data, out):
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", "--quiet", "--bind-to", "none",
           FINEGPT, "train", f"--data_dir={data}", f"--out_dir={out}", f"--threads={threads}",
           *ARGS, *extra]
    subprocess.run(cmd, env=ENV, check=True, capture_output=True)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if '"tok_per_s"' in l][2:]  # skip warm-up steps
    return statistics.median(r["tok_per_s"] for r in rows), statistics.median(
        r["comm_ms"] for r in rows), statistics.median(r["ms"] for r in rows)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "chars")
        subprocess.run([FINEGPT, "prepare", "--tokenizer", "char", "--input",
                        SHAKESPEARE, "--out", data],
                       check=True, capture_output=True)
        rows = []
        for name, ranks, threads, extra in [("1 rank x 2 threads", 1, 2, []),
                                            ("2 ranks x 1 thread", 2, 1, []),
                                            ("2 ranks x 1 thread, ZeRO-1", 2, 1,
                                             ["--zero_stage=1"])]:
            tok, comm, ms = run(ranks, threads, extra, data, os.path.join(tmp, name[:7]))
            rows.append({"run": name, "tok_per_s": tok, "step_ms": ms, "comm_ms": comm})
    print("run                          tokens/s   step ms   collectives ms")
    for r in rows:
        print(f"{r['run']:28s} {r['tok_per_s']:9.0f} {r['step_ms']:9.1f} {r['comm_ms']:12.2f}")
    print(json.dumps({"bench": "mpi_scaling", "rows": rows}))


if __name__ == "__main__":
    main()
