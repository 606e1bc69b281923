// TrainStepForwarder: posting a step report never waits for the coordinator, newer reports replace
// unsent ones, and the last one is sent before the forwarder is gone.
#include "worker/loop/train_step_forwarder.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "absl/status/status.h"

namespace srlm {
namespace {

// Records the steps it is told about; while `held`, each ReportTrainStep waits until released.
class SlowCoordinator : public CoordinatorLink {
 public:
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest&) override {
    return absl::UnimplementedError("not used");
  }
  absl::Status StreamPairs(const v1::StreamPairsRequest&, const std::function<bool(const v1::TrainingPair&)>&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& r) override {
    std::unique_lock<std::mutex> lock(mu_);
    steps_.push_back(r.step());
    changed_.notify_all();
    changed_.wait(lock, [this] { return !held_; });
    if (fail_) return absl::UnavailableError("coordinator away");
    return v1::ReportTrainStepResponse();
  }

  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    changed_.notify_all();
  }
  void Fail() {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = true;
  }
  void WaitForCalls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return steps_.size() >= n; });
  }
  std::vector<int64_t> steps() {
    std::lock_guard<std::mutex> lock(mu_);
    return steps_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool held_ = false, fail_ = false;
  std::vector<int64_t> steps_;
};

v1::ReportTrainStepRequest Step(int64_t step) {
  v1::ReportTrainStepRequest report;
  report.set_step(step);
  report.set_total_steps(100);
  return report;
}

TEST(TrainStepForwarder, PostingNeverWaitsForAStuckCoordinatorAndTheNewestReportWins) {
  SlowCoordinator coordinator;
  coordinator.Hold();
  {
    TrainStepForwarder forwarder(coordinator);
    forwarder.Post(Step(1));
    coordinator.WaitForCalls(1);  // step 1 is in flight, and stuck
    // Training goes on: 99 more steps are posted while the coordinator answers nothing.
    for (int64_t step = 2; step <= 100; ++step) forwarder.Post(Step(step));
    EXPECT_EQ(forwarder.replaced(), 98);  // 2..99 were replaced before they could be sent
    EXPECT_EQ(coordinator.steps(), std::vector<int64_t>({1}));
    coordinator.Release();
  }  // the destructor sends step 100
  EXPECT_EQ(coordinator.steps(), std::vector<int64_t>({1, 100}));
}

TEST(TrainStepForwarder, TheLastReportIsSentBeforeTheForwarderIsGoneEvenAfterFailures) {
  SlowCoordinator coordinator;
  coordinator.Fail();  // every report fails, as while the coordinator restarts
  {
    TrainStepForwarder forwarder(coordinator);
    for (int64_t step = 1; step <= 6; ++step) forwarder.Post(Step(step));
    coordinator.WaitForCalls(1);
  }  // the destructor sends step 6, unless the thread already had
  const std::vector<int64_t> steps = coordinator.steps();
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back(), 6);  // a failed report does not stop the next ones
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_LT(steps[i - 1], steps[i]);  // never an older step after a newer one
}

}  // namespace
}  // namespace srlm
