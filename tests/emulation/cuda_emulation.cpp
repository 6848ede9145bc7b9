// A host emulation of the CUDA seam (backend/cuda_ops.h), for tests only: "device" memory is host
// memory, and every op is the CPU op (backend/ops.h) on the bf16 inputs widened to fp32, its
// outputs rounded to bf16 as the CUDA op stores them (LayerNorm statistics, lse, losses, master
// weights and moments stay fp32; accumulating outputs are read, accumulated in fp32 and rounded
// once per op, as the CUDA bodies do). Linked into finegpt_emu_lib instead of backend/cuda/, it
// lets the tests run CudaGPT, the CUDA engine and train(device='cuda') on a machine without a
// GPU: what they check there is the model's logic (buffers from the plan, recompute, dropout
// keys, the optimizer, resume, data parallelism), not the kernels, which the GPU op tests check
// against the same CPU ops.
#include "backend/cuda_ops.h"
#include "backend/memory_ledger.h"
#include "core/error.h"
#include "core/rng.h"
#include <cblas.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace finegpt::cuda {

namespace {

using fvec = std::vector<float>;

fvec widen(const bf16 *p, size_t n) {
  fvec out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = to_float(p[i]);
  return out;
}

void store(bf16 *p, const float *v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    p[i] = to_bf16(v[i]);
}

fvec widen_or_empty(const bf16 *p, size_t n) { return p ? widen(p, n) : fvec(); }
float *data_or_null(fvec &v) { return v.empty() ? nullptr : v.data(); }

float drop_scale(const Dropout &d) { return 1.0f / (1.0f - d.p); }

constexpr size_t kEmulatedBytes = size_t(16) << 30;

} // namespace

bool compiled() noexcept { return true; }
int device_count() noexcept { return 1; }
std::string device_summary() noexcept { return "0: finegpt host emulation of the CUDA seam"; }
bool device_info(int index, DeviceInfo *out) noexcept {
  if (index != 0) return false;
  out->name = "finegpt host emulation";
  out->sm_major = 9, out->sm_minor = 0;
  out->total_bytes = out->free_bytes = kEmulatedBytes;
  return true;
}
void set_device(int index) {
  FINEGPT_CHECK(index == 0, "emulated CUDA: no device ", index, " (there is one)");
}

void *device_malloc(size_t bytes) {
  ledger::check_cap(bytes); // FINEGPT_DEVICE_MEMORY_CAP, as on a GPU
  void *p = std::malloc(bytes ? bytes : 1);
  FINEGPT_CHECK(p, "emulated CUDA: out of host memory for ", bytes, " bytes");
  std::memset(p, 0xff, bytes); // as cudaMalloc: contents undefined; poison shows unwritten reads
  ledger::on_device_alloc(p, bytes);
  return p;
}
void device_free(void *ptr) noexcept {
  ledger::on_device_free(ptr);
  std::free(ptr);
}
DeviceMemory device_memory() noexcept { return ledger::device(); }
// Pinned memory is host memory here too; poisoned like device memory (cudaHostAlloc does not
// clear it either).
void *host_alloc_pinned(size_t bytes) {
  void *p = std::malloc(bytes ? bytes : 1);
  FINEGPT_CHECK(p, "emulated CUDA: could not pin ", bytes, " bytes of host memory");
  std::memset(p, 0xff, bytes);
  ledger::on_pinned_alloc(p, bytes);
  return p;
}
void host_free_pinned(void *ptr) noexcept {
  ledger::on_pinned_free(ptr);
  std::free(ptr);
}
size_t pinned_bytes() noexcept { return ledger::pinned(); }
// One host thread does everything in order: an asynchronous copy is done when it is queued, which
// is exactly the data a GPU's copy would read (it is ordered after the compute queued before it).
void copy_to_host_async(void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_to_device_async(void *dst, const void *src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void copies_wait() {}
void compute_waits_for_copies() {}
void copy_to_device(void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_to_host(void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); }
void device_memset(void *ptr, int byte, size_t bytes) { std::memset(ptr, byte, bytes); }
void synchronize() {}
void set_workspace(void *, size_t) {}
void release() noexcept {}

void encoder_forward(bf16 *out, const int32_t *inp, const bf16 *wte, const bf16 *wpe, int B, int T,
                     int C, Dropout drop) {
  const float scale = drop_scale(drop);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const size_t n = size_t(b) * T + t;
      for (int c = 0; c < C; ++c) {
        const float v =
            to_float(wte[size_t(inp[n]) * C + c]) + (wpe ? to_float(wpe[size_t(t) * C + c]) : 0.0f);
        const size_t i = n * C + c;
        out[i] = to_bf16(drop.p > 0 ? (dropout_keep(drop.key, i, drop.p) ? v * scale : 0.0f) : v);
      }
    }
}

void encoder_backward(bf16 *dwte, bf16 *dwpe, const bf16 *dout, const int32_t *inp, int B, int T,
                      int C, Dropout drop) {
  const float scale = drop_scale(drop);
  auto grad = [&](size_t i) {
    const float g = to_float(dout[i]);
    return drop.p > 0 ? (dropout_keep(drop.key, i, drop.p) ? g * scale : 0.0f) : g;
  };
  // Each row's contributions summed in fp32 in position order, then added once (as the kernel).
  std::map<int32_t, fvec> rows;
  fvec pos(size_t(T) * C, 0.0f);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const size_t n = size_t(b) * T + t;
      fvec &row = rows[inp[n]];
      row.resize(C, 0.0f);
      for (int c = 0; c < C; ++c) {
        row[c] += grad(n * C + c);
        pos[size_t(t) * C + c] += grad(n * C + c);
      }
    }
  for (auto &[tok, row] : rows)
    for (int c = 0; c < C; ++c) {
      bf16 &d = dwte[size_t(tok) * C + c];
      d = to_bf16(to_float(d) + row[c]);
    }
  if (dwpe)
    for (size_t i = 0; i < pos.size(); ++i)
      dwpe[i] = to_bf16(to_float(dwpe[i]) + pos[i]);
}

void layernorm_forward(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *weight,
                       const bf16 *bias, int N, int C) {
  const size_t NC = size_t(N) * C;
  fvec x = widen(inp, NC), w = widen(weight, C), bb = widen_or_empty(bias, C), y(NC);
  cpu::layernorm_forward(y.data(), mean, rstd, x.data(), w.data(), data_or_null(bb), N, C);
  store(out, y.data(), NC);
}

void layernorm_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                        const bf16 *weight, const float *mean, const float *rstd, int N, int C) {
  const size_t NC = size_t(N) * C;
  fvec dx = widen(dinp, NC), dw = widen(dweight, C), db = widen_or_empty(dbias, C);
  fvec dy = widen(dout, NC), x = widen(inp, NC), w = widen(weight, C);
  cpu::layernorm_backward(dx.data(), dw.data(), data_or_null(db), dy.data(), x.data(), w.data(),
                          mean, rstd, N, C);
  store(dinp, dx.data(), NC);
  store(dweight, dw.data(), C);
  if (dbias) store(dbias, db.data(), C);
}

void rmsnorm_forward(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight, int N, int C) {
  const size_t NC = size_t(N) * C;
  fvec x = widen(inp, NC), w = widen(weight, C), y(NC);
  cpu::rmsnorm_forward(y.data(), rstd, x.data(), w.data(), N, C);
  store(out, y.data(), NC);
}

void rmsnorm_backward(bf16 *dinp, bf16 *dweight, const bf16 *dout, const bf16 *inp,
                      const bf16 *weight, const float *rstd, int N, int C) {
  const size_t NC = size_t(N) * C;
  fvec dx = widen(dinp, NC), dw = widen(dweight, C), dy = widen(dout, NC), x = widen(inp, NC),
       w = widen(weight, C);
  cpu::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd, N, C);
  store(dinp, dx.data(), NC);
  store(dweight, dw.data(), C);
}

void qk_norm_forward(bf16 *qkv, float *rstd, int N, int C, int NH) {
  const size_t n = size_t(N) * 3 * C;
  fvec x = widen(qkv, n);
  cpu::qk_norm_forward(x.data(), rstd, N, C, NH);
  store(qkv, x.data(), n);
}

void qk_norm_backward(bf16 *dqkv, const bf16 *qkv, const float *rstd, int N, int C, int NH) {
  const size_t n = size_t(N) * 3 * C;
  fvec d = widen(dqkv, n), y = widen(qkv, n);
  cpu::qk_norm_backward(d.data(), y.data(), rstd, N, C, NH);
  store(dqkv, d.data(), n);
}

void rotary_forward(bf16 *qkv, int B, int T, int C, int NH, int pos0) {
  const size_t n = size_t(B) * T * 3 * C;
  fvec x = widen(qkv, n);
  cpu::rotary_forward(x.data(), B, T, C, NH, pos0);
  store(qkv, x.data(), n);
}

void rotary_backward(bf16 *dqkv, int B, int T, int C, int NH) {
  const size_t n = size_t(B) * T * 3 * C;
  fvec x = widen(dqkv, n);
  cpu::rotary_backward(x.data(), B, T, C, NH);
  store(dqkv, x.data(), n);
}

namespace {
fvec matmul(const bf16 *inp, const bf16 *weight, const bf16 *bias, int N, int C, int OC) {
  fvec x = widen(inp, size_t(N) * C), w = widen(weight, size_t(OC) * C);
  fvec b = widen_or_empty(bias, OC), y(size_t(N) * OC);
  cpu::matmul_forward(y.data(), x.data(), w.data(), data_or_null(b), N, C, OC);
  return y;
}
} // namespace

void matmul_forward(bf16 *out, const bf16 *inp, const bf16 *weight, const bf16 *bias, int N, int C,
                    int OC) {
  const fvec y = matmul(inp, weight, bias, N, C, OC);
  store(out, y.data(), y.size());
}

void matmul_forward_gelu(bf16 *out, bf16 *pre, const bf16 *inp, const bf16 *weight,
                         const bf16 *bias, int N, int C, int OC) {
  // The epilogue's GELU is of the fp32 accumulator, not of the rounded pre-activation.
  const fvec y = matmul(inp, weight, bias, N, C, OC);
  fvec g(y.size());
  cpu::gelu_forward(g.data(), y.data(), y.size());
  store(pre, y.data(), y.size());
  store(out, g.data(), g.size());
}

void matmul_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                     const bf16 *weight, int N, int C, int OC) {
  fvec dy = widen(dout, size_t(N) * OC), x = widen(inp, size_t(N) * C);
  fvec w = widen(weight, size_t(OC) * C), dw = widen(dweight, size_t(OC) * C);
  fvec db = widen_or_empty(dbias, OC), dx(dinp ? size_t(N) * C : 0);
  cpu::matmul_backward(data_or_null(dx), dw.data(), data_or_null(db), dy.data(), x.data(), w.data(),
                       N, C, OC);
  if (dinp) store(dinp, dx.data(), dx.size());
  store(dweight, dw.data(), dw.size());
  if (dbias) store(dbias, db.data(), db.size());
}

void attention_decode(bf16 *out, float *scores, const bf16 *q, const bf16 *kcache,
                      const bf16 *vcache, int B, int t, int Tmax, int C, int NH) {
  const fvec fq = widen(q, size_t(B) * C), k = widen(kcache, size_t(B) * Tmax * C),
             v = widen(vcache, size_t(B) * Tmax * C);
  fvec y(size_t(B) * C);
  cpu::attention_decode(y.data(), scores, fq.data(), k.data(), v.data(), B, t, Tmax, C, NH);
  store(out, y.data(), y.size());
}

void kv_append(bf16 *kcache, bf16 *vcache, bf16 *q, const bf16 *qkv, int B, int t, int Tmax,
               int C) {
  for (int b = 0; b < B; ++b) {
    const bf16 *row = qkv + size_t(b) * 3 * C;
    std::memcpy(q + size_t(b) * C, row, C * sizeof(bf16));
    std::memcpy(kcache + (size_t(b) * Tmax + t) * C, row + C, C * sizeof(bf16));
    std::memcpy(vcache + (size_t(b) * Tmax + t) * C, row + 2 * C, C * sizeof(bf16));
  }
}

namespace {
// The (B,NH,T,T) probabilities of the CPU op, which the CUDA op never stores.
fvec probabilities(const fvec &qkv, int B, int T, int C, int NH, Dropout drop) {
  fvec att(size_t(B) * NH * T * T), out(size_t(B) * T * C);
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH, drop);
  return att;
}
} // namespace

void attention_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                       Dropout drop) {
  const fvec x = widen(qkv, size_t(B) * T * 3 * C);
  fvec y(size_t(B) * T * C), att(size_t(B) * NH * T * T);
  cpu::attention_forward(y.data(), att.data(), x.data(), B, T, C, NH, drop);
  store(out, y.data(), y.size());
  const int HS = C / NH;
  const double scale = 1.0 / std::sqrt(double(HS));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        const float *q = x.data() + (size_t(b) * T + t) * 3 * C + h * HS;
        double m = -INFINITY;
        std::vector<double> s(t + 1);
        for (int j = 0; j <= t; ++j) {
          const float *k = x.data() + (size_t(b) * T + j) * 3 * C + C + h * HS;
          double dot = 0;
          for (int d = 0; d < HS; ++d)
            dot += double(q[d]) * k[d];
          s[j] = dot * scale;
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (double v : s)
          sum += std::exp(v - m);
        lse[(size_t(b) * NH + h) * T + t] = float(m + std::log(sum));
      }
}

void attention_backward(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *, const float *,
                        int B, int T, int C, int NH, Dropout drop) {
  const fvec x = widen(qkv, size_t(B) * T * 3 * C), dy = widen(dout, size_t(B) * T * C);
  const fvec att = probabilities(x, B, T, C, NH, drop);
  fvec dx(x.size()), scratch(att.size());
  cpu::attention_backward(dx.data(), scratch.data(), dy.data(), x.data(), att.data(), B, T, C, NH,
                          drop);
  store(dqkv, dx.data(), dx.size());
}

void gelu_forward(bf16 *out, const bf16 *inp, size_t N) {
  fvec x = widen(inp, N), y(N);
  cpu::gelu_forward(y.data(), x.data(), N);
  store(out, y.data(), N);
}

void gelu_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N) {
  fvec x = widen(inp, N), dy = widen(dout, N);
  cpu::gelu_backward(dy.data(), x.data(), dy.data(), N);
  store(dinp, dy.data(), N);
}

void relu2_forward(bf16 *out, const bf16 *inp, size_t N) {
  fvec x = widen(inp, N), y(N);
  cpu::relu2_forward(y.data(), x.data(), N);
  store(out, y.data(), N);
}

void relu2_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N) {
  fvec x = widen(inp, N), dy = widen(dout, N);
  cpu::relu2_backward(dy.data(), x.data(), dy.data(), N);
  store(dinp, dy.data(), N);
}

void softcap_forward(bf16 *x, size_t N, float cap) {
  fvec v = widen(x, N);
  cpu::softcap_forward(v.data(), N, cap);
  store(x, v.data(), N);
}

void residual_forward(bf16 *out, const bf16 *a, const bf16 *b, size_t N, Dropout drop) {
  fvec x = widen(a, N), y = widen(b, N);
  cpu::residual_forward(x.data(), x.data(), y.data(), N, drop);
  store(out, x.data(), N);
}

void dropout_backward(bf16 *dinp, const bf16 *dout, size_t N, Dropout drop) {
  fvec d = widen(dout, N);
  cpu::dropout_backward(d.data(), d.data(), N, drop);
  store(dinp, d.data(), N);
}

void crossentropy_forward_backward(float *losses, bf16 *logits, const int32_t *targets, int N,
                                   int V, int Vp, float dloss, float softcap) {
  fvec x = widen(logits, size_t(N) * Vp);
  cpu::crossentropy_forward_backward(losses, x.data(), targets, N, V, Vp, dloss, softcap);
  if (dloss != 0.0f) store(logits, x.data(), x.size());
}

void sum_squares(float *out, const bf16 *g, size_t n, float *) {
  double s = 0;
  for (size_t i = 0; i < n; ++i)
    s += double(to_float(g[i])) * to_float(g[i]);
  *out = float(s);
}

void gemm(bf16 *D, const bf16 *A, const bf16 *B, int m, int n, int k, bool transb, float alpha,
          float beta) {
  fvec a = widen(A, size_t(m) * k), b = widen(B, size_t(k) * n), d = widen(D, size_t(m) * n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a.data(), k, b.data(), transb ? k : n, beta, d.data(), n);
  store(D, d.data(), d.size());
}

// The CPU ops on widened values: the mix rounded to bf16 as the device's; the Newton-Schulz steps
// on the fp32 master weights in fp32, where a GPU's are bf16.
void muon_momentum(bf16 *grads, float *mom, size_t n, float momentum, float grad_scale) {
  fvec g = widen(grads, n);
  cpu::muon_momentum(g.data(), mom, n, momentum, grad_scale);
  store(grads, g.data(), n);
}

void muon_orthogonal_update(bf16 *params, float *master, const bf16 *u, bf16 *scratch, float *,
                            int rows, int cols, size_t lo, size_t hi, float lr) {
  const size_t n = size_t(rows) * cols;
  fvec w = widen(u, n), work(cpu::muon_scratch_elems(rows, cols));
  cpu::muon_orthogonal_update(master, w.data(), work.data(), rows, cols, lo, hi, lr);
  store(params, master, hi - lo);
  std::memset(scratch, 0xff, work.size() * sizeof(bf16)); // used, as the device's is
}

void adamw_update(bf16 *params, bf16 *grads, float *master, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale,
                  bool zero_grad) {
  fvec g = widen(grads, n);
  cpu::adamw_update(master, g.data(), m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale,
                    false);
  store(params, master, n);
  if (zero_grad) std::memset(grads, 0, n * sizeof(bf16));
}

} // namespace finegpt::cuda
