// The gRPC adapter of the Coordinator service: checks the bearer token, turns requests into
// RunCoordinator calls and absl::Status into grpc::Status. Holds no run logic. Thread-safe.
#pragma once

#include <atomic>
#include <string>

#include "coordinator/run_coordinator.h"
#include "srlm/v1/coordinator.grpc.pb.h"

namespace srlm::coordinator {

class CoordinatorService final : public v1::Coordinator::Service {
 public:
  CoordinatorService(RunCoordinator* run, std::string token);
  // Ends open WatchStatus streams (called before the server shuts down).
  void Stop() { stopping_ = true; }

  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status LeaseShard(grpc::ServerContext* context, const v1::LeaseShardRequest* request,
                          v1::LeaseShardResponse* response) override;
  grpc::Status SubmitShard(grpc::ServerContext* context, const v1::SubmitShardRequest* request,
                           v1::SubmitShardResponse* response) override;
  grpc::Status StreamPairs(grpc::ServerContext* context, const v1::StreamPairsRequest* request,
                           grpc::ServerWriter<v1::TrainingPair>* writer) override;
  grpc::Status ReportTrainStep(grpc::ServerContext* context, const v1::ReportTrainStepRequest* request,
                               v1::ReportTrainStepResponse* response) override;
  grpc::Status ReportCheckpoint(grpc::ServerContext* context, const v1::ReportCheckpointRequest* request,
                                v1::ReportCheckpointResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override;
  grpc::Status WatchStatus(grpc::ServerContext* context, const v1::WatchStatusRequest* request,
                           grpc::ServerWriter<v1::GetStatusResponse>* writer) override;
  grpc::Status ExportPairs(grpc::ServerContext* context, const v1::ExportPairsRequest* request,
                           grpc::ServerWriter<v1::ExportedPair>* writer) override;

 private:
  grpc::Status Authenticate(const grpc::ServerContext& context) const;

  RunCoordinator* run_;
  std::string token_;
  std::atomic<bool> stopping_{false};
};

// absl::Status -> grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace srlm::coordinator
