// Implementation of worker/loop/retrying_link.h.
#include "worker/loop/retrying_link.h"

#include <chrono>
#include <thread>

#include "common/logging.h"

namespace srlm {
namespace {

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

constexpr double kStillRetryingEverySeconds = 15;  // a line that says the worker is still waiting

}  // namespace

bool IsTransientRpcError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded || status.code() == absl::StatusCode::kCancelled;
}

template <typename Call>
auto RetryingCoordinatorLink::Retry(const char* rpc, Call call) -> decltype(call()) {
  const auto start = std::chrono::steady_clock::now();
  double backoff = 0.1;
  int attempt = 0;
  double next_report = kStillRetryingEverySeconds;
  while (true) {
    auto result = call();
    const absl::Status& status = StatusOf(result);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool stopping = stop_requested_ != nullptr && stop_requested_->load();
    // Written so that a NaN limit ends retrying instead of never doing so.
    if (status.ok() || !IsTransientRpcError(status) || stopping || !(elapsed + backoff <= retry_seconds_)) {
      if (attempt > 0 && status.ok()) {
        ++recoveries_;
        SRLM_LOG(INFO) << rpc << " succeeded after " << attempt << " retries";
      }
      return result;
    }
    if (attempt == 0) {
      SRLM_LOG(WARNING) << rpc << " failed (" << status << "); retrying for up to " << retry_seconds_ << " s";
    } else if (elapsed >= next_report) {
      next_report += kStillRetryingEverySeconds;
      SRLM_LOG(WARNING) << rpc << " still failing after " << static_cast<int64_t>(elapsed) << " s of "
                        << retry_seconds_ << " (" << status.message() << ")";
    }
    ++attempt;
    std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
    backoff = std::min(2.0, backoff * 2);
  }
}

absl::StatusOr<v1::RegisterWorkerResponse> RetryingCoordinatorLink::RegisterWorker(const v1::RegisterWorkerRequest& r) {
  return Retry("RegisterWorker", [&] { return inner_.RegisterWorker(r); });
}
absl::StatusOr<v1::HeartbeatResponse> RetryingCoordinatorLink::Heartbeat(const v1::HeartbeatRequest& r) {
  return inner_.Heartbeat(r);  // the next heartbeat is the retry
}
absl::StatusOr<v1::LeaseShardResponse> RetryingCoordinatorLink::LeaseShard(const v1::LeaseShardRequest& r) {
  return Retry("LeaseShard", [&] { return inner_.LeaseShard(r); });
}
absl::StatusOr<v1::SubmitShardResponse> RetryingCoordinatorLink::SubmitShard(const v1::SubmitShardRequest& r) {
  return Retry("SubmitShard", [&] { return inner_.SubmitShard(r); });
}
absl::StatusOr<v1::ReportTrainStepResponse> RetryingCoordinatorLink::ReportTrainStep(const v1::ReportTrainStepRequest& r) {
  return inner_.ReportTrainStep(r);  // the next step's report is the retry (TrainStepForwarder)
}
absl::StatusOr<v1::ReportCheckpointResponse> RetryingCoordinatorLink::ReportCheckpoint(const v1::ReportCheckpointRequest& r) {
  return Retry("ReportCheckpoint", [&] { return inner_.ReportCheckpoint(r); });
}
absl::Status RetryingCoordinatorLink::StreamPairs(const v1::StreamPairsRequest& r,
                                                  const std::function<bool(const v1::TrainingPair&)>& on_pair) {
  std::vector<v1::TrainingPair> buffer;
  absl::Status status = Retry("StreamPairs", [&] {
    buffer.clear();
    return inner_.StreamPairs(r, [&](const v1::TrainingPair& p) {
      buffer.push_back(p);
      return true;
    });
  });
  if (!status.ok()) return status;
  for (const auto& p : buffer) {
    if (!on_pair(p)) break;
  }
  return absl::OkStatus();
}

}  // namespace srlm
