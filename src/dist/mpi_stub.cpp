// Stands in for dist/mpi.cpp in builds without MPI.
#include "core/error.h"
#include "dist/comm.h"

namespace finegpt {

bool mpi_compiled_in() { return false; }

std::unique_ptr<Communicator> make_mpi_communicator(double) {
  fail("launched with several ranks, but this build has no MPI (install libopenmpi-dev and "
       "rebuild: scripts/setup.sh)");
}

} // namespace finegpt
