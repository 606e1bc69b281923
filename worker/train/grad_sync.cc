// Implementation of worker/train/grad_sync.h.
#include "worker/train/grad_sync.h"

#include <chrono>

#include <torch/cuda.h>

#include "common/status_macros.h"

namespace srlm {

GradientSynchronizer::GradientSynchronizer(std::vector<torch::Tensor> params, Communicator* communicator,
                                           int64_t bucket_bytes)
    : params_(std::move(params)), communicator_(communicator) {
  BuildBuckets(bucket_bytes);
}

void GradientSynchronizer::BuildBuckets(int64_t bucket_bytes) {
  const int64_t max_elements = std::max<int64_t>(1, bucket_bytes / 4);
  Bucket current;
  for (size_t i = 0; i < params_.size(); ++i) {
    const bool device_changes = !current.param_indices.empty() &&
                                params_[current.param_indices.front()].device() != params_[i].device();
    if (!current.param_indices.empty() && (device_changes || current.numel + params_[i].numel() > max_elements)) {
      buckets_.push_back(std::move(current));
      current = Bucket();
    }
    current.param_indices.push_back(i);
    current.numel += params_[i].numel();
  }
  if (!current.param_indices.empty()) buckets_.push_back(std::move(current));
  for (Bucket& b : buckets_) {
    b.flat = torch::empty({b.numel}, torch::TensorOptions().dtype(torch::kFloat32)
                                         .device(params_[b.param_indices.front()].device()));
  }
}

absl::StatusOr<GradSyncResult> GradientSynchronizer::Synchronize(double local_weight,
                                                                 std::vector<double>* host_sums) {
  torch::NoGradGuard no_grad;
  GradSyncResult result;
  try {
    // 1. Flatten (for a single process: check in place) and look for non-finite values locally.
    const bool distributed = communicator_->world_size() > 1;
    std::vector<torch::Tensor> finite_parts;
    for (Bucket& b : buckets_) {
      if (distributed) {
        int64_t offset = 0;
        for (size_t i : b.param_indices) {
          const torch::Tensor& g = params_[i].grad();
          const int64_t n = params_[i].numel();
          torch::Tensor slot = b.flat.narrow(0, offset, n);
          if (g.defined()) {
            slot.copy_(g.reshape({-1}));
          } else {
            slot.zero_();
          }
          offset += n;
        }
        finite_parts.push_back(b.flat.isfinite().all());
      } else {
        for (size_t i : b.param_indices) {
          if (params_[i].grad().defined()) finite_parts.push_back(params_[i].grad().isfinite().all());
        }
      }
    }
    const bool local_finite = finite_parts.empty() || torch::stack(finite_parts).all().item<bool>();

    // 2. One host message: weight, non-finite flag, caller's sums.
    std::vector<double> host = {local_weight, local_finite ? 0.0 : 1.0};
    if (host_sums) host.insert(host.end(), host_sums->begin(), host_sums->end());
    SRLM_RETURN_IF_ERROR(communicator_->AllReduceSumHost(&host));
    result.global_weight = host[0];
    if (host_sums) std::copy(host.begin() + 2, host.end(), host_sums->begin());
    if (host[1] > 0 || result.global_weight <= 0) {
      result.skipped = true;
      for (torch::Tensor& p : params_) {
        if (p.grad().defined()) p.mutable_grad().zero_();
      }
      return result;
    }

    // 3. Sum the buckets over ranks and divide by the global weight.
    const double scale = 1.0 / result.global_weight;
    if (!distributed) {
      for (torch::Tensor& p : params_) {
        if (p.grad().defined()) {
          p.mutable_grad().mul_(scale);
        } else {
          p.mutable_grad() = torch::zeros_like(p);
        }
      }
      return result;
    }
    const auto start = std::chrono::steady_clock::now();
    for (Bucket& b : buckets_) SRLM_RETURN_IF_ERROR(communicator_->AllReduceSum(b.flat));
    // NCCL only queues the reduction: wait for it, so that the time is the reduction's.
    if (!buckets_.empty() && buckets_.front().flat.is_cuda()) {
      torch::cuda::synchronize(buckets_.front().flat.device().index());
    }
    result.allreduce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (Bucket& b : buckets_) {
      b.flat.mul_(scale);
      int64_t offset = 0;
      for (size_t i : b.param_indices) {
        torch::Tensor& p = params_[i];
        torch::Tensor reduced = b.flat.narrow(0, offset, p.numel()).view(p.sizes()).to(p.scalar_type());
        if (p.grad().defined()) {
          p.mutable_grad().copy_(reduced);
        } else {
          p.mutable_grad() = reduced.clone();
        }
        offset += p.numel();
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("gradient synchronisation: ", e.what_without_backtrace()));
  }
  return result;
}

}  // namespace srlm
