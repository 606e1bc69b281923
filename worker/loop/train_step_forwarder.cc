// Implementation of worker/loop/train_step_forwarder.h.
#include "worker/loop/train_step_forwarder.h"

#include <utility>

#include "common/logging.h"

namespace srlm {

TrainStepForwarder::TrainStepForwarder(CoordinatorLink& link) : link_(link) {
  thread_ = std::thread([this] { Loop(); });
}

TrainStepForwarder::~TrainStepForwarder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  posted_.notify_all();
  thread_.join();
}

void TrainStepForwarder::Post(v1::ReportTrainStepRequest report) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.has_value()) ++replaced_;
    pending_ = std::move(report);
  }
  posted_.notify_all();
}

int64_t TrainStepForwarder::replaced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return replaced_;
}

void TrainStepForwarder::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    posted_.wait(lock, [this] { return stopping_ || pending_.has_value(); });
    if (!pending_.has_value()) return;  // stopping, and everything was sent
    v1::ReportTrainStepRequest report = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    Send(report);
    lock.lock();
  }
}

void TrainStepForwarder::Send(const v1::ReportTrainStepRequest& report) {
  const absl::StatusOr<v1::ReportTrainStepResponse> answer = link_.ReportTrainStep(report);
  // One line for the first failure of a run of them (a step can take well under a second).
  if (answer.ok()) {
    if (failed_since_logged_ > 0) SRLM_LOG(INFO) << "ReportTrainStep works again";
    failed_since_logged_ = 0;
  } else if (failed_since_logged_++ == 0) {
    SRLM_LOG(WARNING) << "ReportTrainStep failed (training goes on; the next step's report retries): "
                      << answer.status();
  }
}

}  // namespace srlm
