// The cuDNN attention (backend/cuda_ops.h) in a CUDA build without cuDNN or its frontend headers
// (-DFINEGPT_CUDNN=OFF, or not found): every function but the query throws one Error.
#include "backend/cuda/common_host.h"

namespace finegpt::cuda {

namespace {
[[noreturn]] void no_cudnn() {
  fail("this build has no cuDNN attention (needs cuDNN 9 and the cudnn-frontend headers: run "
       "scripts/setup.sh or point -DFINEGPT_CUDNN_FRONTEND_INCLUDE at them, then configure with "
       "-DFINEGPT_CUDNN=ON)");
}
} // namespace

namespace detail {
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
