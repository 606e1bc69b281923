// The stop request of a worker process: SIGTERM and SIGUSR1 set one flag that the loop and the
// retrying link check between units of work (a lease in hand is finished and submitted first).
// mpirun and srun forward SIGUSR1 to the ranks untouched, which is how the launch scripts stop them.
#pragma once

#include <atomic>

namespace srlm {

// Installs the handlers (once per process; later calls only return the flag) and returns the flag
// they set.
std::atomic<bool>* InstallStopSignalHandlers();

}  // namespace srlm
