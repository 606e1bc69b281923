// Communicator: the collectives data-parallel training needs, behind one interface with three
// backends: a single process (world size 1), MPI for CPU tensors, and NCCL for CUDA tensors (rank 0
// makes the unique id, MPI broadcasts it; NCCL runs on its own stream). Host-side scalars (flags,
// example counts, metrics) always travel over MPI (or nowhere, for a single process).
// Collective calls must be made in the same order, with the same sizes, on every rank.
// Not thread-safe: one thread per process calls it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace at {
class Tensor;
}

namespace srlm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // This process's index among the ranks on its own node (0 for a single process).
  virtual int local_rank() const = 0;
  virtual std::string backend_name() const = 0;

  // Collective. Replaces `tensor` (contiguous, float32 or float64) by its sum over all ranks.
  virtual absl::Status AllReduceSum(at::Tensor& tensor) = 0;
  // Collective. Copies `tensor` of rank `root` into `tensor` on every rank (same shape everywhere).
  virtual absl::Status Broadcast(at::Tensor& tensor, int root) = 0;
  // Collective. Element-wise sum of host values over all ranks (same length everywhere).
  virtual absl::Status AllReduceSumHost(std::vector<double>* values) = 0;
  // Collective. Element-wise max of host values over all ranks.
  virtual absl::Status AllReduceMaxHost(std::vector<double>* values) = 0;
  // Collective. Returns when every rank has called it.
  virtual absl::Status Barrier() = 0;
};

// World size 1; every collective is the identity.
std::unique_ptr<Communicator> MakeSingleProcessCommunicator();

// True when this process was started by mpirun/srun with more than one rank in its world.
bool LaunchedWithMultipleRanks();

// MPI over MPI_COMM_WORLD for CPU tensors. Initialises MPI on first use (MPI_THREAD_FUNNELED) and
// finalises it at process exit.
absl::StatusOr<std::unique_ptr<Communicator>> MakeMpiCommunicator();

// NCCL for CUDA tensors on `cuda_device` (-1: LocalCudaIndex of this rank on its node); MPI
// bootstraps it and carries host values.
// UNIMPLEMENTED when srlm was built without NCCL.
absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(int cuda_device);

// The CUDA device index a rank uses for model.device `device`: N for "cuda:N", otherwise (plain
// "cuda") the rank's index on its node modulo the `visible_devices` (a task that sees one GPU, as
// with Slurm's --gpus-per-task=1, takes device 0); -1 when `device` is not CUDA. The model and the
// NCCL communicator (MakeCommunicator) use this same rule.
int CudaDeviceIndex(const std::string& device, const Communicator& comm, int visible_devices);
// Its parts: N for "cuda:N", else -1; and the local rank modulo the visible devices (0 for none).
int ExplicitCudaIndex(const std::string& device);
int LocalCudaIndex(int local_rank, int visible_devices);

// The names MakeCommunicator takes, for the commands' --communicator flags to check with the others
// (before any call or collective).
inline const std::vector<std::string>& CommunicatorNames() {
  static const std::vector<std::string> names = {"auto", "single", "mpi", "nccl"};
  return names;
}

// "auto": NCCL when device is cuda and there are several ranks, MPI for several CPU ranks, single
// otherwise. "single", "mpi" and "nccl" force a backend.
absl::StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(const std::string& backend,
                                                               const std::string& device);

}  // namespace srlm
