// The single-process communicator and the backend choice of worker/train/communicator.h.
#include "worker/train/communicator.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace srlm {
namespace {

class SingleProcessCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend_name() const override { return "single"; }
  absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
  absl::Status Broadcast(at::Tensor&, int root) override {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " >= world size 1"));
    return absl::OkStatus();
  }
  absl::Status AllReduceSumHost(std::vector<double>*) override { return absl::OkStatus(); }
  absl::Status AllReduceMaxHost(std::vector<double>*) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

}  // namespace

std::unique_ptr<Communicator> MakeSingleProcessCommunicator() {
  return std::make_unique<SingleProcessCommunicator>();
}

bool LaunchedWithMultipleRanks() {
  // OpenMPI's mpirun, PMIx (srun --mpi=pmix), MPICH/Hydra and Slurm.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (EnvInt(name) > 1) return true;
  }
  return false;
}

int ExplicitCudaIndex(const std::string& device) {
  const size_t colon = device.find(':');
  return device.rfind("cuda", 0) == 0 && colon != std::string::npos ? std::atoi(device.c_str() + colon + 1) : -1;
}

int LocalCudaIndex(int local_rank, int visible_devices) {
  return visible_devices > 0 ? local_rank % visible_devices : 0;
}

int CudaDeviceIndex(const std::string& device, const Communicator& comm, int visible_devices) {
  if (device.rfind("cuda", 0) != 0) return -1;
  const int explicit_index = ExplicitCudaIndex(device);
  return explicit_index >= 0 ? explicit_index : LocalCudaIndex(comm.local_rank(), visible_devices);
}

absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(const std::string& backend,
                                                               const std::string& device) {
  if (backend == "single") return MakeSingleProcessCommunicator();
  if (backend == "mpi") return MakeMpiCommunicator();
  if (backend == "nccl") return MakeNcclCommunicator(ExplicitCudaIndex(device));
  if (backend != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown communicator backend '", backend, "': expected auto, single, mpi or nccl"));
  }
  if (!LaunchedWithMultipleRanks()) return MakeSingleProcessCommunicator();
  if (device.rfind("cuda", 0) == 0) return MakeNcclCommunicator(ExplicitCudaIndex(device));
  return MakeMpiCommunicator();
}

}  // namespace srlm
