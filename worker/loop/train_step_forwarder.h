// Sends rank 0's training progress (ReportTrainStep) from a thread of its own, so that a training
// step never waits for the coordinator: not for the commit of each report, and not while the
// coordinator is unreachable, when every rank would otherwise sit in the next collective until
// rank 0's report gave up. Only the newest report is kept: one not sent yet is replaced by the
// next step's, and the next report is also the retry of one that failed. The destructor waits for
// a report in flight and then sends the one still waiting (one attempt; each bounded by the client's
// deadline), so the final step reaches the status before the checkpoint is reported.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "srlm/v1/coordinator.pb.h"
#include "worker/loop/worker_loop.h"

namespace srlm {

class TrainStepForwarder {
 public:
  // `link` must outlive the forwarder and allow calls from another thread.
  explicit TrainStepForwarder(CoordinatorLink& link);
  ~TrainStepForwarder();
  TrainStepForwarder(const TrainStepForwarder&) = delete;
  TrainStepForwarder& operator=(const TrainStepForwarder&) = delete;

  // Queues `report` in place of any report not sent yet; returns at once.
  void Post(v1::ReportTrainStepRequest report);

  // Reports replaced before they were sent.
  int64_t replaced() const;

 private:
  void Loop();
  void Send(const v1::ReportTrainStepRequest& report);  // without the lock

  CoordinatorLink& link_;
  mutable std::mutex mu_;
  std::condition_variable posted_;
  std::optional<v1::ReportTrainStepRequest> pending_;
  bool stopping_ = false;
  int64_t replaced_ = 0;
  int64_t failed_since_logged_ = 0;  // the forwarder's thread only
  std::thread thread_;
};

}  // namespace srlm
