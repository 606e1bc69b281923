// CoordinatorLink over gRPC: forwards each call to the coordinator client library. Thread-safe.
#pragma once

#include <memory>

#include "coordinator/client/coordinator_client.h"
#include "worker/loop/worker_loop.h"

namespace srlm {

class GrpcCoordinatorLink : public CoordinatorLink {
 public:
  explicit GrpcCoordinatorLink(std::unique_ptr<coordinator::CoordinatorClient> client)
      : client_(std::move(client)) {}
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r) override {
    return client_->RegisterWorker(r);
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    return client_->Heartbeat(r);
  }
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& r) override {
    return client_->LeaseShard(r);
  }
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& r) override {
    return client_->SubmitShard(r);
  }
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& r) override {
    return client_->ReportTrainStep(r);
  }
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest& r) override {
    return client_->ReportCheckpoint(r);
  }
  absl::Status StreamPairs(const v1::StreamPairsRequest& r,
                           const std::function<bool(const v1::TrainingPair&)>& on_pair) override {
    return client_->StreamPairs(r, on_pair);
  }
  coordinator::CoordinatorClient& client() { return *client_; }

 private:
  std::unique_ptr<coordinator::CoordinatorClient> client_;
};

}  // namespace srlm
