// A CoordinatorLink that rides out a coordinator restart: calls failing with UNAVAILABLE,
// DEADLINE_EXCEEDED or CANCELLED (what a call in flight gets when the coordinator shuts down on
// SIGTERM; this client never cancels its own calls) are retried with backoff (0.1 s doubling to 2 s) for up to `retry_seconds`.
// Retrying is safe because the coordinator accepts each submission once (a retried SubmitShard
// comes back `duplicate`) and state lives in its database. StreamPairs buffers the whole slice and
// delivers it only after the stream ended cleanly, so a retried stream never delivers a pair twice.
// Heartbeat and ReportTrainStep are not retried: the next one is the retry.
// Thread-safe when the wrapped link is.
#pragma once

#include <atomic>

#include "worker/loop/worker_loop.h"

namespace srlm {

class RetryingCoordinatorLink : public CoordinatorLink {
 public:
  // `stop_requested`, when given, ends retrying at once once set (SIGTERM while the coordinator is
  // away): the call returns its last error.
  RetryingCoordinatorLink(CoordinatorLink& inner, double retry_seconds,
                          const std::atomic<bool>* stop_requested = nullptr)
      : inner_(inner), retry_seconds_(retry_seconds), stop_requested_(stop_requested) {}
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r) override;
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override;
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& r) override;
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& r) override;
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& r) override;
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest& r) override;
  absl::Status StreamPairs(const v1::StreamPairsRequest& r,
                           const std::function<bool(const v1::TrainingPair&)>& on_pair) override;
  uint64_t recoveries() const override { return recoveries_.load(); }

 private:
  template <typename Call>
  auto Retry(const char* rpc, Call call) -> decltype(call());
  CoordinatorLink& inner_;
  double retry_seconds_;
  const std::atomic<bool>* stop_requested_;
  std::atomic<uint64_t> recoveries_{0};
};

// True for the codes a stopping or restarting coordinator produces.
bool IsTransientRpcError(const absl::Status& status);

}  // namespace srlm
