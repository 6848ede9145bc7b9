"""PyTorch baseline: time one GPT-2 124M fp32 training step on the CPU.

One step = forward + backward + clip_grad_norm_(1.0) + AdamW + zero_grad, as
nanoGPT's train.py does it (12 layers, 12 heads, 768 channels, V=50257 padded
to 50304 with the loss over the first V, block_size 1024, bias on, dropout 0,
AdamW(0.9, 0.95, wd 0.1 on dim >= 2) with torch's default implementation).
The model is tests/e2e/torch_reference.py's, so it is the one finegpt matches.
It prints one JSON line; it does not compare against anything itself.

Usage: /usr/bin/python3 bench/torch_step.py [--threads N] [--steps 5] [--warmup 1] [--B 4] [--T 64]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import torch_reference as tr  # noqa: E402


def step_times_ms(step, warmup, steps):
    """Milliseconds of each of `steps` calls of step() after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--T", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    cfg = tr.RefConfig(L=12, NH=12, C=768, V=50257, T=1024, B=a.B, bias=True, lr=6e-4, wd=0.1,
                       beta1=0.9, beta2=0.95, grad_clip=1.0, seed=a.seed, threads=a.threads)
    assert a.T <= cfg.T
    model = tr.GPT.from_config(cfg)
    model.init_weights(cfg.seed)
    opt = tr.make_optimizer(model, cfg)  # no foreach/fused arguments, as nanoGPT on CPU
    g = torch.Generator().manual_seed(a.seed)
    tokens = torch.randint(0, cfg.V, (a.B, a.T + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step():
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    times = step_times_ms(step, a.warmup, a.steps)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "B": a.B, "T": a.T, "params": sum(q.numel() for q in model.parameters()),
                      "step_ms_median": statistics.median(times), "step_ms": times}))


if __name__ == "__main__":
    main()
