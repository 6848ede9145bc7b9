#!/usr/bin/env python3
"""Single-thread GPT-2 tokenizer throughput: finegpt against tiktoken, same text, same run.

  .venv/bin/python bench/tokenizer_bench.py [--finegpt build/finegpt] [--mb 10] [--repeat 3]

Texts: tiny Shakespeare repeated to about --mb MB, and a generated multilingual text of about
the same size (many scripts, CJK without spaces, emoji, mixed white space; see
tests/tokenizer/gpt2_oracle.py). For each, finegpt runs `finegpt tokenize FILE --threads 1
--bench`, which times the encoding alone (the file is already in memory; loading the ranks,
reading the file and printing the ids are outside the timed region) and tiktoken times
Encoding.encode_ordinary(text) on a str already in memory (tiktoken's encode_ordinary is
single-threaded). The best of --repeat runs each. finegpt's ids are checked equal to
tiktoken's before any number is reported. MB/s = UTF-8 bytes / seconds / 1e6. Also reported:
finegpt with all cores (--threads 0) for reference. Prints a table, then one JSON line.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "tokenizer"))
import gpt2_oracle  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def finegpt_run(binary, path, threads):
    p = subprocess.run([binary, "tokenize", path, "--threads", str(threads), "--bench"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"finegpt tokenize failed: {p.stderr}")
    stats = json.loads(p.stderr.strip().splitlines()[-1])
    return stats, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--finegpt", default=os.path.join(ROOT, "build", "finegpt"))
    ap.add_argument("--mb", type=float, default=10.0, help="size of each text in MB")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    enc = gpt2_oracle.gpt2_encoding(gpt2_oracle.ranks_path(args.finegpt))

    with open(os.path.join(ROOT, "corpora", "tinyshakespeare.txt"), encoding="utf-8") as f:
        shakespeare = f.read()
    target = int(args.mb * 1e6)
    texts = [("shakespeare", shakespeare * max(1, round(target / len(shakespeare.encode()))))]
    multi = gpt2_oracle.multilingual_text(target // 2, seed=0)
    while len(multi.encode()) < target * 0.9:
        multi += gpt2_oracle.multilingual_text(target // 4, seed=len(multi))
    texts.append(("multilingual", multi))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in texts:
            data = text.encode("utf-8")
            path = os.path.join(tmp, name + ".txt")
            with open(path, "wb") as f:
                f.write(data)
            want = None
            tk_best = 0.0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                ids = enc.encode_ordinary(text)
                tk_best = max(tk_best, len(data) / (time.perf_counter() - t0) / 1e6)
                want = want or ids
            fg_best, all_best, threads_all = 0.0, 0.0, 0
            for _ in range(args.repeat):
                stats, out = finegpt_run(args.finegpt, path, 1)
                if stats["bytes"] != len(data) or [int(x) for x in out.split()] != want:
                    sys.exit(f"{name}: finegpt's ids differ from tiktoken's; no numbers reported")
                fg_best = max(fg_best, stats["mb_per_s"])
                stats, out = finegpt_run(args.finegpt, path, 0)
                if [int(x) for x in out.split()] != want:
                    sys.exit(f"{name}: finegpt's ids with all threads differ from tiktoken's")
                all_best, threads_all = max(all_best, stats["mb_per_s"]), stats["threads"]
            rows.append({"text": name, "bytes": len(data), "tokens": len(want),
                         "finegpt_mb_s": round(fg_best, 2), "tiktoken_mb_s": round(tk_best, 2),
                         "ratio": round(fg_best / tk_best, 2),
                         "finegpt_all_threads_mb_s": round(all_best, 2),
                         "all_threads": threads_all})

    import tiktoken
    print(f"GPT-2 tokenizer, single thread (best of {args.repeat}); {cpu_name()}, "
          f"{os.cpu_count()} cores; tiktoken {tiktoken.__version__}")
    print(f"{'text':<14}{'MB':>7}{'tokens':>11}{'finegpt MB/s':>14}{'tiktoken MB/s':>15}"
          f"{'ratio':>8}{'finegpt all cores':>19}")
    for r in rows:
        print(f"{r['text']:<14}{r['bytes'] / 1e6:>7.1f}{r['tokens']:>11}{r['finegpt_mb_s']:>14.1f}"
              f"{r['tiktoken_mb_s']:>15.1f}{r['ratio']:>7.2f}x"
              f"{r['finegpt_all_threads_mb_s']:>12.1f} "
              f"({r['all_threads']} thr)")
    print(json.dumps({"bench": "tokenizer", "cpu": cpu_name(), "cores": os.cpu_count(),
                      "tiktoken": tiktoken.__version__, "repeat": args.repeat, "results": rows}))


if __name__ == "__main__":
    main()
