// The kernel-host harness catches the faults it exists for. Built twice, each time against
// attention.cu compiled with one injected fault (FINEGPT_KERNEL_FAULT, CMakeLists.txt here):
// 1. A-fragment registers 1 and 2 swapped in load_a: the forward's output must be far from the
//    CPU op's (this test fails if the harness stops seeing a wrong fragment layout);
// 2. the forward's __syncthreads before it reloads the K/V tiles left out: under ThreadSanitizer
//    the run must report a data race in attention_forward_kernel (ctest matches the report).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda_ops.h"
#include "backend/ops.h"
#include "core/rng.h"

namespace fc = finegpt::cuda;

namespace {

// Normwise relative error of the harness's attention forward against the CPU op at B=1,
// NH=2, HS=64 and T = 130 (three query tiles, the last partial).
double attention_forward_error() {
  const int B = 1, T = 130, NH = 2, C = 128;
  finegpt::Rng rng(3);
  std::vector<float> qkv(size_t(B) * T * 3 * C), out(size_t(B) * T * C),
      att(size_t(B) * NH * T * T);
  std::vector<fc::bf16> h_qkv(qkv.size()), h_out(out.size());
  std::vector<float> lse(size_t(B) * NH * T);
  for (size_t i = 0; i < qkv.size(); i++) {
    h_qkv[i] = fc::to_bf16(rng.normal());
    qkv[i] = fc::to_float(h_qkv[i]);
  }
  finegpt::cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH, {});
  fc::attention_forward(h_out.data(), lse.data(), h_qkv.data(), B, T, C, NH, {});
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < out.size(); i++) {
    const double d = double(fc::to_float(h_out[i])) - out[i];
    err += d * d, ref += double(out[i]) * out[i];
  }
  return std::sqrt(err / ref);
}

#if KERNEL_HOST_FAULT == 1
TEST(KernelHostFault, SwappedFragmentRegisterIsCaught) {
  const double err = attention_forward_error();
  EXPECT_GT(err, 0.1) << "the harness ran a kernel with swapped A-fragment registers and got the "
                         "right answer: its mma.sync no longer follows the PTX fragment maps";
}
#else
TEST(KernelHostFault, MissingBarrierRuns) {
  // The result may be right or wrong (it depends on timing); ThreadSanitizer's report is the
  // check, whatever the interleaving.
  const double err = attention_forward_error();
  std::printf("normwise error with the barrier left out: %.3g\n", err);
}
#endif

} // namespace
