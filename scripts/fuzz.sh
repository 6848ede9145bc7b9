#!/usr/bin/env bash
# Fuzzing with libFuzzer: scripts/fuzz.sh [TARGET|all] [SECONDS]
# Builds build-fuzz/ (clang, libFuzzer, ASan + UBSan, no CUDA), runs TARGET (default: every
# target, one after the other) for SECONDS each (default 600) on its corpus fuzz/corpus/TARGET/,
# then merges what it found back into that corpus, minimized (-merge=1: only inputs that add
# coverage are kept). A crash stops the run and leaves its input in build-fuzz/crashes/TARGET/;
# after the fix, copy it into fuzz/corpus/TARGET/ as regression-<what>, which the merge always
# keeps, so that the replay (ctest fuzz/TARGET) keeps it as a regression test. Set FUZZ_JOBS=N to run N targets at once, FUZZ_NICE to nice them
# (default 10). The libFuzzer summary (executions/s, corpus size) is in build-fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-all}
seconds=${2:-600}
jobs=${FUZZ_JOBS:-1}
niceness=${FUZZ_NICE:-10}

all_targets=(config llmc_shard llmc_model checkpoint checkpoint_crc jsonl parquet gpt2_tokenizer
  gpt2_ranks char_tokenizer safetensors run_records)
declare -A max_len=([config]=4096 [llmc_shard]=4096 [llmc_model]=8192 [checkpoint]=8192
  [checkpoint_crc]=8192 [jsonl]=4096 [parquet]=8192 [gpt2_tokenizer]=4096 [gpt2_ranks]=16384
  [char_tokenizer]=4096 [safetensors]=8192 [run_records]=4096)
if [ "$target" = all ]; then
  targets=("${all_targets[@]}")
elif [ -n "${max_len[$target]:-}" ]; then
  targets=("$target")
else
  echo "fuzz.sh: unknown target '$target' (one of: ${all_targets[*]}, all)" >&2
  exit 2
fi

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DFINEGPT_FUZZ=ON -DFINEGPT_CUDA=OFF -DFINEGPT_MPI=OFF \
  -DFINEGPT_TESTS=OFF >/dev/null
nice -n "$niceness" cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

# The targets' scratch folders (one per process; libFuzzer's exits skip their removal) go here.
export TMPDIR=$PWD/build-fuzz/tmp
mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT

run_one() {
  local t=$1 corpus=fuzz/corpus/$1 new=build-fuzz/new/$1 crashes=build-fuzz/crashes/$1
  local log=build-fuzz/logs/$1.log dict=()
  mkdir -p "$corpus" "$new" "$crashes" build-fuzz/logs
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "fuzz $t: ${seconds}s, corpus $(ls "$corpus" | wc -l) files, log $log"
  # One thread per process: the parsers' OpenMP loops would only add noise to the coverage.
  OMP_NUM_THREADS=1 nice -n "$niceness" "build-fuzz/fuzz/fuzz_$t" "$new" "$corpus" \
    -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$crashes/" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || {
    echo "fuzz $t: FAILED (see $log; the input is in $crashes/)"
    tail -n 40 "$log"
    return 1
  }
  # The corpus, minimized over itself and the new inputs (the first folder receives them); by
  # edge coverage only (-use_counters=0), which keeps a few hundred files where hit counts would
  # keep thousands.
  local merged=build-fuzz/merged/$t
  rm -rf "$merged" && mkdir -p "$merged"
  OMP_NUM_THREADS=1 nice -n "$niceness" "build-fuzz/fuzz/fuzz_$t" -merge=1 -use_counters=0 \
    -max_len="${max_len[$t]}" -timeout=20 -rss_limit_mb=4096 "$merged" "$corpus" "$new" \
    >>"$log" 2>&1
  # Inputs that once crashed (regression-*) stay whatever coverage they add.
  find "$corpus" -maxdepth 1 -name 'regression-*' -exec cp {} "$merged/" \;
  rm -rf "$corpus" && mv "$merged" "$corpus" && rm -rf "$new"
  local execs runs
  execs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  echo "fuzz $t: done in ${seconds}s, ${runs:-?} executions, ${execs:-?} exec/s; corpus" \
    "$(find "$corpus" -type f | wc -l) files, $(cat "$corpus"/* | wc -c) bytes"
}

status=0
running=0
for t in "${targets[@]}"; do
  if [ "$jobs" -gt 1 ]; then
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
      wait -n || status=1
      running=$((running - 1))
    fi
  else
    run_one "$t" || status=1
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
