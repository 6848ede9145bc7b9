// The op seam: every op the GPT model uses, declared once. The model's forward and backward
// (model/model.h) are written against these declarations only. Bodies: backend/cpu/*.cpp (fp32,
// OpenMP, GEMMs through OpenBLAS). The CUDA bodies (bf16, device pointers) are declared with the
// same names and argument order in backend/cuda_ops.h.
//
// Conventions (llm.c's): the output comes first; shapes are in the comment, with
// B batch, T time, C channels, OC output channels, NH heads, HS = C/NH head size,
// V vocabulary, Vp padded vocabulary, N = B*T rows. Weights are stored (out, in) row-major.
// "+=" in a comment means the op accumulates into that output; "=" means it overwrites it.
// Every op is deterministic for a fixed thread count.
#pragma once
#include "core/error.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace finegpt {

// Dropout of probability p, its mask a pure function of (key, element index) so backward
// regenerates it (core/rng.h dropout_keep). p == 0 means no dropout and no work.
struct Dropout {
  float p = 0.0f;
  uint64_t key = 0;
};

namespace cpu {

// out (B,T,C) = dropout(wte[inp[b,t]] + wpe[t]);  inp (B,T);  wpe null: no position term (rotary)
void encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B,
                     int T, int C, Dropout drop);
// dwte (Vp,C) +=, dwpe (T,C) +=  from dout (B,T,C); dout is the gradient after dropout; dwpe may
// be null (rotary)
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, int B, int T,
                      int C, Dropout drop);

// out (N,C) = (inp - mean) * rstd * weight + bias;  mean, rstd (N) =;  bias may be null.
// eps = 1e-5, biased variance (as torch.nn.functional.layer_norm).
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
// dinp (N,C) +=, dweight (C) +=, dbias (C) += (may be null)
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C);

// RMSNorm: out (N,C) = inp * rstd * weight;  rstd (N) = 1/sqrt(mean(inp^2) + 1e-6)
// (model/plan.h kRmsNormEps). The gain is LLaMA's; there is no bias.
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C);
// dinp (N,C) +=, dweight (C) +=;  with xhat = inp * rstd and g = dout * weight:
// dx = rstd * (g - xhat * mean(g * xhat)),  dweight = sum_n dout * xhat
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C);

// QK-norm: in place on qkv (N,3C), each head's q and k (HS = C/NH columns) replaced by
// x / sqrt(mean(x^2) + 1e-6) (parameterless); rstd (N, 2NH) = the factors, q heads then k heads.
void qk_norm_forward(float *qkv, float *rstd, int N, int C, int NH);
// In place on dqkv (N,3C): the q and k columns, the gradient after the norm, become the gradient
// before it, dx = rstd * (dy - y * mean(dy * y)), y the normalised values the forward left in qkv.
// v columns untouched.
void qk_norm_backward(float *dqkv, const float *qkv, const float *rstd, int N, int C, int NH);

// Rotary position embedding, in place on the q and k columns of qkv (B,T,3C), position pos0 + t
// for row (b, t): per head, the pairs (i, i + HS/2), i < HS/2 (the half split of GPT-NeoX and
// LLaMA) rotated by the angle (pos0 + t) * 10000^(-2i/HS) (model/plan.h kRotaryBase), angles and
// their cosines in double. HS even.
void rotary_forward(float *qkv, int B, int T, int C, int NH, int pos0);
// In place on dqkv (B,T,3C): the q and k columns rotated back (the transpose, position t).
void rotary_backward(float *dqkv, int B, int T, int C, int NH);

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC);  bias may be null
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int C, int OC);
// dinp (N,C) = dout @ weight;  dweight (OC,C) += dout^T @ inp;  dbias (OC) += sum_rows dout
// (dbias may be null; dinp may be null when the input needs no gradient)
void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

// Causal self-attention, scale 1/sqrt(HS).  qkv (B,T,3C) holds q | k | v, head h at
// columns h*HS..; out (B,T,C) = dropout(att) @ v with heads re-interleaved;
// att (B,NH,T,T) = softmax probabilities before dropout (entries above the diagonal are 0).
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                       Dropout drop);
// dqkv (B,T,3C) =;  scratch (B,NH,T,T) is working memory
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH, Dropout drop);

// GELU, tanh approximation: out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void gelu_forward(float *out, const float *inp, size_t N);
// dinp (N) = gelu'(inp) * dout;  dinp may alias dout
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);

// ReLU squared: out (N) = max(x, 0)^2
void relu2_forward(float *out, const float *inp, size_t N);
// dinp (N) = 2 max(x, 0) * dout;  dinp may alias dout
void relu2_backward(float *dinp, const float *inp, const float *dout, size_t N);

// Logit soft-capping, in place: x (N) = cap * tanh(x / cap), cap > 0
void softcap_forward(float *x, size_t N, float cap);

// out (N) = a + dropout(b);  out may alias a
void residual_forward(float *out, const float *a, const float *b, size_t N, Dropout drop);
// dinp (N) = dropout mask * dout / (1-p)   (the backward of dropout alone; may alias)
void dropout_backward(float *dinp, const float *dout, size_t N, Dropout drop);

// Fused softmax cross-entropy over the first V of Vp columns.  logits (N,Vp) in;
// losses (N) = -log softmax(logits[n, :V])[targets[n]];  when dloss != 0 the logits are
// overwritten in place by their gradient: (softmax - onehot) * dloss for columns < V, 0 for
// the padding columns.  targets must be in [0, V).  softcap > 0: the logits are already capped
// (softcap_forward, y = cap tanh(x / cap)) and the gradient is taken through the cap, the
// gradient of y times 1 - (y / cap)^2, so the logits become the gradient of the raw ones.
void crossentropy_forward_backward(float *losses, float *logits, const int32_t *targets, int N,
                                   int V, int Vp, float dloss, float softcap = 0.0f);

// sum of squares of g (n), accumulated in double
double sum_squares(const float *g, size_t n);

// PyTorch's AdamW (decoupled decay, bias-corrected) on one tensor, with the gradient scaled by
// grad_scale first (global-norm clipping).  step t counts from 1.  When zero_grad, grads is
// set to 0 in the same pass.
void adamw_update(float *params, float *grads, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t, float grad_scale,
                  bool zero_grad);

// Muon (modded-nanogpt's, Keller Jordan 2024) on one weight matrix W (rows, cols) row-major, in
// two parts, so that under ZeRO-1 each rank can run the first on its shard of the momentum and
// the second on whole matrices (optim/optim.cpp). With g = grads * grad_scale and mom the
// momentum buffer, muon_momentum (elementwise, any n):
//   mom = mu mom + (1 - mu) g;  U = (1 - mu) g + mu mom  (Nesterov), written over grads;
// muon_orthogonal_update, on the whole matrix U:  X = U / (|U|_F + 1e-7);
//   five Newton-Schulz steps on X (on X^T when rows > cols):  A = X X^T;  B = b A + c A A;
//   X = a X + B X  with (a, b, c) = (3.4445, -4.7750, 2.0315);
//   W -= lr sqrt(max(1, rows / cols)) X  for the elements [lo, hi) of W (row-major), w[0] being
//   element lo. scratch: muon_scratch_elems(rows, cols) floats.
constexpr float kMuonA = 3.4445f, kMuonB = -4.7750f, kMuonC = 2.0315f;
constexpr int kMuonSteps = 5;
constexpr float kMuonEps = 1e-7f;
inline size_t muon_scratch_elems(int rows, int cols) {
  const size_t m = size_t(std::min(rows, cols));
  return 2 * size_t(rows) * size_t(cols) + 2 * m * m;
}
// Both engines' argument check for muon_orthogonal_update; returns rows * cols.
inline size_t muon_check_window(int rows, int cols, size_t lo, size_t hi) {
  FINEGPT_CHECK(rows > 0 && cols > 0, "muon_orthogonal_update: matrix ", rows, " x ", cols);
  const size_t n = size_t(rows) * size_t(cols);
  FINEGPT_CHECK(lo <= hi && hi <= n, "muon_orthogonal_update: elements [", lo, ", ", hi, ") of a ",
                rows, " x ", cols, " matrix");
  return n;
}
void muon_momentum(float *grads, float *mom, size_t n, float momentum, float grad_scale);
void muon_orthogonal_update(float *w, const float *u, float *scratch, int rows, int cols, size_t lo,
                            size_t hi, float lr);

} // namespace cpu
} // namespace finegpt

namespace finegpt::cpu {
// One decoding step of causal attention against a KV cache.  q (B,C) is the new position's
// query; kcache, vcache (B,Tmax,C) hold keys and values of positions 0..t (t included, already
// written); out (B,C) =;  scores (B,NH,t+1) is working memory.
void attention_decode(float *out, float *scores, const float *q, const float *kcache,
                      const float *vcache, int B, int t, int Tmax, int C, int NH);
// The new position's keys and values from qkv (B,3C) into row t of kcache, vcache (B,Tmax,C), and
// its queries packed into q (B,C) for attention_decode.
void kv_append(float *kcache, float *vcache, float *q, const float *qkv, int B, int t, int Tmax,
               int C);
} // namespace finegpt::cpu
