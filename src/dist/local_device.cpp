// Which CUDA device a rank uses (see nccl.h): the launcher's local rank, one GPU per rank.
// In every build: it needs only the backend's device count (0 in a build without CUDA).
#include "backend/cuda_ops.h"
#include "core/error.h"
#include "dist/nccl.h"

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace finegpt {

int local_rank_from_env() {
  for (const char *name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char *v = std::getenv(name);
    if (!v || !*v) continue;
    char *end = nullptr;
    errno = 0;
    const long r = std::strtol(v, &end, 10);
    FINEGPT_CHECK(errno == 0 && *end == '\0' && r >= 0 && r <= INT_MAX, "the launcher set ", name,
                  "='", v, "', which is not a local rank (a non-negative integer)");
    return int(r);
  }
  return 0;
}

int device_for_local_rank(int local_rank, int visible_devices) {
  FINEGPT_CHECK(local_rank >= 0, "internal: local rank ", local_rank, " is negative");
  if (visible_devices <= 1) return visible_devices == 1 ? 0 : local_rank;
  FINEGPT_CHECK(local_rank < visible_devices, "local rank ", local_rank,
                " has no GPU of its own: this node shows ", visible_devices,
                " CUDA devices; start at most ", visible_devices,
                " ranks per node (one GPU per rank)");
  return local_rank;
}

int local_device_index() {
  return device_for_local_rank(local_rank_from_env(), cuda::device_count());
}

} // namespace finegpt
