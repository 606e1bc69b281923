// The MPI communicator (CPU tensors) and the MPI helpers of worker/train/mpi_communicator.h.
#include "worker/train/mpi_communicator.h"

#include <mpi.h>
#include <torch/torch.h>

#include <unistd.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/train/communicator.h"

namespace srlm {
namespace mpi {

absl::Status CheckMpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, message, &length);
  return absl::InternalError(absl::StrCat(what, " failed: ", std::string(message, length)));
}

absl::Status EnsureInitialized() {
  static absl::Status status = [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return absl::OkStatus();
    int provided = 0;
    absl::Status s = CheckMpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (!s.ok()) return s;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
    return absl::OkStatus();
  }();
  return status;
}

namespace {
// The number of ranks while MPI is running, else 1.
int RunningWorldSize() {
  int initialized = 0, finalized = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

std::atomic<int> g_backstop_exit_code{1};
void ExitOnBackstopAlarm(int) { ::_exit(g_backstop_exit_code.load()); }

// Before anything that could block (a log line or a flush on a hung stream, MPI_Abort): in 30 s the
// process ends with `exit_code` whatever happens.
void ArmExitBackstop(int exit_code) {
  g_backstop_exit_code = exit_code;
  std::signal(SIGALRM, ExitOnBackstopAlarm);
  ::alarm(30);
}
}  // namespace

void ExitAfterFailure(int exit_code) {
  if (RunningWorldSize() > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

void AbortFromAnyThread(int exit_code) {
  ArmExitBackstop(exit_code);
  std::fflush(nullptr);
  if (RunningWorldSize() > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

void AbortStalledJob(const std::string& description) {
  ArmExitBackstop(kStalledExitCode);
  SRLM_LOG(ERROR) << "worker stalled: " << description << ". Ending the job (exit code " << kStalledExitCode
                  << ") so that it can be restarted: run the same command again to resume";
  AbortFromAnyThread(kStalledExitCode);
}

int WorldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int WorldSize() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

int LocalRank() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, WorldRank(), MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_free(&node);
  return r;
}

absl::Status AllReduceDoubles(std::vector<double>* values, bool max) {
  return CheckMpi(MPI_Allreduce(MPI_IN_PLACE, values->data(), static_cast<int>(values->size()), MPI_DOUBLE,
                                max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD),
                  "MPI_Allreduce(host values)");
}

absl::Status BroadcastBytes(void* data, size_t bytes, int root) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {  // MPI counts are int: send in chunks below 2 GiB.
    const int chunk = static_cast<int>(std::min<size_t>(bytes, INT_MAX / 2));
    absl::Status s = CheckMpi(MPI_Bcast(p, chunk, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    if (!s.ok()) return s;
    p += chunk;
    bytes -= chunk;
  }
  return absl::OkStatus();
}

absl::Status Barrier() { return CheckMpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

}  // namespace mpi

namespace {

absl::StatusOr<MPI_Datatype> MpiType(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kFloat32) return MPI_FLOAT;
  if (t.scalar_type() == torch::kFloat64) return MPI_DOUBLE;
  return absl::InvalidArgumentError(absl::StrCat("MPI all-reduce supports float32/float64, got ",
                                                 c10::toString(t.scalar_type())));
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() : rank_(mpi::WorldRank()), world_size_(mpi::WorldSize()), local_rank_(mpi::LocalRank()) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend_name() const override { return "mpi"; }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    if (!tensor.device().is_cpu() || !tensor.is_contiguous()) {
      return absl::InvalidArgumentError("MPI all-reduce needs a contiguous CPU tensor");
    }
    SRLM_ASSIGN_OR_RETURN(MPI_Datatype type, MpiType(tensor));
    char* p = static_cast<char*>(tensor.data_ptr());
    int64_t remaining = tensor.numel();
    const int64_t element = tensor.element_size();
    while (remaining > 0) {
      const int count = static_cast<int>(std::min<int64_t>(remaining, INT_MAX / 2));
      absl::Status s = mpi::CheckMpi(MPI_Allreduce(MPI_IN_PLACE, p, count, type, MPI_SUM, MPI_COMM_WORLD),
                                     "MPI_Allreduce(tensor)");
      if (!s.ok()) return s;
      p += count * element;
      remaining -= count;
    }
    return absl::OkStatus();
  }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    if (!tensor.device().is_cpu() || !tensor.is_contiguous()) {
      return absl::InvalidArgumentError("MPI broadcast needs a contiguous CPU tensor");
    }
    return mpi::BroadcastBytes(tensor.data_ptr(), tensor.nbytes(), root);
  }
  absl::Status AllReduceSumHost(std::vector<double>* v) override { return mpi::AllReduceDoubles(v, false); }
  absl::Status AllReduceMaxHost(std::vector<double>* v) override { return mpi::AllReduceDoubles(v, true); }
  absl::Status Barrier() override { return mpi::Barrier(); }

 private:
  int rank_;
  int world_size_;
  int local_rank_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> MakeMpiCommunicator() {
  absl::Status s = mpi::EnsureInitialized();
  if (!s.ok()) return s;
  return std::unique_ptr<Communicator>(new MpiCommunicator());
}

}  // namespace srlm
