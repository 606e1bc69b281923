// Tests of what a run shows: status only once committed, status streams, mean scores read back
// exactly, and the export of an iteration's pairs once they are frozen.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "coordinator/coordinator_test_util.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

// A status answer shows only committed state. Another connection holds the database's write lock,
// so a registration is applied in memory but cannot commit; no status answer given before the lock
// is released may show that worker (a crash then would have undone it).
TEST_F(CoordinatorServiceTest, StatusShowsOnlyWhatHasCommitted) {
  auto blocker = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadWrite);
  ASSERT_TRUE(blocker.ok()) << blocker.status();
  ASSERT_TRUE((*blocker)->Exec("BEGIN IMMEDIATE").ok());
  std::thread registration([&] { Register(0, 1); });

  struct Answer {
    std::chrono::steady_clock::time_point at;
    int workers;
  };
  std::vector<Answer> answers;
  std::atomic<bool> watching{true};
  std::thread watcher([&] {
    while (watching) {
      const absl::StatusOr<v1::GetStatusResponse> status = client_->GetStatus();
      if (!status.ok()) {
        ADD_FAILURE() << status.status();
        return;
      }
      answers.push_back({std::chrono::steady_clock::now(), status->workers_size()});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the registration is in memory by now
  const auto released = std::chrono::steady_clock::now();
  ASSERT_TRUE((*blocker)->Exec("ROLLBACK").ok());
  registration.join();
  watching = false;
  watcher.join();

  ASSERT_FALSE(answers.empty());
  int early = 0;  // answers given before the release that show the worker
  for (const Answer& answer : answers) early += answer.at < released && answer.workers > 0;
  EXPECT_EQ(early, 0) << "of " << answers.size() << " answers, " << early
                      << " showed a worker before its registration committed";
  EXPECT_EQ(client_->GetStatus()->workers_size(), 1);
}

// A rank with no heartbeat for 3 periods (5 s here) is flagged silent, one heard from again is not,
// and after a restart a rank not heard from since goes silent on the same clock (from the start).
TEST_F(CoordinatorServiceTest, ARankWithoutHeartbeatsForThreePeriodsIsSilent) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  auto silent = [&](int rank) {
    const absl::StatusOr<v1::GetStatusResponse> status = client_->GetStatus();
    for (const v1::WorkerStatus& w : status->workers()) {
      if (w.rank() == rank) return w.silent();
    }
    ADD_FAILURE() << "no rank " << rank;
    return false;
  };
  now_ms_ += 15000;
  EXPECT_FALSE(silent(0));
  v1::HeartbeatRequest beat;
  beat.set_worker_id(w0);
  ASSERT_TRUE(client_->Heartbeat(beat).ok());
  now_ms_ += 1;
  EXPECT_FALSE(silent(0));
  EXPECT_TRUE(silent(1));
  Stop();
  Start(std::nullopt);
  EXPECT_FALSE(silent(0));
  EXPECT_FALSE(silent(1));
  now_ms_ += 15001;
  EXPECT_TRUE(silent(1));
}

TEST_F(CoordinatorServiceTest, WatchStatusStreamsUpdates) {
  int updates = 0;
  ASSERT_TRUE(client_->WatchStatus(0.1, [&](const v1::GetStatusResponse& status) {
    EXPECT_EQ(status.phase(), v1::PHASE_SFT);
    return ++updates < 3;
  }).ok());
  EXPECT_EQ(updates, 3);
}

// A watch has no deadline: `srlmctl watch` follows a run of any length. Here it outlives a stream
// deadline several times over (with one, it ended in DEADLINE_EXCEEDED after an hour).
TEST_F(CoordinatorServiceTest, AWatchOutlivesTheStreamDeadline) {
  ClientOptions options;
  options.token = kToken;
  options.deadline_seconds = 0.3;
  options.stream_deadline_seconds = 0.3;
  CoordinatorClient client(
      v1::Coordinator::NewStub(server_->grpc_server()->InProcessChannel(grpc::ChannelArguments())), options);
  const auto start = std::chrono::steady_clock::now();
  int updates = 0;
  const absl::Status watched = client.WatchStatus(0.1, [&](const v1::GetStatusResponse&) {
    ++updates;
    return std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1200);
  });
  EXPECT_TRUE(watched.ok()) << watched;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
  EXPECT_GE(updates, 5);
}

// Mean scores are stored exactly: with six digits a score moved to another histogram bucket at a
// restart (2.4999999999 read back as 2.5), and exported candidate_scores differed from chosen_score.
TEST_F(CoordinatorServiceTest, MeanScoresReadBackExactlyInTheHistogramAndTheExport) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  const double edge = 2.4999999999, third = 10.0 / 3;  // bucket 4 of 10 over [0, 5]; 3.33333...
  for (int shard = 0; shard < 3; ++shard) {
    v1::LeaseShardResponse lease = Lease(w0);
    ASSERT_TRUE(lease.has_generate());
    v1::SubmitShardRequest request = GenerateRequest(w0, lease);
    for (v1::PromptResult& result : *request.mutable_generate()->mutable_results()) {
      result.set_mean_scores(1, edge);
      result.set_mean_scores(2, third);
      if (result.has_pair()) result.mutable_pair()->set_chosen_score(third);
    }
    ASSERT_TRUE(client_->SubmitShard(request).ok());
  }
  const v1::GetStatusResponse before = *client_->GetStatus();
  ASSERT_EQ(before.phase(), v1::PHASE_TRAIN);
  EXPECT_EQ(before.score_histogram(4), 6);
  EXPECT_EQ(before.score_histogram(5), 0);
  Stop();
  Start(std::nullopt);
  EXPECT_THAT(client_->GetStatus()->score_histogram(), ::testing::ElementsAreArray(before.score_histogram()));
  int exported = 0;
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair& pair) {
    ++exported;
    EXPECT_THAT(pair.candidate_scores(), ::testing::ElementsAre(1, edge, third));
    EXPECT_EQ(pair.candidate_scores(2), pair.chosen_score());
    return true;
  }).ok());
  EXPECT_EQ(exported, 4);
}

// An iteration's pairs are exported once they are frozen (GENERATE has ended); before, an export
// was a part of them, with exit status 0.
TEST_F(CoordinatorServiceTest, PairsAreExportedOnlyOnceGenerateHasEnded) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  LeaseAndSubmitGenerate(w0);
  int exported = 0;
  const absl::Status early = client_->ExportPairs(1, [&](const v1::ExportedPair&) { return ++exported > 0; });
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_THAT(std::string(early.message()),
              ::testing::HasSubstr("the pairs of iteration 1 are still being generated"));
  EXPECT_EQ(exported, 0);
  for (int shard = 1; shard < 3; ++shard) LeaseAndSubmitGenerate(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_TRAIN);
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair&) { return ++exported > 0; }).ok());
  EXPECT_EQ(exported, 4);
}

}  // namespace
}  // namespace srlm::coordinator
