#!/usr/bin/env python3
"""The corpus for the recipe comparison (issue 16): freely licensed English text that Debian
packages ship, GPT-2-tokenized by `finegpt prepare` into llm.c shards.

  dict-gcide     GNU Collaborative International Dictionary of English (GPL; mostly Webster's
                 1913, public domain): 40 MB, 16.2M GPT-2 tokens
  python3.11-doc the Python 3.11 documentation's reStructuredText sources (PSF licence): 11 MB,
                 3.6M tokens
  perl-doc       Perl 5.36's documentation, POD (Artistic / GPL): 8.8 MB, 3.1M tokens

About 22.8M tokens in all. Documents: a GCIDE block of consecutive entries up to ~4 KB, a Python
.rst.txt file, a Perl .pod file; shuffled with a fixed seed so that the validation shard (the
first --val-tokens tokens, as `prepare` writes it) samples all three.

  python3 bench/recipe_corpus.py --out data/recipe [--debs DIR] [--finegpt build/finegpt]

Without --debs the packages are fetched with `apt-get download` into OUT.debs.
"""
import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile

PACKAGES = ("dict-gcide", "python3.11-doc", "perl-doc")


def gcide_docs(root):
    path = os.path.join(root, "usr/share/dictd/gcide.dict.dz")
    with gzip.open(path, "rb") as f:  # dictzip is gzip with an index in the header
        text = f.read().decode("utf-8", errors="replace")
    doc, size = [], 0
    for entry in text.split("\n\n"):
        doc.append(entry)
        size += len(entry)
        if size >= 4096:
            yield "\n\n".join(doc)
            doc, size = [], 0
    if doc:
        yield "\n\n".join(doc)


def files_under(root, suffix):
    for d, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            if n.endswith(suffix):
                with open(os.path.join(d, n), "rb") as f:
                    yield f.read().decode("utf-8", errors="replace")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--debs", help="folder holding the three .deb files")
    p.add_argument("--finegpt", default="build/finegpt")
    p.add_argument("--val-tokens", default="500k")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    debs = a.debs or os.path.join(a.out + ".debs")
    os.makedirs(debs, exist_ok=True)
    have = os.listdir(debs)
    missing = [pkg for pkg in PACKAGES if not any(f.startswith(pkg + "_") for f in have)]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    docs = []
    with tempfile.TemporaryDirectory() as tmp:
        for pkg in PACKAGES:
            deb = next(os.path.join(debs, f) for f in sorted(os.listdir(debs))
                       if f.startswith(pkg + "_") and f.endswith(".deb"))
            root = os.path.join(tmp, pkg)
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            if pkg == "dict-gcide":
                part = list(gcide_docs(root))
            elif pkg == "python3.11-doc":
                part = list(files_under(root, ".rst.txt"))
            else:
                part = list(files_under(root, ".pod"))
            print(f"{pkg}: {len(part)} documents, {sum(map(len, part)) / 1e6:.1f}M characters")
            docs += part
    random.Random(a.seed).shuffle(docs)
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = os.path.join(tmp, "docs.jsonl")
        with open(jsonl, "w") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
        subprocess.run([a.finegpt, "prepare", "--input", jsonl, "--out", a.out, "--name",
                        "recipe", "--val-tokens", a.val_tokens, "--overwrite"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
