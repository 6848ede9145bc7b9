// The GPU catalog: the cards our users have, with usable memory, dense bf16 and fp32
// throughput, memory bandwidth and bf16 support, each figure with its source; and forgiving
// name matching ("4090", "rtx4090", "RTX 4090", "h100 sxm").
#pragma once
#include <string>
#include <vector>

namespace finegpt {

struct GpuSpec {
  std::string name;     // canonical, e.g. "RTX 4090", "H100 SXM", "A100 80GB SXM"
  double sm;            // compute capability, e.g. 8.9
  double vram_gib;      // nominal memory in GiB as marketed (24 for a 4090)
  double usable_gib;    // what cudaMemGetInfo reports as total (measured where known)
  double bf16_tflops;   // dense, fp32 accumulate (fp16 where bf16 is absent)
  double fp32_tflops;   // dense fp32 (non-tensor)
  double bandwidth_gbs; // memory bandwidth GB/s
  bool bf16;            // native bf16 tensor cores (sm >= 8.0)
  std::string source;   // where the figures come from
};

const std::vector<GpuSpec> &gpu_catalog();
// Finds a GPU by a forgiving name; Error naming the input and the closest catalog names when
// nothing matches or the name is ambiguous. Case, spaces and dashes do not matter, nor the
// words nvidia, geforce, rtx, tesla, quadro: "4090", "rtx4090", "NVIDIA GeForce RTX 4090" all
// find the RTX 4090. A name must say every word that tells entries apart: "3090" is the RTX
// 3090 (the Ti needs "ti"), "a100" is ambiguous (40GB or 80GB), "h100" too (PCIe or SXM).
// With `note` (a name a user typed), a name ambiguous between the variants of a card that has a
// common one is that one instead, and `note` says so and names the others: "H100" is the H100
// SXM (nvidia-smi's "NVIDIA H100 80GB HBM3"), "A100" the A100 80GB SXM; `note` is left as it
// is otherwise.
const GpuSpec &find_gpu(const std::string &name, std::string *note = nullptr);
// The dense bf16 peak in FLOP/s (fp16 where the card has no bf16) of the catalog GPU that
// `driver_name` (cudaDeviceProp::name) matches, or 0 when none matches or the name is ambiguous:
// the denominator of MFU.
double peak_flops_of(const std::string &driver_name) noexcept;
// Parses "24GB", "24 GiB", "24", "23.5G", "16384MiB", "2TB" into GiB; Error on nonsense (empty,
// not a number, an unknown unit, <= 0, more than 4096 GiB). GB means GiB as users say it (a
// "24GB" card has 24 GiB); MB means MiB and TB TiB likewise.
double parse_vram_gib(const std::string &text);

} // namespace finegpt
