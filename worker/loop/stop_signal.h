// The stop request of a worker process: SIGTERM and SIGUSR1 set one flag that the loop and the
// retrying link check between units of work (a lease in hand is finished and submitted first).
// mpirun and srun forward SIGUSR1 to the ranks untouched, which is how the launch scripts stop them.
#pragma once

#include <atomic>

namespace srlm {

// Blocks SIGTERM and SIGUSR1 in the calling thread (and so in every thread it, or a thread it
// starts, starts later) and starts one thread that takes them with sigwait and sets the flag; no
// signal handler ever interrupts the work (stop_signal.cc says why). Call it first, before any other
// thread starts. Once per process; later calls only return the flag. A forked child gets the two
// signals unblocked again (pthread_atfork), so a process it execs is stopped by them as usual.
std::atomic<bool>* InstallStopSignalHandlers();

}  // namespace srlm
