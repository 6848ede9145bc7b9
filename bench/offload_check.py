#!/usr/bin/env python3
"""Issue 15's GPU check of optimizer offload (offload = 'optimizer'), through `finegpt bench
--device cuda` (its JSON line):

1. GPT-2 XL (48 layers, 25 heads, 1600 channels), T=1024, micro-batch 8, whole-block recompute,
   offload on, 20 training steps (2 untimed + 18 timed) with the device allocator capped at
   24 GiB (FINEGPT_DEVICE_MEMORY_CAP: device_malloc refuses past it). Checked: it runs; the
   device memory the model took (cudaMemGetInfo before and after) within 3% of the plan plus
   the CUDA context's overhead (measured by the first, small run of the script); the allocator's
   peak within 3% of the plan; the pinned host memory equal to the plan's host side.
2. GPT-2 medium (24/16/1024), T=1024, micro-batch 16, with and without offload at the same batch:
   tokens/s at 32 micro-batches per step (524,288 tokens, the guide's) and at 1 (the worst case:
   the whole update per 16k tokens). The issue asks for >= 90% at 524,288 tokens per step.

--tiny runs the same commands at a size the emulated CUDA engine (finegpt_emulated) trains in
seconds (tests/cli/test_offload.py), with a cap that still holds it.

usage: offload_check.py --finegpt BIN [--tiny] [--cap 24GiB]
"""
import argparse
import json
import os
import subprocess
import sys

TOLERANCE = 0.03


def bench(binary, shape, B, T, extra, env=None, timeout=600):
    cmd = [binary, "bench", "--device", "cuda", "--n_layer", str(shape[0]), "--n_head",
           str(shape[1]), "--n_embd", str(shape[2]), "--batch_size", str(B), "--seq_len", str(T),
           *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    print("$", " ".join(cmd), f"({' '.join(f'{k}={v}' for k, v in (env or {}).items())})")
    print(p.stdout.strip())
    if p.returncode != 0:
        print(p.stderr.strip())
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {p.returncode}")
    if "no CUDA device" in p.stdout:
        raise SystemExit("no CUDA device: skipped")
    for line in p.stdout.splitlines():
        if line.startswith("{") and '"finegpt-cuda"' in line:
            return json.loads(line)
    raise SystemExit(f"FAILED: no JSON line from {' '.join(cmd)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finegpt", required=True)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--cap", default="24GiB")
    a = ap.parse_args()
    if a.tiny:
        small, xl, medium, T, Bxl, Bm, accum = (2, 2, 64), (2, 2, 64), (2, 2, 64), 32, 4, 4, 4
        common = ["--vocab_size", "101", "--block_size", "32"]
        xl_steps, m_steps = ["--steps", "3", "--warmup", "1"], ["--steps", "2", "--warmup", "1"]
    else:
        small, xl, medium = (12, 12, 768), (48, 25, 1600), (24, 16, 1024)
        T, Bxl, Bm, accum = 1024, 8, 16, 32
        common = []
        xl_steps, m_steps = ["--steps", "18", "--warmup", "2"], ["--steps", "3", "--warmup", "1"]
    ok = True
    # The CUDA context's overhead (outside the plan), from a small run, as gpu_memory_check.py.
    base = bench(a.finegpt, small, 4, T, ["--steps", "2", *common])
    overhead = base["model_bytes"] - base["plan_bytes"]
    print(f"overhead outside the plan: {overhead / 2**20:.1f} MiB")

    r = bench(a.finegpt, xl, Bxl, T,
              ["--recompute", "3", "--offload", "optimizer", *xl_steps, *common],
              env={"FINEGPT_DEVICE_MEMORY_CAP": a.cap})
    plan, took, peak = r["plan_bytes"], r["model_bytes"], r["allocator_peak_bytes"]
    rel = (took - overhead) / plan - 1
    rel_peak = peak / plan - 1
    print(f"xl offload: plan {plan / 2**30:.3f} GiB; took {took / 2**30:.3f} GiB "
          f"({rel * 100:+.2f}% after the overhead); allocator peak {peak / 2**30:.3f} GiB "
          f"({rel_peak * 100:+.2f}%); pinned {r['pinned_bytes'] / 2**30:.2f} GiB, plan "
          f"{r['plan_host_bytes'] / 2**30:.2f} GiB; {r['tokens_per_s']:.0f} tokens/s, "
          f"MFU {r['mfu']:.3f}; cap {a.cap}")
    checks = [("allocator peak within 3% of the plan", 0 <= rel_peak <= TOLERANCE),
              ("pinned host memory = the plan's host side",
               r["pinned_bytes"] == r["plan_host_bytes"])]
    if not a.tiny:  # the emulation's "device memory" is the host's: no cudaMemGetInfo to read
        checks.insert(0, ("device memory within 3% of the plan", abs(rel) <= TOLERANCE))
    for what, good in checks:
        print(f"  {'ok  ' if good else 'MISS'} {what}")
        ok &= good

    rows = []
    for acc in (accum, 1):
        got = {}
        for off in ("none", "optimizer"):
            got[off] = bench(a.finegpt, medium, Bm, T,
                             ["--accum", str(acc), "--offload", off, *m_steps, *common])
        ratio = got["optimizer"]["tokens_per_s"] / got["none"]["tokens_per_s"]
        rows.append((acc, got["none"]["tokens_per_s"], got["optimizer"]["tokens_per_s"], ratio))
    print("medium: micro-batch tokens x accum | tokens/s plain | tokens/s offload | ratio")
    for acc, plain, off, ratio in rows:
        print(f"  {Bm * T} x {acc:<3} | {plain:12.0f} | {off:12.0f} | {ratio:.3f}")
    if not a.tiny:
        good = rows[0][3] >= 0.90
        print(f"  {'ok  ' if good else 'MISS'} offload >= 90% of plain at {Bm * T * accum} tokens "
              f"per step")
        ok &= good
    print("offload_check:", "ok" if ok else "MISS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
