// The cuDNN attention (backend/cuda_ops.h) in a build without it: without the CUDA backend, or
// without cuDNN 9 or the cudnn-frontend headers (-DFINEGPT_CUDNN=OFF, or not found). Every
// function but the query throws one Error. Host code that needs no CUDA header.
#include "backend/cuda_ops.h"
#include "core/error.h"

namespace finegpt::cuda {

namespace {
[[noreturn]] void no_cudnn() {
  fail("this build has no cuDNN attention (it needs the CUDA backend, cuDNN 9 and the "
       "cudnn-frontend headers: run scripts/setup.sh, then configure with -DFINEGPT_CUDA=ON "
       "-DFINEGPT_CUDNN=ON)");
}
} // namespace

namespace detail {
void release_cudnn() noexcept; // backend/cuda/common_host.h: cuda::release() calls it
void release_cudnn() noexcept {}
} // namespace detail

bool cudnn_attention_compiled() noexcept { return false; }
size_t cudnn_attention_workspace_bytes(int, int, int, int) { no_cudnn(); }
void attention_forward_cudnn(bf16 *, float *, const bf16 *, int, int, int, int, Dropout) {
  no_cudnn();
}
void attention_backward_cudnn(bf16 *, const bf16 *, const bf16 *, const bf16 *, const float *, int,
                              int, int, int, Dropout) {
  no_cudnn();
}

} // namespace finegpt::cuda
