// The CUDA seam (backend/cuda_ops.h) in a build without CUDA (-DFINEGPT_CUDA=OFF or no nvcc):
// the queries answer "no CUDA", every other function throws one Error that says how to get it.
#include "backend/cuda_ops.h"
#include "core/error.h"

namespace finegpt::cuda {

namespace {
[[noreturn]] void no_cuda() {
  fail("this build has no CUDA backend (configure with -DFINEGPT_CUDA=ON)");
}
} // namespace

bool compiled() noexcept { return false; }
int device_count() noexcept { return 0; }
std::string device_summary() noexcept { return "none (this build has no CUDA backend)"; }
bool device_info(int, DeviceInfo *) noexcept { return false; }
void set_device(int) { no_cuda(); }

void *device_malloc(size_t) { no_cuda(); }
void device_free(void *) noexcept {}
DeviceMemory device_memory() noexcept { return {}; }
void *host_alloc_pinned(size_t) { no_cuda(); }
void host_free_pinned(void *) noexcept {}
size_t pinned_bytes() noexcept { return 0; }
void copy_to_host_async(void *, const void *, size_t) { no_cuda(); }
void copy_to_device_async(void *, const void *, size_t) { no_cuda(); }
void copies_wait() { no_cuda(); }
void compute_waits_for_copies() { no_cuda(); }
void copy_to_device(void *, const void *, size_t) { no_cuda(); }
void copy_to_host(void *, const void *, size_t) { no_cuda(); }
void device_memset(void *, int, size_t) { no_cuda(); }
void synchronize() { no_cuda(); }
void set_workspace(void *, size_t) { no_cuda(); }
void release() noexcept {}

void encoder_forward(bf16 *, const int32_t *, const bf16 *, const bf16 *, int, int, int, Dropout) {
  no_cuda();
}
void encoder_backward(bf16 *, bf16 *, const bf16 *, const int32_t *, int, int, int, Dropout) {
  no_cuda();
}
void layernorm_forward(bf16 *, float *, float *, const bf16 *, const bf16 *, const bf16 *, int,
                       int) {
  no_cuda();
}
void layernorm_backward(bf16 *, bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *,
                        const float *, const float *, int, int) {
  no_cuda();
}
void rmsnorm_forward(bf16 *, float *, const bf16 *, const bf16 *, int, int) { no_cuda(); }
void rmsnorm_backward(bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *, const float *, int,
                      int) {
  no_cuda();
}
void qk_norm_forward(bf16 *, float *, int, int, int) { no_cuda(); }
void qk_norm_backward(bf16 *, const bf16 *, const float *, int, int, int) { no_cuda(); }
void rotary_forward(bf16 *, int, int, int, int, int) { no_cuda(); }
void rotary_backward(bf16 *, int, int, int, int) { no_cuda(); }
void matmul_forward(bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int, int) { no_cuda(); }
void matmul_forward_gelu(bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int, int) {
  no_cuda();
}
void matmul_backward(bf16 *, bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int,
                     int) {
  no_cuda();
}
void attention_decode(bf16 *, float *, const bf16 *, const bf16 *, const bf16 *, int, int, int, int,
                      int) {
  no_cuda();
}
void kv_append(bf16 *, bf16 *, bf16 *, const bf16 *, int, int, int, int) { no_cuda(); }
void attention_forward(bf16 *, float *, const bf16 *, int, int, int, int, Dropout) { no_cuda(); }
void attention_backward(bf16 *, const bf16 *, const bf16 *, const bf16 *, const float *, int, int,
                        int, int, Dropout) {
  no_cuda();
}
void gelu_forward(bf16 *, const bf16 *, size_t) { no_cuda(); }
void gelu_backward(bf16 *, const bf16 *, const bf16 *, size_t) { no_cuda(); }
void relu2_forward(bf16 *, const bf16 *, size_t) { no_cuda(); }
void relu2_backward(bf16 *, const bf16 *, const bf16 *, size_t) { no_cuda(); }
void softcap_forward(bf16 *, size_t, float) { no_cuda(); }
void residual_forward(bf16 *, const bf16 *, const bf16 *, size_t, Dropout) { no_cuda(); }
void dropout_backward(bf16 *, const bf16 *, size_t, Dropout) { no_cuda(); }
void crossentropy_forward_backward(float *, bf16 *, const int32_t *, int, int, int, float, float) {
  no_cuda();
}
void sum_squares(float *, const bf16 *, size_t, float *) { no_cuda(); }
void adamw_update(bf16 *, bf16 *, float *, float *, float *, size_t, float, float, float, float,
                  float, int, float, bool) {
  no_cuda();
}
void gemm(bf16 *, const bf16 *, const bf16 *, int, int, int, bool, float, float) { no_cuda(); }
void muon_momentum(bf16 *, float *, size_t, float, float) { no_cuda(); }
void muon_orthogonal_update(bf16 *, float *, const bf16 *, bf16 *, float *, int, int, size_t,
                            size_t, float) {
  no_cuda();
}

} // namespace finegpt::cuda
