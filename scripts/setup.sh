#!/usr/bin/env bash
# Fresh Debian machine -> finegpt built in build/. Installs every dependency from Debian's
# packages (apt) and builds with CMake. Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config   # compiler and build
  libopenblas-openmp-dev                         # CPU GEMMs (OpenMP build, one thread pool)
  nlohmann-json3-dev                             # JSON for meta.json, checkpoints, metrics
  libgtest-dev                                   # C++ tests
  python3 python3-numpy python3-torch            # PyTorch reference tests and benchmarks
  fortunes fortunes-min                          # the quickstart's corpus (real text, offline)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/finegpt"
