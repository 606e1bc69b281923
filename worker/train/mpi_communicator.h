// MPI plumbing shared by the MPI and NCCL communicators: one-time MPI initialisation and the host
// collectives over MPI_COMM_WORLD. Collective calls follow worker/train/communicator.h's rules.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace srlm::mpi {

// Initialises MPI once per process (MPI_THREAD_FUNNELED); MPI_Finalize runs at exit.
absl::Status EnsureInitialized();
int WorldRank();
int WorldSize();
// Rank among the processes on this node (for picking a GPU).
int LocalRank();
absl::Status AllReduceDoubles(std::vector<double>* values, bool max);
absl::Status BroadcastBytes(void* data, size_t bytes, int root);
absl::Status Barrier();
// Turns an MPI error code into a Status naming the call.
absl::Status CheckMpi(int rc, const char* what);
// Ends the process after a failure. Under MPI with more than one rank it aborts the whole job
// (MPI_Abort, so mpirun or srun ends every rank with an error): a plain exit would run MPI_Finalize,
// which waits for the other ranks while they wait in a collective for this one, and the job would
// hang with no exit code. Without MPI, or alone, it is std::exit.
[[noreturn]] void ExitAfterFailure(int exit_code);
// Ends the process, and with more than one rank the whole job, from any thread while the main thread
// may be stuck (also inside MPI): MPI_Abort, else std::_Exit. Exit handlers do not run (they could
// wait for the stuck thread); a SIGALRM armed first ends the process with `exit_code` in 30 s should
// the flush or MPI_Abort itself hang.
[[noreturn]] void AbortFromAnyThread(int exit_code);

// The exit code of a job that a stalled rank ended (EX_TEMPFAIL: the same command again resumes it).
inline constexpr int kStalledExitCode = 75;
// ProgressWatchdog's handler in the commands: logs "worker stalled: <description>" and what happens
// next, then AbortFromAnyThread(kStalledExitCode).
[[noreturn]] void AbortStalledJob(const std::string& description);

}  // namespace srlm::mpi
