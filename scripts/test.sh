#!/usr/bin/env bash
# Installs, builds and runs every test (C++ unit tests, PyTorch parity, command-line tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Serially: each test already uses every core (OpenMP + OpenBLAS); parallel tests would
# oversubscribe them.
ctest --test-dir build --output-on-failure
