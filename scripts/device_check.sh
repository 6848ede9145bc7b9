#!/usr/bin/env bash
# One GPU run of the CUDA backend, on a machine with an NVIDIA GPU, nvcc, CMake and ninja but no
# network and no Debian packages: builds with CUDA for that GPU only, runs the CUDA op tests
# (every op against the CPU op), the same tests under compute-sanitizer (memcheck; racecheck on
# the shared-memory kernels) when it is there, and the CPU op tests as a check of the carried
# OpenBLAS; runs the NCCL communicator tests on one GPU (tests/dist/test_nccl.cpp; NCCL from the
# toolkit or PyTorch's nvidia-nccl wheel, found by CMake); runs the GPU training tests
# (tests/train/test_cuda_train.cpp: a step against the CPU, 20 steps, exact resume, recompute,
# dropout, one-rank NCCL) and times whole training steps of GPT-2 124M at T=1024
# (`finegpt bench --device cuda`: tokens/s, MFU, memory against the plan; also the guide's 24 GB
# row, GPT-2 medium and whole-block recompute), then each op at
# GPT-2 124M's shapes (bench/cuda_ops_bench.cpp, attention also through cuDNN when the build has
# it); trains GPT-2 124M for 300 steps beside PyTorch from the same weights and batches
# (bench/gpu_curve.py: val loss within 2% at every eval); checks optimizer offload (GPT-2 XL under
# a 24 GiB cap, GPT-2 medium with and without offload: bench/offload_check.py); times
# `finegpt eval --hellaswag` over 10,042 synthetic examples (bench/hellaswag_synth.py); prints a
# short table last.
# Takes about 3-5 minutes on 16 cores; each step has a time limit and all of them end by
# FINEGPT_DEADLINE_S (default 480 s) after the start, so the table always prints. Logs are written
# to /tmp/finegpt-device; when $OUT is set (the device tool), they come back as one archive,
# $OUT/device_logs.tar.gz (the tool returns at most 8 files), beside $OUT/summary.txt.
#
# Needs third_party/ (GoogleTest sources, nlohmann/json, OpenBLAS), which is ignored by git:
# make it here first with scripts/device_prepare.sh, then carry it. From a session with the
# device tool (the tool sends the checkout the session was started in, so run this from that
# checkout, with these files in it):
#   run(command="scripts/device_check.sh", carry=["third_party"], timeout_s=540)
# Environment: FINEGPT_CUDA_ARCH (default: the GPU's compute capability, e.g. 90), JOBS,
# FINEGPT_DEADLINE_S, FINEGPT_CMAKE_ARGS (more configure arguments, split at spaces),
# FINEGPT_TORCH_PYTHON (the python with PyTorch for the baseline; default python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
log=/tmp/finegpt-device
rm -rf "$log" && mkdir -p "$log"
build=$root/build-device
jobs=${JOBS:-$(nproc)}
t_start=$(date +%s)
deadline=$((t_start + ${FINEGPT_DEADLINE_S:-480}))
rows=()
bench_rows=()
torch_python=${FINEGPT_TORCH_PYTHON:-python3} # the GPU machine's python3 holds PyTorch

# step NAME LIMIT_S CMD...: runs CMD with output in $log/NAME.log, for at most LIMIT_S seconds
# and never past the deadline; records status and seconds.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc status left
  t0=$(date +%s)
  left=$((deadline - t0))
  if [ "$left" -lt 10 ]; then
    rows+=("$(printf '%-22s %-16s' "$name" "skipped (time)")")
    return 124
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@" >"$log/$name.log" 2>&1
  rc=$?
  case $rc in
  0) status=ok ;;
  124) status="TIMEOUT ${limit}s" ;;
  *) status="FAILED rc=$rc" ;;
  esac
  rows+=("$(printf '%-22s %-16s %5ss' "$name" "$status" "$(($(date +%s) - t0))")")
  return $rc
}
summary() {
  echo
  echo "== finegpt device_check: $(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - t_start)) s, logs in $log"
  [ -n "${gpu:-}" ] && echo "gpu: $gpu"
  [ -f "$log/bench.log" ] && sed -n '/^op /,$p' "$log/bench.log"
  for b in "${bench_rows[@]}"; do
    [ -f "$log/$b.log" ] && grep -E '^finegpt bench|^memory|^note|^no CUDA device' "$log/$b.log"
  done
  [ -f "$log/memory_check.log" ] && cat "$log/memory_check.log"
  [ -f "$log/offload.log" ] &&
    grep -E '^(overhead|xl offload|medium|  [0-9]|  ok|  MISS|offload_check|FAILED)' "$log/offload.log"
  [ -f "$log/curve.log" ] && grep -v '^{' "$log/curve.log" | head -20
  [ -f "$log/hellaswag.log" ] && grep -E '^hellaswag .*examples/s' "$log/hellaswag.log"
  for t in torch_b8 torch_b64_compiled; do
    [ -f "$log/$t.log" ] && grep -E '^finegpt / pytorch|skipped' "$log/$t.log"
  done
  grep -E '^(loss|grad|step|recompute|dropout) ' "$log/cuda_train.log" 2>/dev/null | head -40
  [ -f "$log/configure.log" ] && grep -E '^-- finegpt (NCCL|cuDNN)' "$log/configure.log"
  [ -f "$log/cuda_ops.log" ] && { sed -n '/^op .*worst normwise/,$p' "$log/cuda_ops.log" | grep -v '^\['; }
  # Each test binary's totals and failed tests, named by its step.
  for t in cuda_ops cuda_ops_arch cuda_train nccl nccl_timeout; do
    [ -f "$log/$t.log" ] && grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?|^\[  FAILED  \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+$' \
      "$log/$t.log" | sed "s/^/$t: /"
  done
  printf '%s\n' "${rows[@]}"
}
finish() {
  summary "$@" | tee "$log/summary.txt"
  if [ -n "${OUT:-}" ]; then
    cp "$log/summary.txt" "$OUT/summary.txt"
    tar -czf "$OUT/device_logs.tar.gz" -C "$log" .
  fi
  exit "${1:-0}"
}

# ---- environment
export PATH=/usr/local/cuda/bin:$PATH
{
  nvidia-smi -L
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv
  nvcc --version
  cmake --version
  c++ --version
  uname -a
} >"$log/env.log" 2>&1
gpu=$(nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader 2>/dev/null | head -1)
arch=${FINEGPT_CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')}
arch=${arch:-90}

# ---- carried third-party files
if [ ! -f third_party/deps.tar.xz ] || [ ! -d third_party/googletest ]; then
  rows+=("third_party: missing (run scripts/device_prepare.sh here, then carry third_party)")
  finish 1
fi
tp=/tmp/finegpt-third-party
rm -rf "$tp" && mkdir -p "$tp"
tar -xJf third_party/deps.tar.xz -C "$tp" 2>/dev/null ||
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" \
    third_party/deps.tar.xz "$tp"
export LD_LIBRARY_PATH=$tp/openblas/lib:$tp/sys/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# cuBLASLt: the toolkit's, else the copy PyTorch's nvidia-cublas wheel installed.
cublas_args=()
if ! ls /usr/local/cuda/lib64/libcublasLt.so* >/dev/null 2>&1 &&
  ! ls /usr/local/cuda/targets/*/lib/libcublasLt.so* >/dev/null 2>&1; then
  sites=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
  # shellcheck disable=SC2086
  lt=$(find $sites /opt /usr/local -name 'libcublasLt.so.1[0-9]*' -path '*nvidia*' 2>/dev/null | head -1)
  if [ -n "$lt" ]; then
    inc=$(dirname "$(find "$(dirname "$(dirname "$lt")")" -name cublasLt.h 2>/dev/null | head -1)")
    cublas_args=(-DFINEGPT_CUBLASLT_LIB="$lt" -DFINEGPT_CUBLASLT_INCLUDE="$inc")
    LD_LIBRARY_PATH=$(dirname "$lt"):$LD_LIBRARY_PATH
    echo "cuBLASLt from $lt, headers $inc" >>"$log/env.log"
  fi
fi

# cuDNN (the cuDNN attention, compared with ours in the op tests and the bench): the toolkit's or
# PyTorch's nvidia-cudnn wheel, found by CMake; libcudnn.so.9 dlopens its sub-libraries by name,
# so the wheel's folder goes on LD_LIBRARY_PATH. The frontend headers come from third_party/.
cudnn_lib=$(python3 -c "import nvidia.cudnn, os; print(os.path.join(os.path.dirname(nvidia.cudnn.__file__) if nvidia.cudnn.__file__ else list(nvidia.cudnn.__path__)[0], 'lib'))" 2>/dev/null)
if [ -n "$cudnn_lib" ] && [ -d "$cudnn_lib" ]; then
  LD_LIBRARY_PATH=$cudnn_lib:$LD_LIBRARY_PATH
  echo "cuDNN wheel: $cudnn_lib" >>"$log/env.log"
fi
cudnn_args=()
[ -f third_party/cudnn_frontend/include/cudnn_frontend.h ] &&
  cudnn_args=(-DFINEGPT_CUDNN_FRONTEND_INCLUDE="$root/third_party/cudnn_frontend/include")

# ---- build (only what the checks run); FINEGPT_CMAKE_ARGS is split at spaces on purpose
# shellcheck disable=SC2086
step configure 180 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFINEGPT_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DFINEGPT_BLAS_LIB="$tp/openblas/lib/libopenblas.so.0" \
  -DFINEGPT_BLAS_INCLUDE="$tp/openblas/include" -DFINEGPT_JSON_INCLUDE="$root/third_party/include" \
  -DZLIB_INCLUDE_DIR="$tp/sys/include" -DZLIB_LIBRARY="$tp/sys/lib/libz.so" \
  -DFINEGPT_ZSTD_INCLUDE="$tp/sys/include" -DFINEGPT_ZSTD_LIB="$tp/sys/lib/libzstd.so" \
  -DOPENSSL_ROOT_DIR="$tp/sys" -DOPENSSL_INCLUDE_DIR="$tp/sys/include" \
  -DOPENSSL_CRYPTO_LIBRARY="$tp/sys/lib/libcrypto.so" -DFINEGPT_MPI=OFF -DFINEGPT_ARROW=OFF \
  "${cublas_args[@]}" "${cudnn_args[@]}" ${FINEGPT_CMAKE_ARGS:-} || finish 1
step build 300 cmake --build "$build" -j "$jobs" --target finegpt backend_test_cuda_ops \
  backend_test_cuda_ops_arch backend_test_ops train_test_cuda_train dist_test_nccl \
  cuda_ops_bench || finish 1

# ---- checks
step info 30 "$build/finegpt" info
step plan 30 "$build/finegpt" plan --top 3  # this GPU: memory from the driver
cat "$log/info.log" >>"$log/env.log"
step cuda_ops 180 "$build/tests/backend_test_cuda_ops" --gtest_output="xml:$log/cuda_ops.xml"
ops_rc=$?
step cuda_ops_arch 60 "$build/tests/backend_test_cuda_ops_arch"
arch_rc=$?
[ "$ops_rc" -eq 0 ] && ops_rc=$arch_rc
step cuda_train 180 env OMP_NUM_THREADS=8 "$build/tests/train_test_cuda_train" \
  --gtest_output="xml:$log/cuda_train.xml"
train_rc=$?
[ "$ops_rc" -eq 0 ] && ops_rc=$train_rc
# NCCL on one GPU (a single-rank communicator); the init-timeout test alone, as it leaves NCCL's
# bootstrap thread for the rank that never comes behind in its process.
step nccl 90 "$build/tests/dist_test_nccl" --gtest_filter='-NcclDevice.InitTimesOut*' \
  --gtest_output="xml:$log/nccl.xml"
nccl_rc=$?
step nccl_timeout 60 "$build/tests/dist_test_nccl" --gtest_filter='NcclDevice.InitTimesOut*'
timeout_rc=$?
[ "$nccl_rc" -eq 0 ] && nccl_rc=$timeout_rc
[ "$ops_rc" -eq 0 ] && ops_rc=$nccl_rc
# GPT-2 124M at T=1024: micro-batch 8, and 64 (llm.c's; the plan puts it near 38 GiB); the guide's
# 24 GB row (10/10/640, B=32) and GPT-2 medium at B=16 (memory against the plan: both must fit a
# 24 GB card); 124M at B=64 with whole-block recompute (its cost in time, its saving in memory)
# and with cuDNN's attention instead of ours (the whole step, beside the op rows of `bench`).
bench_rows=(gpt2_b8 gpt2_b64 guide24_b32 medium_b16 gpt2_b64_r3 gpt2_b64_cudnn)
step gpt2_b8 90 "$build/finegpt" bench --device cuda --batch_size 8 --seq_len 1024 --steps 10 \
  --warmup 2
step gpt2_b64 120 "$build/finegpt" bench --device cuda --batch_size 64 --seq_len 1024 \
  --steps 10 --warmup 2
step guide24_b32 90 "$build/finegpt" bench --device cuda --n_layer 10 --n_head 10 --n_embd 640 \
  --batch_size 32 --seq_len 1024 --steps 5 --warmup 2
step medium_b16 90 "$build/finegpt" bench --device cuda --n_layer 24 --n_head 16 --n_embd 1024 \
  --batch_size 16 --seq_len 1024 --steps 5 --warmup 2
step gpt2_b64_r3 120 "$build/finegpt" bench --device cuda --batch_size 64 --seq_len 1024 \
  --recompute 3 --steps 5 --warmup 2
step gpt2_b64_cudnn 120 "$build/finegpt" bench --device cuda --batch_size 64 --seq_len 1024 \
  --attention cudnn --steps 10 --warmup 2
# Issue 4's criterion: each run's device memory within 3% of plan + the overhead of the first.
mem_logs=()
for b in "${bench_rows[@]}"; do mem_logs+=("$log/$b.log"); done
step memory_check 30 python3 bench/gpu_memory_check.py "${mem_logs[@]}"
# The same-GPU baseline: PyTorch as nanoGPT runs it (flash SDPA, bf16 autocast, fused AdamW), eager
# at B=8 and compiled at B=64, each against finegpt's run of the same shape; between them, each
# op alone (ours and cuDNN's attention). What the deadline cuts comes last: the sanitizers.
step torch_b8 120 "$torch_python" bench/torch_gpu_step.py --B 8 --T 1024 --against "$log/gpt2_b8.log"
step bench 120 "$build/cuda_ops_bench"
step torch_b64_compiled 240 "$torch_python" bench/torch_gpu_step.py --B 64 --T 1024 --compile \
  --against "$log/gpt2_b64.log"
# Issue 10 item 2: GPT-2 124M trains 300 steps on tiny Shakespeare (GPT-2 tokens; the rank file
# is carried in third_party/assets) from the same weights and batches as PyTorch (nanoGPT's GPU
# settings), val loss within 2% at every eval; ours, cuDNN's attention and recompute 3.
step curve_data 30 "$build/finegpt" prepare --input corpora/tinyshakespeare.txt \
  --out "$log/curve_data" --tokenizer third_party/assets/gpt2.tiktoken --val-tokens 65537 &&
  step curve 200 "$torch_python" bench/gpu_curve.py --finegpt "$build/finegpt" \
    --data "$log/curve_data" --out "$log/curve" --steps 300 --eval_interval 25
# Issue 15: optimizer offload (bench/offload_check.py). GPT-2 XL (1.56B) trains 20 steps at
# T=1024, micro-batch 8, recompute 3, offload = 'optimizer', with the allocator capped at 24 GiB
# (FINEGPT_DEVICE_MEMORY_CAP); its device memory and allocator peak against the plan, its pinned
# host memory against the plan's host side; GPT-2 medium's tokens/s with and without offload at
# the same batch (16 x 1024 tokens; 32 and 1 micro-batches per step). About 2 minutes.
step offload 240 python3 bench/offload_check.py --finegpt "$build/finegpt" --cap 24GiB
# Issue 16 item 4: HellaSwag's 10,042 validation examples in under a minute for GPT-2 124M. No
# network here: a synthetic file of HellaSwag-like lengths and random weights (the speed does not
# depend on either); the summary shows examples/s and seconds.
step hellaswag_data 60 "$torch_python" bench/hellaswag_synth.py --examples 10042 \
  --jsonl "$log/hellaswag_synth.jsonl" --model "$log/gpt2_124M_random.bin" &&
  step hellaswag 120 "$build/finegpt" eval --device cuda --init_from "$log/gpt2_124M_random.bin" \
    --hellaswag "$log/hellaswag_synth.jsonl" --tokenizer third_party/assets/gpt2.tiktoken \
    --batch_size 16
rm -f "$log/gpt2_124M_random.bin" "$log/hellaswag_synth.jsonl" # 500 + 8 MB: not for the archive
step cpu_ops 120 env OMP_NUM_THREADS=8 "$build/tests/backend_test_ops" --gtest_brief=1
if command -v compute-sanitizer >/dev/null; then
  # Our kernels only: cuDNN's own are not ours to check, and slow under the sanitizer.
  step memcheck 240 compute-sanitizer --tool memcheck --error-exitcode 3 \
    "$build/tests/backend_test_cuda_ops" --gtest_brief=1 --gtest_filter='-CudaOps.Cudnn*'
  step racecheck 180 compute-sanitizer --tool racecheck --error-exitcode 3 \
    "$build/tests/backend_test_cuda_ops" --gtest_brief=1 \
    --gtest_filter='CudaOps.Attention:CudaOps.LayerNorm:CudaOps.Crossentropy:CudaOps.SumSquares'
else
  rows+=("compute-sanitizer: not found, skipped")
fi
finish "$ops_rc"
