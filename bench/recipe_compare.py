#!/usr/bin/env python3
"""What the modern recipe buys at equal tokens and equal wall-clock (issue 16): `finegpt train`
with recipe = 'nanogpt' and recipe = 'modern' on the same data (bench/recipe_corpus.py), the same
model size, the same batches (data_order = 'sequential'), the same schedule and tokens, several
seeds; the validation loss at every eval and the time each run took, from metrics.jsonl.

  python3 bench/recipe_compare.py --data data/recipe --tokens 1M --seeds 1,2 [--json OUT.json]

Each entry of --recipes is a recipe name, optionally with config keys set after it, each after a
'/': `modern/qk_norm=False` is the modern recipe without QK-norm (an ablation), and
`modern/embedding_lr=0.01/head_lr=0.004` sets its groups' rates. Entries are labelled as written.

The model defaults to 4 layers, 256 channels, 4 heads, block 256, micro-batch 16 (GPT-2's
vocabulary, 50257); the schedule warms up over 5% of the steps and decays (cosine) to 1/10.
Both recipes take --lr for their AdamW parameters; the modern one --muon_lr for Muon's.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def count(text):
    mult = {"k": 1e3, "M": 1e6, "G": 1e9}
    return int(float(text[:-1]) * mult[text[-1]]) if text[-1] in mult else int(text)


def run(a, spec, seed, out):
    recipe, *keys = spec.split("/")
    step = a.batch_size * a.block_size
    iters = a.tokens // step
    args = [a.finegpt, "train", f"--data_dir={a.data}", f"--out_dir={out}", "--device=cpu",
            f"--recipe={recipe}", f"--n_layer={a.n_layer}", f"--n_head={a.n_head}",
            f"--n_embd={a.n_embd}", f"--block_size={a.block_size}",
            f"--batch_size={a.batch_size}", "--gradient_accumulation_steps=1",
            f"--learning_rate={a.lr}", f"--min_lr={a.lr / 10}", f"--muon_lr={a.muon_lr}",
            f"--warmup_iters={max(1, iters // 20)}", f"--lr_decay_iters={iters}",
            f"--max_iters={iters}", f"--eval_interval={max(1, iters // a.evals)}",
            f"--eval_iters={a.eval_iters}", "--log_interval=1", "--data_order=sequential",
            f"--seed={seed}", "--bias=False", "--dropout=0.0", "--compile=False",
            "--always_save_checkpoint=False"] + [f"--{k}" for k in keys]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{spec} seed {seed}: finegpt train failed:\n{p.stderr}")
    evals, seconds = [], 0.0
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "val_loss" in m:
                evals.append({"iter": m["iter"], "tokens": m["tokens"], "val_loss": m["val_loss"],
                              "seconds": seconds})
            elif "ms" in m:
                seconds += m["ms"] / 1e3
    return {"recipe": spec, "seed": seed, "evals": evals, "train_seconds": seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--finegpt", default="build/finegpt")
    p.add_argument("--tokens", type=count, default=count("1M"))
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--recipes", default="nanogpt,modern")
    p.add_argument("--n_layer", type=int, default=4)
    p.add_argument("--n_head", type=int, default=4)
    p.add_argument("--n_embd", type=int, default=256)
    p.add_argument("--block_size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--muon_lr", type=float, default=0.02)
    p.add_argument("--evals", type=int, default=8)
    p.add_argument("--eval_iters", type=int, default=20)
    p.add_argument("--json")
    a = p.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in a.seeds.split(",")]:
            for recipe in a.recipes.split(","):
                r = run(a, recipe, seed, os.path.join(tmp, f"{recipe.replace('/', '_')}-{seed}"))
                results.append(r)
                last = r["evals"][-1]
                print(f"{recipe:8s} seed {seed}: val {last['val_loss']:.4f} at "
                      f"{last['tokens']} tokens, {r['train_seconds']:.0f} s", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "runs": results}, f, indent=1)
    # Mean over seeds at each eval, per recipe.
    recipes = a.recipes.split(",")
    print("\n| tokens | " + " | ".join(f"{r} val (mean)" for r in recipes) + " |")
    print("|---|" + "---|" * len(recipes))
    n = min(len(r["evals"]) for r in results)
    for i in range(n):
        row = []
        for rec in recipes:
            vals = [r["evals"][i]["val_loss"] for r in results if r["recipe"] == rec]
            row.append(f"{sum(vals) / len(vals):.4f}")
        print(f"| {results[0]['evals'][i]['tokens']} | " + " | ".join(row) + " |")
    for rec in recipes:
        secs = [r["train_seconds"] for r in results if r["recipe"] == rec]
        print(f"{rec}: {sum(secs) / len(secs):.0f} s of training per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
