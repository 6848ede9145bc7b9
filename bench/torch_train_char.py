"""PyTorch baseline: nanoGPT's CPU recipe on character-level tiny Shakespeare.

Our own rendering of nanoGPT's train.py loop (not a copy) with the README's CPU
settings: block_size 64, batch 12, 4 layers, 4 heads, 128 channels, dropout 0,
bias False, lr 1e-3 (warmup 100, cosine to 1e-4 at 2000), beta2 0.99, wd 0.1,
grad_clip 1.0, no accumulation, eval every 250 iterations on 20 batches per
split, random batches from torch.randint, seed 1337. Iterations 0..max_iters
inclusive, as nanoGPT (its last step runs after the last eval).
The model is tests/e2e/torch_reference.py's, i.e. finegpt's: the 65 characters
are padded to a 128-row tied embedding and the loss covers the first 65 logits,
which computes the same function as nanoGPT's 65-row vocabulary.
Prints nanoGPT-style eval lines, then one JSON line with wall time and final losses.

Usage: /usr/bin/python3 bench/torch_train_char.py [--input corpora/tinyshakespeare.txt]
       [--threads N] [--max_iters 2000] [--eval_interval 250] [--log_interval 100]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import torch_reference as tr  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "corpora", "tinyshakespeare.txt"))
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--max_iters", type=int, default=2000)
    p.add_argument("--eval_interval", type=int, default=250)
    p.add_argument("--eval_iters", type=int, default=20)
    p.add_argument("--log_interval", type=int, default=100, help="0: no per-iteration lines")
    p.add_argument("--seed", type=int, default=1337)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    block_size, batch_size = 64, 12

    with open(a.input, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[ch] for ch in text], dtype=np.uint16)
    n = len(ids)
    data = {"train": ids[: int(n * 0.9)], "val": ids[int(n * 0.9):]}

    cfg = tr.RefConfig(L=4, NH=4, C=128, V=len(chars), T=block_size, B=batch_size, bias=False,
                       lr=1e-3, wd=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, warmup=100,
                       decay_iters=2000, min_lr=1e-4, decay_lr=True, accum=1, seed=a.seed,
                       threads=a.threads)
    model = tr.GPT.from_config(cfg)
    model.init_weights(a.seed)
    opt = tr.make_optimizer(model, cfg)  # default AdamW, as nanoGPT on CPU

    def get_batch(split):
        d = data[split]
        ix = torch.randint(len(d) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(d[i: i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(d[i + 1: i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    @torch.no_grad()
    def estimate_loss():
        out = {}
        model.eval()
        for split in ("train", "val"):
            losses = torch.zeros(a.eval_iters)
            for k in range(a.eval_iters):
                x, y = get_batch(split)
                losses[k] = float(model(x, y)[1])
            out[split] = float(losses.mean())
        model.train()
        return out

    print(f"vocab {cfg.V} (padded {cfg.Vp}), {sum(q.numel() for q in model.parameters())} parameters, "
          f"{a.threads} threads", flush=True)
    last_eval = None
    t_start = time.perf_counter()
    x, y = get_batch("train")
    it = 0
    t0 = time.perf_counter()
    while True:
        lr = tr.get_lr(it, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        if it % a.eval_interval == 0:
            losses = estimate_loss()
            last_eval = (it, losses)
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        _, loss = model(x, y)
        x, y = get_batch("train")  # prefetch between forward and backward, as nanoGPT
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if a.log_interval and it % a.log_interval == 0:
            t1 = time.perf_counter()
            print(f"iter {it}: loss {float(loss):.4f}, time {(t1 - t0) * 1e3:.2f}ms", flush=True)
        t0 = time.perf_counter()
        it += 1
        if it > a.max_iters:
            break
    wall = time.perf_counter() - t_start

    eval_it, losses = last_eval
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": a.threads,
                      "wall_s": wall, "final_val_loss": losses["val"], "final_train_loss": losses["train"],
                      "final_eval_iter": eval_it, "iters": a.max_iters}))


if __name__ == "__main__":
    main()
