// Stands in for dist/nccl.cpp in builds without NCCL (FINEGPT_NCCL off, or no CUDA backend).
#include "core/error.h"
#include "dist/nccl.h"

namespace finegpt {

bool nccl_compiled_in() { return false; }

std::unique_ptr<DeviceComm> make_nccl_comm(Communicator &, double) {
  fail("this build has no NCCL: GPU data parallelism needs the CUDA backend and NCCL (install "
       "NCCL or point NCCL_ROOT at it, and reconfigure with -DFINEGPT_NCCL=ON)");
}

} // namespace finegpt
