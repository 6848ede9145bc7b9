"""PyTorch baseline on a GPU: GPT-2 training steps as nanoGPT runs them there.

The model is tests/e2e/torch_reference.py's (finegpt's function: padded tied vocabulary, loss
over the first V), with nanoGPT's GPU settings: F.scaled_dot_product_attention (flash) where
this torch has it, bf16 autocast, TF32 matmuls, fused AdamW (0.9, 0.95, wd 0.1 on 2-D
weights), clip_grad_norm_(1.0), and torch.compile with --compile. One step = forward, backward,
clip, AdamW, zero_grad, on fresh random tokens; the median of --steps after --warmup.
Prints one JSON line ("impl": "pytorch-gpu"); with --against LOG (a `finegpt bench --device cuda`
log of the same shape) also the ratio of tokens/s, finegpt over PyTorch, on the same GPU.

Usage: python3 bench/torch_gpu_step.py [--B 8] [--T 1024] [--L 12 --NH 12 --C 768]
       [--steps 10] [--warmup 3] [--compile] [--device cuda] [--against finegpt_bench.log]
(--device cpu runs the same code in fp32 without autocast, for the tests.)
"""

import argparse
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import torch_reference as tr  # noqa: E402
from gpu_memory_check import record as finegpt_record  # noqa: E402  (bench/, beside this)
from torch_step import step_times_ms  # noqa: E402


def flash_forward(self, x):
    """nanoGPT's flash path: the same function as the reference attention."""
    B, T, C = x.shape
    HS = C // self.NH
    q, k, v = self.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, self.NH, HS).transpose(1, 2) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--T", type=int, default=1024)
    p.add_argument("--L", type=int, default=12)
    p.add_argument("--NH", type=int, default=12)
    p.add_argument("--C", type=int, default=768)
    p.add_argument("--V", type=int, default=50257)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--against", default="")
    a = p.parse_args()

    gpu = a.device == "cuda"
    if gpu and not torch.cuda.is_available():
        print(json.dumps({"impl": "pytorch-gpu", "skipped": "no CUDA device"}))
        return
    flash = hasattr(F, "scaled_dot_product_attention")
    if flash:
        tr.CausalSelfAttention.forward = flash_forward
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    cfg = tr.RefConfig(L=a.L, NH=a.NH, C=a.C, V=a.V, T=a.T, B=a.B, bias=True, lr=6e-4, wd=0.1,
                       beta1=0.9, beta2=0.95, grad_clip=1.0, seed=0, threads=os.cpu_count())
    model = tr.GPT.from_config(cfg)
    model.init_weights(0)
    model.to(a.device)
    decay = [q for q in model.parameters() if q.dim() >= 2]
    no_decay = [q for q in model.parameters() if q.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if gpu else {}
    opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), **extra)
    run = torch.compile(model) if a.compile else model
    g = torch.Generator().manual_seed(0)

    def step():
        tokens = torch.randint(0, a.V, (a.B, a.T + 1), generator=g).to(a.device)
        x, y = tokens[:, :-1], tokens[:, 1:]
        if gpu:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                _, loss = run(x, y)
        else:
            _, loss = run(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if gpu:
            torch.cuda.synchronize()

    median = statistics.median(step_times_ms(step, a.warmup, a.steps))
    out = {"impl": "pytorch-gpu", "torch": torch.__version__, "device": a.device,
           "gpu": torch.cuda.get_device_name(0) if gpu else "", "flash": flash,
           "compile": a.compile, "B": a.B, "T": a.T, "step_ms_median": median,
           "tokens_per_s": a.B * a.T / (median / 1e3)}
    if gpu:
        out["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    if a.against:
        ours = finegpt_record(a.against)
        if ours and ours.get("B") == a.B and ours.get("T") == a.T:
            out["finegpt_tokens_per_s"] = ours["tokens_per_s"]
            out["finegpt_over_pytorch"] = ours["tokens_per_s"] / out["tokens_per_s"]
    print(json.dumps(out))
    if "finegpt_over_pytorch" in out:
        print(f"finegpt / pytorch tokens/s at B={a.B} T={a.T}: "
              f"{out['finegpt_over_pytorch']:.2f} ({out['finegpt_tokens_per_s']:.0f} vs "
              f"{out['tokens_per_s']:.0f}; pytorch {'compiled' if a.compile else 'eager'}, "
              f"flash {flash})")


if __name__ == "__main__":
    main()
