// Causal self-attention through cuDNN's fused attention (SDPA graphs of the cudnn-frontend C++
// API, header only): an alternative to our flash kernel (attention.cu) with the same layouts and
// semantics, kept so that a GPU run can compare the two (correctness against the CPU op, speed);
// the model uses ours until that comparison is made. Host code only (the frontend is plain C++).
//
// Layouts, without copies or transposes: qkv (B,T,3C) holds q, k, v at column offsets 0, C, 2C
// and head h at h*HS within each, so Q, K and V are (B,NH,T,HS) tensors with strides
// (T*3C, HS, 3C, 1) at base pointers qkv, qkv + C, qkv + 2C; O, dO (B,T,C) are (B,NH,T,HS) with
// strides (T*C, HS, C, 1); dQ, dK, dV are dqkv viewed as Q, K, V. Stats is (B,NH,T,1) fp32,
// packed (strides NH*T, T, 1, 1): our lse (B,NH,T).
//
// Stats = lse. cuDNN's softmax statistics are max_j s_ij + log(sum_j exp(s_ij - max_j s_ij)), in
// natural log, over the scores after the attention scale and the causal mask (s_ij = scale
// q_i.k_j for j <= i): the frontend lowers the sdpa node's softmax to max, sub, exp, sum, then
// LOG and ADD into Stats (cudnn_frontend/node/softmax.h), and its set_stats_use_log2 documents
// the default as "cuDNN's natural-log convention" (base 2 only on request, cuDNN 9.27+). That is
// exactly our lse = log sum_j exp(scale q.k_j), so the forwards' (out, lse) are interchangeable
// and either backward may consume either forward's outputs (tested on a GPU).
//
// Differences from ours: no dropout (cuDNN draws its own Philox masks, which cannot reproduce
// the CPU's dropout_keep masks, so p > 0 is an Error); the backward is not bitwise repeatable
// (cuDNN accumulates dQ with fp32 atomics in its workspace; its deterministic mode on Hopper
// needs a (B,NH,T,T) bf16 workspace, 200 MB at GPT-2 124M's B=8); head sizes are what cuDNN
// supports (multiples of 8 up to 128 here). Graphs are built once per shape (the first call costs
// heuristics, and possibly NVRTC compilation inside cuDNN) and cached; the handle is created on
// the backend's stream and freed with the graphs by cuda::release(). Temporaries come from the
// backend's workspace (set_workspace); a graph that needs more is an Error naming the size.
#define CUDNN_FRONTEND_SKIP_JSON_LIB // no serialisation: no nlohmann/json (the frontend bundles
                                     // one)
#include <cudnn.h>
#include <cudnn_frontend.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>

#include "backend/cuda/common_host.h"

namespace finegpt::cuda {

namespace fe = cudnn_frontend;

namespace {

// Tensor uids of the variant packs.
enum Uid : int64_t { Q = 1, K, V, O, STATS, DO, DQ, DK, DV };

struct Graph {
  std::shared_ptr<fe::graph::Graph> graph;
  int64_t workspace = 0;
};

struct Key {
  int B, T, C, NH;
  bool backward;
  bool operator<(const Key &o) const {
    return std::tie(B, T, C, NH, backward) < std::tie(o.B, o.T, o.C, o.NH, o.backward);
  }
};

struct State {
  std::mutex mu;
  cudnnHandle_t handle = nullptr;
  int device = -1;
  std::map<Key, Graph> graphs;
};
State &state() {
  static State s;
  return s;
}

[[noreturn]] void cudnn_fail(cudnnStatus_t st, const char *what) {
  // libcudnn.so.9 dlopens its sub-libraries (libcudnn_graph.so.9, ...) by name: from a wheel's
  // folder they are found only through LD_LIBRARY_PATH (scripts/device_check.sh sets it).
  const bool sublib = st == CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED ||
                      st == CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE;
  fail("cuDNN error: ", cudnnGetErrorString(st), " in ", what,
       sublib ? " (put the folder of libcudnn.so.9 and its libcudnn_*.so.9 on LD_LIBRARY_PATH)"
              : "");
}
#define CUDNN_CHECK(expr)                                                                          \
  do {                                                                                             \
    const cudnnStatus_t st_ = (expr);                                                              \
    if (st_ != CUDNN_STATUS_SUCCESS) cudnn_fail(st_, #expr);                                       \
  } while (0)

// A frontend status as one line: the op, the shape, the step and the frontend's message.
void fe_check(fe::error_t status, const Key &k, const char *step) {
  if (status.is_good()) return;
  std::string msg = status.get_message();
  for (char &c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  fail("cuDNN attention (", k.backward ? "backward" : "forward", ", B=", k.B, " T=", k.T,
       " C=", k.C, " NH=", k.NH, "): ", step, " failed: ", msg, " (cuDNN ", cudnnGetVersion(),
       ", frontend ", CUDNN_FRONTEND_VERSION, ")");
}

// The handle for the current device, on the backend's stream (created on first use). Called
// with the state's lock held.
cudnnHandle_t handle_locked(State &s) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  if (!s.handle) {
    CUDNN_CHECK(cudnnCreate(&s.handle));
    CUDNN_CHECK(cudnnSetStream(s.handle, detail::stream()));
    s.device = device;
  }
  FINEGPT_CHECK(s.device == device, "internal: cuDNN attention's handle belongs to device ",
                s.device, ", not the current device ", device, " (call cuda::release() first)");
  return s.handle;
}

std::shared_ptr<fe::graph::Tensor_attributes> tensor(fe::graph::Graph &g, const char *name, Uid uid,
                                                     const Key &k, int64_t row_stride) {
  const int64_t HS = k.C / k.NH;
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim({k.B, k.NH, k.T, HS})
                      .set_stride({int64_t(k.T) * row_stride, HS, row_stride, 1}));
}

// Builds the graph of one shape and direction (heuristics mode A, the first plan that builds).
Graph build(cudnnHandle_t handle, const Key &k) {
  const int64_t HS = k.C / k.NH;
  const float scale = 1.0f / std::sqrt(float(HS)); // the CPU op's expression
  auto g = std::make_shared<fe::graph::Graph>();
  g->set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const int64_t qkv_row = 3 * int64_t(k.C), out_row = k.C;
  auto q = tensor(*g, "Q", Q, k, qkv_row), kk = tensor(*g, "K", K, k, qkv_row),
       v = tensor(*g, "V", V, k, qkv_row);
  const std::vector<int64_t> stats_dim = {k.B, k.NH, k.T, 1},
                             stats_stride = {int64_t(k.NH) * k.T, k.T, 1, 1};
  if (!k.backward) {
    auto opts = fe::graph::SDPA_attributes()
                    .set_name("attention_forward")
                    .set_generate_stats(true)
                    .set_causal_mask(true)
                    .set_attn_scale(scale);
    auto [o, stats] = g->sdpa(q, kk, v, opts);
    o->set_output(true)
        .set_uid(O)
        .set_dim({k.B, k.NH, k.T, HS})
        .set_stride({int64_t(k.T) * out_row, HS, out_row, 1});
    stats->set_output(true)
        .set_uid(STATS)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim(stats_dim)
        .set_stride(stats_stride);
  } else {
    auto o = tensor(*g, "O", O, k, out_row), dout = tensor(*g, "dO", DO, k, out_row);
    auto stats = g->tensor(fe::graph::Tensor_attributes()
                               .set_name("Stats")
                               .set_uid(STATS)
                               .set_data_type(fe::DataType_t::FLOAT)
                               .set_dim(stats_dim)
                               .set_stride(stats_stride));
    auto opts = fe::graph::SDPA_backward_attributes()
                    .set_name("attention_backward")
                    .set_causal_mask(true)
                    .set_attn_scale(scale);
    auto [dq, dk, dv] = g->sdpa_backward(q, kk, v, o, dout, stats, opts);
    const std::vector<int64_t> dim = {k.B, k.NH, k.T, HS},
                               stride = {int64_t(k.T) * qkv_row, HS, qkv_row, 1};
    dq->set_output(true).set_uid(DQ).set_dim(dim).set_stride(stride);
    dk->set_output(true).set_uid(DK).set_dim(dim).set_stride(stride);
    dv->set_output(true).set_uid(DV).set_dim(dim).set_stride(stride);
  }
  fe_check(g->validate(), k, "validate");
  fe_check(g->build_operation_graph(handle), k, "build_operation_graph");
  fe_check(g->create_execution_plans({fe::HeurMode_t::A}), k, "create_execution_plans");
  fe_check(g->check_support(handle), k, "check_support");
  fe_check(g->build_plans(handle), k, "build_plans");
  Graph out{g, 0};
  fe_check(g->get_workspace_size(out.workspace), k, "get_workspace_size");
  return out;
}

void check_args(const char *op, int B, int T, int C, int NH, const Dropout &drop,
                std::initializer_list<const void *> ptrs) {
  FINEGPT_CHECK(drop.p == 0.0f, op, ": dropout ", drop.p,
                " is not supported by the cuDNN attention (its masks are not the CPU's); use "
                "attention_forward/attention_backward");
  FINEGPT_CHECK(B > 0 && T > 0 && NH > 0 && C > 0 && C % NH == 0, op, ": bad shape B=", B, " T=", T,
                " C=", C, " NH=", NH);
  const int HS = C / NH;
  FINEGPT_CHECK(HS % 8 == 0 && HS <= 128, op, ": head size ", HS,
                " is not supported by the cuDNN attention (multiples of 8 up to 128)");
  for (const void *p : ptrs)
    FINEGPT_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0, op,
                  ": internal: cuDNN needs 16-byte aligned tensors");
}

// The cached graph of a shape and direction (built on first use), and the handle.
std::pair<const Graph *, cudnnHandle_t> graph_for(const Key &k) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  cudnnHandle_t h = handle_locked(s);
  auto it = s.graphs.find(k);
  if (it == s.graphs.end()) it = s.graphs.emplace(k, build(h, k)).first;
  return {&it->second, h};
}

void execute(const char *op, const Key &k, std::unordered_map<int64_t, void *> &pack) {
  const auto [g, h] = graph_for(k);
  const detail::Workspace ws = detail::workspace();
  FINEGPT_CHECK(size_t(g->workspace) <= ws.bytes, op, ": cuDNN needs a workspace of ", g->workspace,
                " bytes at B=", k.B, " T=", k.T, " C=", k.C, " NH=", k.NH, "; the backend's has ",
                ws.bytes, " (pass a larger one to cuda::set_workspace)");
  fe_check(g->graph->execute(h, pack, g->workspace > 0 ? ws.ptr : nullptr), k, "execute");
}

} // namespace

namespace detail {
void release_cudnn() noexcept {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.handle) cudaStreamSynchronize(stream());
  s.graphs.clear(); // their plans before the handle
  if (s.handle) cudnnDestroy(s.handle);
  s.handle = nullptr, s.device = -1;
}
} // namespace detail

bool cudnn_attention_compiled() noexcept { return true; }

size_t cudnn_attention_workspace_bytes(int B, int T, int C, int NH) {
  check_args("cudnn_attention_workspace_bytes", B, T, C, NH, {}, {});
  const Graph *f = graph_for({B, T, C, NH, false}).first;
  const Graph *b = graph_for({B, T, C, NH, true}).first;
  return size_t(std::max(f->workspace, b->workspace));
}

void attention_forward_cudnn(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                             Dropout drop) {
  check_args("attention_forward_cudnn", B, T, C, NH, drop, {out, lse, qkv});
  auto *x = const_cast<bf16 *>(qkv); // the variant pack takes void*; cuDNN only reads inputs
  std::unordered_map<int64_t, void *> pack = {
      {Q, x}, {K, x + C}, {V, x + 2 * C}, {O, out}, {STATS, lse}};
  execute("attention_forward_cudnn", {B, T, C, NH, false}, pack);
}

void attention_backward_cudnn(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                              const float *lse, int B, int T, int C, int NH, Dropout drop) {
  check_args("attention_backward_cudnn", B, T, C, NH, drop, {dqkv, dout, qkv, out, lse});
  auto *x = const_cast<bf16 *>(qkv);
  std::unordered_map<int64_t, void *> pack = {{Q, x},
                                              {K, x + C},
                                              {V, x + 2 * C},
                                              {O, const_cast<bf16 *>(out)},
                                              {DO, const_cast<bf16 *>(dout)},
                                              {STATS, const_cast<float *>(lse)},
                                              {DQ, dqkv},
                                              {DK, dqkv + C},
                                              {DV, dqkv + 2 * C}};
  execute("attention_backward_cudnn", {B, T, C, NH, true}, pack);
}

} // namespace finegpt::cuda
