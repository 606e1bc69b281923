// The NCCL communicator of worker/train/communicator.h: CUDA tensors are reduced by NCCL on a
// stream of its own, ordered after the work queued on the caller's current stream; host values and
// the bootstrap (rank 0's ncclUniqueId, broadcast by MPI) go over MPI.
#include "worker/train/communicator.h"

#include "absl/strings/str_cat.h"

#if defined(SRLM_WITH_NCCL)
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <nccl.h>
#include <torch/torch.h>

#include "worker/train/mpi_communicator.h"
#endif

namespace srlm {

#if defined(SRLM_WITH_NCCL)
namespace {

absl::Status CheckNccl(ncclResult_t rc, const char* what) {
  if (rc == ncclSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed: ", ncclGetErrorString(rc)));
}

absl::StatusOr<ncclDataType_t> NcclType(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kFloat16: return ncclFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("NCCL all-reduce: unsupported dtype ", c10::toString(t.scalar_type())));
  }
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int device, at::cuda::CUDAStream stream, int local_rank)
      : comm_(comm),
        device_(device),
        stream_(stream),
        rank_(mpi::WorldRank()),
        world_size_(mpi::WorldSize()),
        local_rank_(local_rank) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return local_rank_; }
  std::string backend_name() const override { return "nccl"; }

  absl::Status AllReduceSum(at::Tensor& tensor) override {
    auto type = NcclType(tensor);
    if (!type.ok()) return type.status();
    if (!tensor.is_cuda() || !tensor.is_contiguous()) {
      return absl::InvalidArgumentError("NCCL all-reduce needs a contiguous CUDA tensor");
    }
    try {
      c10::cuda::CUDAGuard guard(device_);
      OrderAfterCurrentStream();
      absl::Status s = CheckNccl(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), *type,
                                               ncclSum, comm_, stream_.stream()),
                                 "ncclAllReduce");
      if (!s.ok()) return s;
      OrderCurrentStreamAfterNccl(tensor);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("NCCL all-reduce: ", e.what_without_backtrace()));
    }
    return absl::OkStatus();
  }

  absl::Status Broadcast(at::Tensor& tensor, int root) override {
    auto type = NcclType(tensor);
    if (!type.ok()) return type.status();
    if (!tensor.is_cuda() || !tensor.is_contiguous()) {
      return absl::InvalidArgumentError("NCCL broadcast needs a contiguous CUDA tensor");
    }
    try {
      c10::cuda::CUDAGuard guard(device_);
      OrderAfterCurrentStream();
      absl::Status s = CheckNccl(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(), *type, root,
                                               comm_, stream_.stream()),
                                 "ncclBroadcast");
      if (!s.ok()) return s;
      OrderCurrentStreamAfterNccl(tensor);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("NCCL broadcast: ", e.what_without_backtrace()));
    }
    return absl::OkStatus();
  }

  absl::Status AllReduceSumHost(std::vector<double>* v) override { return mpi::AllReduceDoubles(v, false); }
  absl::Status AllReduceMaxHost(std::vector<double>* v) override { return mpi::AllReduceDoubles(v, true); }
  absl::Status Barrier() override { return mpi::Barrier(); }

 private:
  // The NCCL stream waits for what the compute stream queued (e.g. the backward pass).
  void OrderAfterCurrentStream() {
    at::cuda::CUDAEvent ready;
    ready.record(at::cuda::getCurrentCUDAStream(device_));
    ready.block(stream_);
  }
  // The compute stream waits for NCCL; the caching allocator must not reuse `tensor` early.
  void OrderCurrentStreamAfterNccl(at::Tensor& tensor) {
    at::cuda::CUDAEvent done;
    done.record(stream_);
    done.block(at::cuda::getCurrentCUDAStream(device_));
    c10::cuda::CUDACachingAllocator::recordStream(tensor.storage().data_ptr(), stream_);
  }

  ncclComm_t comm_;
  int device_;
  at::cuda::CUDAStream stream_;
  int rank_;
  int world_size_;
  int local_rank_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(int cuda_device) {
  absl::Status s = mpi::EnsureInitialized();
  if (!s.ok()) return s;
  const int local_rank = mpi::LocalRank();  // collective: every rank asks
  try {
    if (!torch::cuda::is_available()) return absl::FailedPreconditionError("NCCL communicator: no CUDA device");
    if (cuda_device < 0) cuda_device = LocalCudaIndex(local_rank, static_cast<int>(torch::cuda::device_count()));
    if (cuda_device >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(absl::StrCat("NCCL communicator: CUDA device ", cuda_device,
                                                        " does not exist (", torch::cuda::device_count(), " visible)"));
    }
    c10::cuda::CUDAGuard guard(cuda_device);
    ncclUniqueId id;
    if (mpi::WorldRank() == 0) {
      s = CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      if (!s.ok()) return s;
    }
    s = mpi::BroadcastBytes(&id, sizeof(id), 0);
    if (!s.ok()) return s;
    ncclComm_t comm;
    s = CheckNccl(ncclCommInitRank(&comm, mpi::WorldSize(), id, mpi::WorldRank()), "ncclCommInitRank");
    if (!s.ok()) return s;
    return std::unique_ptr<Communicator>(
        new NcclCommunicator(comm, cuda_device, at::cuda::getStreamFromPool(/*isHighPriority=*/true, cuda_device),
                             local_rank));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("NCCL communicator: ", e.what_without_backtrace()));
  }
}

#else

absl::StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(int) {
  return absl::UnimplementedError("srlm was built without NCCL (libtorch without CUDA or nccl.h not found)");
}

#endif

}  // namespace srlm
