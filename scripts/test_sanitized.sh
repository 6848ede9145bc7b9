#!/usr/bin/env bash
# The tests once more on a build under AddressSanitizer (with leak checks) and
# UndefinedBehaviorSanitizer, without CUDA (the kernel-host harness already runs the CUDA kernels
# under both, and under ThreadSanitizer, in the main build). A report ends the process that made
# it, so the test that ran it fails. Left out: the MPI tests (Open MPI's own allocations) and the
# benchmark drivers' tests. CI runs this before scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFINEGPT_CUDA=OFF \
  -DFINEGPT_SANITIZE=address,undefined >/dev/null
cmake --build build-sanitize -j"$(nproc)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-sanitize --output-on-failure -E '^(dist/test_mpi|bench/)'
