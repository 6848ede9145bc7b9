"""Peak resident memory of CPU training runs against the memory plan (issue 4).

Trains a few model sizes for two iterations each on char-level tiny Shakespeare and reads the
peak resident set that finegpt reports; the smallest run is the process baseline (binary,
libraries, OpenBLAS buffers, data pages). For each larger size, (peak - baseline peak) is
compared with (plan - baseline plan). Target: within 5%.

Usage: python3 bench/memory_bench.py     (prints a table and one JSON line)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINEGPT = os.environ.get("FINEGPT_BIN", os.path.join(ROOT, "build", "finegpt"))
SHAKESPEARE = os.path.join(ROOT, "corpora", "tinyshakespeare.txt")  # corpora/README.md
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}

# (n_layer, n_head, n_embd, batch, block): the first is the baseline.
SIZES = [(1, 1, 64, 1, 32), (4, 4, 256, 8, 256), (6, 6, 384, 16, 256), (8, 8, 512, 16, 512),
         (12, 12, 768, 8, 512)]


def size(text):
    v, u = text.split()
    return float(v) * UNITS[u]


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "chars")
        subprocess.run([FINEGPT, "prepare", "--tokenizer", "char", "--input",
                        SHAKESPEARE, "--out", data],
                       check=True, capture_output=True)
        for L, H, C, B, T in SIZES:
            p = subprocess.run([FINEGPT, "train", f"--data_dir={data}", f"--out_dir={tmp}/o",
                                f"--n_layer={L}", f"--n_head={H}", f"--n_embd={C}",
                                f"--batch_size={B}", f"--block_size={T}", "--max_iters=1",
                                "--eval_interval=100", "--eval_iters=1",
                                "--gradient_accumulation_steps=1", "--device=cpu"],
                               capture_output=True, text=True)
            if p.returncode:
                sys.exit(p.stderr)
            m = re.search(r"memory: peak resident ([\d.]+ \w+) = ([\d.]+ \w+) planned", p.stdout)
            rows.append(((L, H, C, B, T), size(m.group(1)), size(m.group(2))))
    (_, base_rss, base_plan) = rows[0]
    print("shape (L/H/C, B x T)      plan        measured (peak - baseline)   error")
    out = []
    for shape, rss, plan in rows[1:]:
        dp, dr = plan - base_plan, rss - base_rss
        err = dr / dp - 1
        out.append({"shape": shape, "plan_mib": dp / 2**20, "measured_mib": dr / 2**20,
                    "error": err})
        print(f"{shape[0]}/{shape[1]}/{shape[2]}, {shape[3]} x {shape[4]}".ljust(26) +
              f"{dp / 2**20:9.1f} MiB  {dr / 2**20:9.1f} MiB{'':17}{100 * err:+6.2f}%")
    print(f"baseline (1/1/64, 1 x 32): peak {base_rss / 2**20:.1f} MiB, plan {base_plan / 2**20:.2f} MiB")
    print(json.dumps({"bench": "memory", "baseline_mib": base_rss / 2**20, "rows": out}))


if __name__ == "__main__":
    main()
