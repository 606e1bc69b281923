// Implementation of coordinator/coordinator_service.h.
#include "coordinator/coordinator_service.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "coordinator/auth_token.h"

namespace srlm::coordinator {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

CoordinatorService::CoordinatorService(RunCoordinator* run, std::string token)
    : run_(run), token_(std::move(token)) {}

grpc::Status CoordinatorService::Authenticate(const grpc::ServerContext& context) const {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string value(it->second.data(), it->second.size());
  constexpr char kPrefix[] = "Bearer ";
  if (value.rfind(kPrefix, 0) != 0 || !TokensEqual(value.substr(sizeof(kPrefix) - 1), token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
  }
  return grpc::Status::OK;
}

// Each unary RPC: authenticate, call the run, copy the result.
#define SRLM_UNARY_RPC(Method)                                                  \
  grpc::Status auth = Authenticate(*context);                                   \
  if (!auth.ok()) return auth;                                                  \
  auto result = run_->Method(*request);                                         \
  if (!result.ok()) return ToGrpcStatus(result.status());                       \
  *response = std::move(result).value();                                       \
  return grpc::Status::OK

grpc::Status CoordinatorService::RegisterWorker(grpc::ServerContext* context,
                                                const v1::RegisterWorkerRequest* request,
                                                v1::RegisterWorkerResponse* response) {
  SRLM_UNARY_RPC(RegisterWorker);
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  SRLM_UNARY_RPC(Heartbeat);
}

grpc::Status CoordinatorService::LeaseShard(grpc::ServerContext* context, const v1::LeaseShardRequest* request,
                                            v1::LeaseShardResponse* response) {
  SRLM_UNARY_RPC(LeaseShard);
}

grpc::Status CoordinatorService::SubmitShard(grpc::ServerContext* context,
                                             const v1::SubmitShardRequest* request,
                                             v1::SubmitShardResponse* response) {
  SRLM_UNARY_RPC(SubmitShard);
}

grpc::Status CoordinatorService::ReportTrainStep(grpc::ServerContext* context,
                                                 const v1::ReportTrainStepRequest* request,
                                                 v1::ReportTrainStepResponse* response) {
  SRLM_UNARY_RPC(ReportTrainStep);
}

grpc::Status CoordinatorService::ReportCheckpoint(grpc::ServerContext* context,
                                                  const v1::ReportCheckpointRequest* request,
                                                  v1::ReportCheckpointResponse* response) {
  SRLM_UNARY_RPC(ReportCheckpoint);
}

#undef SRLM_UNARY_RPC

grpc::Status CoordinatorService::GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest*,
                                           v1::GetStatusResponse* response) {
  grpc::Status auth = Authenticate(*context);
  if (!auth.ok()) return auth;
  *response = run_->GetStatus();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::StreamPairs(grpc::ServerContext* context,
                                             const v1::StreamPairsRequest* request,
                                             grpc::ServerWriter<v1::TrainingPair>* writer) {
  grpc::Status auth = Authenticate(*context);
  if (!auth.ok()) return auth;
  return ToGrpcStatus(run_->StreamPairs(*request, [&](const v1::TrainingPair& pair) {
    return !context->IsCancelled() && writer->Write(pair);
  }));
}

grpc::Status CoordinatorService::ExportPairs(grpc::ServerContext* context,
                                             const v1::ExportPairsRequest* request,
                                             grpc::ServerWriter<v1::ExportedPair>* writer) {
  grpc::Status auth = Authenticate(*context);
  if (!auth.ok()) return auth;
  return ToGrpcStatus(run_->ExportPairs(request->iteration(), [&](const v1::ExportedPair& pair) {
    return !context->IsCancelled() && writer->Write(pair);
  }));
}

grpc::Status CoordinatorService::WatchStatus(grpc::ServerContext* context,
                                             const v1::WatchStatusRequest* request,
                                             grpc::ServerWriter<v1::GetStatusResponse>* writer) {
  grpc::Status auth = Authenticate(*context);
  if (!auth.ok()) return auth;
  double interval = request->interval_seconds() > 0 ? request->interval_seconds() : 1.0;
  interval = std::clamp(interval, 0.1, 60.0);
  const auto period = std::chrono::milliseconds(static_cast<int64_t>(interval * 1000));
  // An update every `period`, and one for every phase transition in order as soon as it happens,
  // so that a watcher sees each phase however short (a phase that began and ended between two
  // writes is sent with its own iteration and phase and the counters as they stand).
  int64_t sent_changes = run_->LastPhaseChange();
  v1::GetStatusResponse status = run_->GetStatus();
  if (!writer->Write(status)) return grpc::Status::OK;
  auto next = std::chrono::steady_clock::now() + period;
  while (!stopping_ && !context->IsCancelled() && status.phase() != v1::PHASE_DONE) {
    // Wake at least every 100 ms to notice a cancelled call or a stopping server.
    const auto wake = std::min(next, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    const std::vector<RunCoordinator::PhaseChange> changes = run_->WaitForPhaseChanges(sent_changes, wake);
    if (changes.empty() && std::chrono::steady_clock::now() < next) continue;
    status = run_->GetStatus();
    for (const RunCoordinator::PhaseChange& change : changes) {
      sent_changes = change.sequence;
      if (change.iteration == status.iteration() && change.phase == status.phase()) continue;
      v1::GetStatusResponse passed = status;
      passed.set_iteration(change.iteration);
      passed.set_phase(change.phase);
      if (!writer->Write(passed)) return grpc::Status::OK;
    }
    if (!writer->Write(status)) return grpc::Status::OK;
    next = std::chrono::steady_clock::now() + period;
  }
  return grpc::Status::OK;
}

}  // namespace srlm::coordinator
