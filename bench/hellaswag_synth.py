"""Inputs for timing `finegpt eval --hellaswag` where the real file cannot be fetched (the GPU
machine has no network): a JSONL file in HellaSwag's public format (ctx, endings, label) whose
text is runs of words from tiny Shakespeare (corpora/, public domain) at lengths meant to be
like HellaSwag's validation set (with seed 0, in GPT-2 tokens: contexts 12-174, mean 72; endings
3-79, mean 27; rows ctx + ending mean 99, longest 220), and,
optionally, GPT-2 124M as an llm.c model file with random weights (speed does not depend on the
values). Scores on it mean nothing; examples/s is what it is for.

Usage (scripts/device_check.sh):
  python3 bench/hellaswag_synth.py --jsonl /tmp/h.jsonl --examples 10042 --model /tmp/gpt2.bin
Needs numpy only.
"""
import argparse
import json
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_examples(path, n, seed):
    with open(os.path.join(ROOT, "corpora", "tinyshakespeare.txt"), encoding="utf-8") as f:
        words = re.findall(r"[A-Za-z']+[,.;:!?]?", f.read())
    rng = np.random.default_rng(seed)

    def phrase(lo, hi):
        k = int(rng.integers(lo, hi + 1))
        at = int(rng.integers(0, len(words) - k))
        return " ".join(words[at:at + k])

    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            ctx_words = int(rng.integers(12, 90))  # ~1.3 GPT-2 tokens per word here
            end_words = int(rng.integers(6, 32))
            ex = {"ind": i, "ctx": phrase(ctx_words, ctx_words),
                  "endings": [phrase(max(3, end_words - 4), end_words + 4) for _ in range(4)],
                  "label": int(rng.integers(0, 4)), "split": "val",
                  "source_id": "finegpt-synthetic"}
            f.write(json.dumps(ex) + "\n")


def write_gpt2_124m(path, seed, L=12, NH=12, C=768, T=1024, V=50257):
    """An llm.c version-3 (fp32) model file: 256-int header, then the parameters."""
    Vp = (V + 63) // 64 * 64
    n = Vp * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, T, V, L, NH, C, Vp]
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        left = n
        while left:  # in pieces: a few hundred MB of fp32 at most in memory
            k = min(left, 1 << 24)
            f.write((rng.standard_normal(k, dtype=np.float32) * 0.02).tobytes())
            left -= k
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", required=True, help="the examples file to write")
    ap.add_argument("--examples", type=int, default=10042, help="HellaSwag val has 10,042")
    ap.add_argument("--model", default="", help="also write GPT-2 124M (random) here")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    write_examples(a.jsonl, a.examples, a.seed)
    print(f"{a.jsonl}: {a.examples} synthetic examples")
    if a.model:
        n = write_gpt2_124m(a.model, a.seed)
        print(f"{a.model}: GPT-2 124M, {n} random parameters")


if __name__ == "__main__":
    main()
