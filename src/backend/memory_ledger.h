// Bookkeeping shared by the CUDA seam's memory functions (backend/cuda/runtime.cu and the host
// emulation in tests/emulation/): what device_malloc holds, its peak, the optional cap
// FINEGPT_DEVICE_MEMORY_CAP, and what host_alloc_pinned holds. Host code only; no CUDA header.
#pragma once
#include <cstddef>
#include <string>

#include "backend/cuda_ops.h"

namespace finegpt::cuda::ledger {

// The cap from FINEGPT_DEVICE_MEMORY_CAP ("24GiB", "24 GB", "1.5G", "512MiB", "4096" bytes...;
// GB means GiB as for --vram), read once; 0 without it. Error on a value that is not a size.
size_t device_cap();
// Parses a size as FINEGPT_DEVICE_MEMORY_CAP takes it; Error naming `what` on nonsense.
size_t parse_size(const std::string &text, const char *what);
// Before allocating `bytes`: Error if the cap would be passed (naming cap, request and held).
void check_cap(size_t bytes);
// After an allocation succeeded / before freeing it.
void on_device_alloc(void *p, size_t bytes);
void on_device_free(void *p) noexcept;
DeviceMemory device() noexcept;
void on_pinned_alloc(void *p, size_t bytes);
void on_pinned_free(void *p) noexcept;
size_t pinned() noexcept;

} // namespace finegpt::cuda::ledger
