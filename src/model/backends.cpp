// The backends' bodies (see backends.h).
#include "model/backends.h"

#include "core/error.h"

#include <atomic>
#include <cstdlib>

namespace finegpt {

namespace {
std::atomic<size_t> g_arena_bytes{0};
} // namespace

Arena::Arena(size_t floats) : ptr_(nullptr, ArenaFree{floats * sizeof(float)}), n_(floats) {
  size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
  float *p = static_cast<float *>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!p) throw std::bad_alloc();
  ptr_.reset(p);
  g_arena_bytes += floats * sizeof(float);
}

void ArenaFree::operator()(float *p) const {
  std::free(p);
  g_arena_bytes -= bytes;
}

size_t Arena::live_bytes() { return g_arena_bytes.load(); }

// ---------------------------------------------------------------- CPU

CpuBackend::Context::Context(const GPTConfig &, int, int, const ModelOptions &opt) {
  FINEGPT_CHECK(!opt.cudnn_attention, "attention = 'cudnn' is for the CUDA engine (device = "
                                      "'cuda'); the CPU engine has its own attention");
}

void CpuBackend::attention_forward(float *out, float *state, const float *qkv, int B, int T, int C,
                                   int NH, Dropout drop, bool) {
  cpu::attention_forward(out, state, qkv, B, T, C, NH, drop);
}

void CpuBackend::attention_backward(float *dqkv, float *scratch, const float *dout,
                                    const float *qkv, const float *, const float *state, int B,
                                    int T, int C, int NH, Dropout drop, bool) {
  cpu::attention_backward(dqkv, scratch, dout, qkv, state, B, T, C, NH, drop);
}

void CpuBackend::sum_squares(double *sums, const float *grads, const std::vector<Range> &ranges,
                             float *) {
  for (size_t i = 0; i < ranges.size(); ++i)
    sums[i] = cpu::sum_squares(grads + ranges[i].first, ranges[i].second - ranges[i].first);
}

void CpuBackend::adamw_update(float *params, float *grads, float *, float *m, float *v, size_t n,
                              float lr, float beta1, float beta2, float eps, float weight_decay,
                              int t, float grad_scale, bool zero_grad) {
  cpu::adamw_update(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale,
                    zero_grad);
}

// ---------------------------------------------------------------- CUDA

CudaBackend::Context::Context(const GPTConfig &cfg, int B, int T, const ModelOptions &opt) {
  FINEGPT_CHECK(
      opt.recompute >= 0 && opt.recompute <= 3,
      "recompute must be 0 (none), 1 (GELU), 2 (GELU + LayerNorm) or 3 (whole block), got ",
      opt.recompute);
  if (opt.cudnn_attention) {
    FINEGPT_CHECK(cuda::cudnn_attention_compiled(),
                  "attention = 'cudnn': this build has no cuDNN attention (it needs cuDNN 9 and "
                  "the cudnn-frontend headers: scripts/setup.sh); use attention = 'finegpt'");
    FINEGPT_CHECK(cfg.dropout == 0.0f, "attention = 'cudnn' cannot apply dropout (cuDNN's masks "
                                       "are not finegpt's): set dropout = 0.0, or attention = "
                                       "'finegpt'");
    // cuDNN wants 16-byte aligned tensors: every layer's slice of att_lse (B NH T floats).
    FINEGPT_CHECK(size_t(B) * cfg.n_head * T % 4 == 0,
                  "attention = 'cudnn' needs batch_size x n_head x block_size to be a multiple of "
                  "4 (got ",
                  B, " x ", cfg.n_head, " x ", T, "); or use attention = 'finegpt'");
  }
  const int HS = cfg.n_embd / cfg.n_head;
  FINEGPT_CHECK(HS == 32 || HS == 64 || HS == 128, "head size n_embd / n_head = ", HS,
                " is not supported by the CUDA attention (32, 64 or 128), or use device = 'cpu'");
  cuda::set_device(opt.device);
}

// The backend must not keep lending the model's workspace once it is freed.
CudaBackend::Context::~Context() { cuda::release(); }

void CudaBackend::check_workspace(const GPTConfig &cfg, int B, int T, const ModelOptions &opt,
                                  size_t plan_bytes) {
  if (!opt.cudnn_attention) return;
  const size_t need = cuda::cudnn_attention_workspace_bytes(B, T, cfg.n_embd, cfg.n_head);
  FINEGPT_CHECK(need <= plan_bytes, "attention = 'cudnn' needs ", format_bytes(double(need)),
                " of workspace at micro-batch ", B, " x ", T, ", the plan has ",
                format_bytes(double(plan_bytes)),
                " (the plan's estimate is low: please report it); use attention = 'finegpt'");
}

void CudaBackend::store(cuda::bf16 *dst, const float *host, size_t n) {
  std::vector<cuda::bf16> h(n);
  for (size_t i = 0; i < n; ++i)
    h[i] = cuda::to_bf16(host[i]);
  upload(dst, h.data(), n * sizeof(cuda::bf16));
}

void CudaBackend::load(float *host, const cuda::bf16 *src, size_t n) {
  std::vector<cuda::bf16> h(n);
  download(h.data(), src, n * sizeof(cuda::bf16));
  for (size_t i = 0; i < n; ++i)
    host[i] = cuda::to_float(h[i]);
}

void CudaBackend::attention_forward(cuda::bf16 *out, float *state, const cuda::bf16 *qkv, int B,
                                    int T, int C, int NH, Dropout drop, bool cudnn) {
  if (cudnn)
    cuda::attention_forward_cudnn(out, state, qkv, B, T, C, NH, drop);
  else
    cuda::attention_forward(out, state, qkv, B, T, C, NH, drop);
}

void CudaBackend::attention_backward(cuda::bf16 *dqkv, float *, const cuda::bf16 *dout,
                                     const cuda::bf16 *qkv, const cuda::bf16 *out,
                                     const float *state, int B, int T, int C, int NH, Dropout drop,
                                     bool cudnn) {
  if (cudnn)
    cuda::attention_backward_cudnn(dqkv, dout, qkv, out, state, B, T, C, NH, drop);
  else
    cuda::attention_backward(dqkv, dout, qkv, out, state, B, T, C, NH, drop);
}

void CudaBackend::sum_squares(double *sums, const cuda::bf16 *grads,
                              const std::vector<Range> &ranges, float *scratch) {
  const size_t n = ranges.size();
  FINEGPT_CHECK(cuda::SUM_SQUARES_PARTIALS + n <= cuda::REDUCE_SCRATCH,
                "internal: more ranges than reduce_scratch holds");
  float *dev = scratch + cuda::SUM_SQUARES_PARTIALS;
  for (size_t i = 0; i < n; ++i)
    cuda::sum_squares(dev + i, grads + ranges[i].first, ranges[i].second - ranges[i].first,
                      scratch);
  std::vector<float> host(n);
  if (n) download(host.data(), dev, n * sizeof(float));
  for (size_t i = 0; i < n; ++i)
    sums[i] = double(host[i]);
}

void CudaBackend::adamw_update(cuda::bf16 *params, cuda::bf16 *grads, float *master, float *m,
                               float *v, size_t n, float lr, float beta1, float beta2, float eps,
                               float weight_decay, int t, float grad_scale, bool zero_grad) {
  cuda::adamw_update(params, grads, master, m, v, n, lr, beta1, beta2, eps, weight_decay, t,
                     grad_scale, zero_grad);
}

} // namespace finegpt
