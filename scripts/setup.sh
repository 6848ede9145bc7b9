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
  python3-venv python3-pip                       # .venv for the PyPI packages below
  zlib1g-dev libzstd-dev                         # .gz and .zst JSONL inputs
  openmpi-bin libopenmpi-dev                     # data parallelism over MPI (mpirun, srun)
  libssl-dev                                     # sha256/sha1 (libcrypto): rank file checks
  libcurl4-openssl-dev                           # finegpt download: the hub over HTTPS
  fortunes fortunes-min                          # the quickstart's corpus (real text, offline)
  chromium                                       # renders finegpt report's page in its test
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

# PyPI packages in .venv (its own numpy 2; Debian's torch needs numpy 1 and stays with
# /usr/bin/python3): pyarrow ships Arrow C++ (headers and
# libraries) for the Parquet/Arrow readers; tiktoken, regex and datasets are test oracles and
# fixture writers; openai-whisper (without its dependencies) ships tiktoken's gpt2.tiktoken.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check \
  "pyarrow==26.0.1" "tiktoken==0.14.0" "regex==2026.11.19" "datasets==5.2.0"
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "openai-whisper==20250625"
# TensorBoard's own event reader checks the event files train writes; Pillow reads the PNG of
# the report page that Chromium renders.
.venv/bin/python -m pip install -q --disable-pip-version-check "tensorboard==2.21.0" "pillow==13.0.0"
# nvidia-cudnn-frontend for its header-only C++ API (site-packages/include), which the cuDNN
# attention op compiles against when CMake also finds cuDNN 9; without its Python dependencies
# (CUTLASS DSL, TVM FFI), which only its Python bindings need.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "nvidia-cudnn-frontend==1.32.0"
# transformers (the Hugging Face export and import tests' oracle) in .venv-torch: Debian's
# python3 with its system site-packages (python3-torch 1.13, numpy 1), which transformers 4.40
# supports; a venv of its own so that pip never writes into Debian's python.
if [ ! -x .venv-torch/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv-torch
fi
.venv-torch/bin/python -m pip install -q --disable-pip-version-check \
  "transformers==4.40.2" "tokenizers==0.19.1" "safetensors==0.8.0" "huggingface-hub==0.36.2"
# The GPT-2 rank file, verified against tiktoken's published hash.
gpt2_ranks=$(.venv/bin/python -c "import importlib.util as u, os; print(os.path.join(u.find_spec('whisper').submodule_search_locations[0], 'assets', 'gpt2.tiktoken'))")
echo "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930  $gpt2_ranks" | sha256sum -c --quiet -
mkdir -p build/assets && cp "$gpt2_ranks" build/assets/gpt2.tiktoken

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/finegpt"
