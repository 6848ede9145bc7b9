"""Issue 10 item 2: finegpt's training curve against PyTorch's, same weights, same batches.

A GPT-2-shaped model (124M by default) starts from one set of weights (nanoGPT's init, drawn by
tests/e2e/torch_reference.py and handed to finegpt as an llm.c model file) and trains on the
same GPT-2-tokenized corpus (a folder of llm.c shards, e.g. `finegpt prepare` of
corpora/tinyshakespeare.txt) for --steps iterations in both programs:
  finegpt: `finegpt train --init_from=init.bin --data_order=sequential ...` for each --variant
           (ours, attention='cudnn', recompute=3 by default on a GPU), val loss from metrics.jsonl;
  PyTorch: nanoGPT's GPU settings (F.scaled_dot_product_attention, bf16 autocast, TF32, fused
           AdamW, clip_grad_norm_), fed the batches finegpt's sequential loader gives
           (src/data/tokens.h: llm.c's order) and evaluated on the same batches, at the same
           iterations, with the same learning-rate schedule (nanoGPT's get_lr).
With --device cpu both run in float32 on the CPU (a check of this script: the two agree to
float32 rounding there). Prints a table of val losses at every eval and one JSON line; exits 1
when any variant's val loss differs from PyTorch's by more than --tolerance (relative) at any
eval, 2 on a usage or run error.

Usage: python3 bench/gpu_curve.py --finegpt build/finegpt --data DIR --out DIR [--device cuda]
       [--steps 300] [--eval_interval 25] [--eval_iters 8] [--B 8] [--T 1024]
       [--L 12 --NH 12 --C 768] [--lr 6e-4] [--warmup 30] [--variant NAME=FLAG,FLAG ...]
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import torch_reference as tr  # noqa: E402
from torch_gpu_step import flash_forward  # noqa: E402  (bench/, beside this)

SHARD_MAGIC, SHARD_VERSION = 20240520, 1
MODEL_MAGIC = 20240326


def read_shard(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size < 1024:
        raise SystemExit(f"gpu_curve: {path}: not an llm.c token shard (too short)")
    header = raw[:1024].view(np.int32)
    if header[0] != SHARD_MAGIC or header[1] != SHARD_VERSION:
        raise SystemExit(f"gpu_curve: {path}: not an llm.c token shard (magic {header[0]})")
    n = int(header[2])
    if raw.size != 1024 + 2 * n:
        raise SystemExit(f"gpu_curve: {path}: header says {n} tokens, file holds {(raw.size - 1024) // 2}")
    return raw[1024:].view(np.uint16).astype(np.int64)


class SequentialBatches:
    """finegpt's sequential loader on one rank (llm.c's): batch = B*T+1 tokens at the current
    position of the current file; the next file (wrapping) when the next batch would not fit;
    files too small for one batch passed over."""

    def __init__(self, paths, B, T):
        self.files = [read_shard(p) for p in paths]
        self.need = B * T + 1
        self.B, self.T = B, T
        if not any(f.size >= self.need for f in self.files):
            raise SystemExit(f"gpu_curve: no file of {paths} holds one batch ({self.need} tokens)")
        self.reset()

    def reset(self):
        self.shard, self.pos = 0, 0
        self._settle()

    def _settle(self):
        while self.pos + self.need > self.files[self.shard].size:
            self.shard, self.pos = (self.shard + 1) % len(self.files), 0

    def next(self):
        buf = torch.from_numpy(self.files[self.shard][self.pos:self.pos + self.need].copy())
        self.pos += self.B * self.T
        self._settle()
        return buf[:-1].view(self.B, self.T), buf[1:].view(self.B, self.T)


def write_llmc_model(path, model, T):
    header = np.zeros(256, np.int32)
    header[:8] = [MODEL_MAGIC, 3, T, model.V, model.L, model.NH, model.C, model.Vp]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tr.llmc_flat(model).numpy().astype(np.float32).tobytes())


def torch_curve(a, init_path, train_paths, val_paths):
    """{iter: (train loss, val loss)} at every eval, PyTorch as nanoGPT runs it."""
    gpu = a.device == "cuda"
    if hasattr(F, "scaled_dot_product_attention"):
        tr.CausalSelfAttention.forward = flash_forward
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = tr.GPT(a.L, a.NH, a.C, a.V, a.T, True)
    header_and_params = np.fromfile(init_path, dtype=np.float32)
    tr.load_llmc_flat(model, header_and_params[256:])
    model.to(a.device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if gpu else {"foreach": False}))
    cfg = tr.RefConfig(lr=a.lr, min_lr=a.lr / 10, warmup=a.warmup, decay_iters=a.steps)
    train = SequentialBatches(train_paths, a.B, a.T)
    eval_train = SequentialBatches(train_paths, a.B, a.T)
    eval_val = SequentialBatches(val_paths, a.B, a.T)

    def loss_of(x, y):
        x, y = x.to(a.device), y.to(a.device)
        if gpu:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                return model(x, y)[1]
        return model(x, y)[1]

    def estimate(loader):
        loader.reset()
        with torch.no_grad():
            return float(np.mean([float(loss_of(*loader.next())) for _ in range(a.eval_iters)]))

    curve, t0 = {}, time.time()
    for it in range(a.steps + 1):
        if it % a.eval_interval == 0:
            curve[it] = (estimate(eval_train), estimate(eval_val))
        lr = tr.get_lr(it, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_of(*train.next())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if gpu:
        torch.cuda.synchronize()
    return curve, time.time() - t0


def finegpt_curve(a, name, flags, init_path, out):
    run_dir = os.path.join(out, name)
    args = [a.finegpt, "train", f"--device={a.device}", f"--init_from={init_path}",
            f"--data_dir={a.data}", f"--out_dir={run_dir}", f"--batch_size={a.B}",
            f"--block_size={a.T}", "--gradient_accumulation_steps=1", f"--max_iters={a.steps}",
            f"--eval_interval={a.eval_interval}", f"--eval_iters={a.eval_iters}",
            "--log_interval=10", f"--learning_rate={a.lr}", f"--min_lr={a.lr / 10}",
            f"--warmup_iters={a.warmup}", f"--lr_decay_iters={a.steps}", f"--weight_decay={a.wd}",
            "--beta1=0.9", "--beta2=0.95", "--grad_clip=1.0", "--dropout=0.0",
            "--data_order=sequential", "--always_save_checkpoint=False",
            f"--dtype={'bfloat16' if a.device == 'cuda' else 'float32'}", *flags]
    t0 = time.time()
    with open(os.path.join(out, f"{name}.log"), "w") as log:
        p = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit(f"gpu_curve: finegpt ({name}) exited {p.returncode}: see {out}/{name}.log")
    curve = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "val_loss" in r:
                curve[r["iter"]] = (r["train_loss"], r["val_loss"])
    return curve, time.time() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--finegpt", required=True)
    p.add_argument("--data", required=True, help="folder of llm.c shards (*_train_*, *_val_*)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval_interval", type=int, default=25)
    p.add_argument("--eval_iters", type=int, default=8)
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--T", type=int, default=1024)
    p.add_argument("--L", type=int, default=12)
    p.add_argument("--NH", type=int, default=12)
    p.add_argument("--C", type=int, default=768)
    p.add_argument("--V", type=int, default=50257)
    p.add_argument("--lr", type=float, default=6e-4)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=FLAG,FLAG (finegpt train flags); default on cuda: finegpt, "
                        "cudnn (--attention=cudnn), recompute3 (--recompute=3); on cpu: finegpt")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"impl": "gpu_curve", "skipped": "no CUDA device"}))
        return 0
    torch.set_num_threads(a.threads)
    train_paths = sorted(glob.glob(os.path.join(a.data, "*_train_*.bin")))
    val_paths = sorted(glob.glob(os.path.join(a.data, "*_val_*.bin")))
    if not train_paths or not val_paths:
        raise SystemExit(f"gpu_curve: {a.data} needs *_train_*.bin and *_val_*.bin shards")
    variants = []
    for v in a.variant or (["finegpt=", "cudnn=--attention=cudnn", "recompute3=--recompute=3"]
                           if a.device == "cuda" else ["finegpt="]):
        name, _, flags = v.partition("=")
        variants.append((name, [f for f in flags.split(",") if f]))

    os.makedirs(a.out, exist_ok=True)
    init_path = os.path.join(a.out, "init.bin")
    model = tr.GPT(a.L, a.NH, a.C, a.V, a.T, True)
    model.init_weights(a.seed)
    write_llmc_model(init_path, model, a.T)
    del model

    ref, ref_s = torch_curve(a, init_path, train_paths, val_paths)
    runs = {name: finegpt_curve(a, name, flags, init_path, a.out) for name, flags in variants}

    worst, ok = {}, True
    print(f"val loss every {a.eval_interval} iterations ({a.device}, B={a.B}, T={a.T}, "
          f"L={a.L} NH={a.NH} C={a.C}): PyTorch, then finegpt (relative difference)")
    print("iter    pytorch  " + "  ".join(f"{n:>20}" for n, _ in variants))
    for it in sorted(ref):
        cells = []
        for name, _ in variants:
            curve = runs[name][0]
            if it not in curve:
                cells.append(f"{'missing':>20}")
                ok = False
                continue
            d = abs(curve[it][1] - ref[it][1]) / ref[it][1]
            worst[name] = max(worst.get(name, 0.0), d)
            ok &= d <= a.tolerance and math.isfinite(curve[it][1])
            cells.append(f"{curve[it][1]:>10.4f} ({100 * d:5.2f}%)")
        print(f"{it:>4}  {ref[it][1]:>9.4f}  " + "  ".join(cells))
    print(json.dumps({"impl": "gpu_curve", "device": a.device,
                      "gpu": torch.cuda.get_device_name(0) if a.device == "cuda" else "",
                      "torch": torch.__version__, "steps": a.steps, "B": a.B, "T": a.T,
                      "tolerance": a.tolerance, "pytorch_s": round(ref_s, 1),
                      "pytorch_val": {str(k): v[1] for k, v in sorted(ref.items())},
                      "finegpt_s": {n: round(r[1], 1) for n, r in runs.items()},
                      "worst_relative_difference": worst, "within_tolerance": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
