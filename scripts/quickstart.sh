#!/usr/bin/env bash
# The main job, end to end and offline: install and build, turn Debian's fortune cookies
# (real human-written text from the `fortunes` packages) into character-level token shards,
# train a small GPT on the CPU for a few minutes, and print samples from it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

corpus=(); for f in /usr/share/games/fortunes/*; do
  case "$f" in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] && corpus+=("$f")
done
./build/finegpt prepare --tokenizer char --input "${corpus[@]}" --out data/fortunes_char
./build/finegpt train configs/quickstart_fortunes.py
./build/finegpt sample --out_dir=out-fortunes-char --num_samples=3 --max_new_tokens=400 \
  --start="Q:"
