// Tests of leases and submissions: heartbeats, expiry and hand-on, duplicate and stale submissions,
// only the holder submitting, argument checks, and re-registration releasing a rank's leases.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/run_config.h"
#include "coordinator/coordinator_test_util.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

TEST_F(CoordinatorServiceTest, ExpiredLeaseHandedOnIsRefusedAndDuplicatesAreAcceptedOnce) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);

  v1::LeaseShardResponse first = Lease(w0);
  ASSERT_TRUE(first.has_generate());
  // A heartbeat naming other leases extends none of this worker's (an orphaned grant expires).
  v1::HeartbeatRequest naming_others;
  naming_others.set_worker_id(w0);
  naming_others.add_lease_ids("i1-G-s2-a1");
  auto none = client_->Heartbeat(naming_others);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->leases_extended(), 0);
  // One that lists every lease the worker holds, none (as srlm-worker's between shards), extends none
  // either; one that names none and does not say it lists them all extends all of them.
  v1::HeartbeatRequest holding_none;
  holding_none.set_worker_id(w0);
  holding_none.set_lists_every_lease(true);
  EXPECT_EQ(client_->Heartbeat(holding_none)->leases_extended(), 0);
  v1::HeartbeatRequest naming_none;
  naming_none.set_worker_id(w0);
  EXPECT_EQ(client_->Heartbeat(naming_none)->leases_extended(), 1);
  // A heartbeat extends the lease: 8 s later plus 8 s more is still inside 10 s of the heartbeat.
  now_ms_ += 8000;
  v1::HeartbeatRequest heartbeat;
  heartbeat.add_lease_ids(first.lease().lease_id());
  heartbeat.set_worker_id(w0);
  heartbeat.mutable_stats()->set_tokens_per_second(123.5);
  auto beat = client_->Heartbeat(heartbeat);
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->leases_extended(), 1);
  now_ms_ += 8000;
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->tokens_per_second(), 123.5);
  // Now it expires; w1 gets the same shard as attempt 2.
  now_ms_ += 3000;
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 0);
  v1::LeaseShardResponse second = Lease(w1);
  ASSERT_TRUE(second.has_generate());
  EXPECT_EQ(second.lease().shard_id(), first.lease().shard_id());
  EXPECT_EQ(second.lease().attempt(), 2);
  const int64_t results_before = client_->GetStatus()->results_accepted();
  auto stale = client_->SubmitShard(GenerateRequest(w0, first));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  EXPECT_EQ(client_->GetStatus()->results_accepted(), results_before);  // changed nothing

  // The same submission twice: accepted once, OK both times.
  auto once = client_->SubmitShard(GenerateRequest(w1, second));
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_FALSE(once->duplicate());
  auto twice = client_->SubmitShard(GenerateRequest(w1, second));
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_TRUE(twice->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), results_before + 2);
  // The stale lease stays refused once its shard is done by the other attempt.
  EXPECT_EQ(client_->SubmitShard(GenerateRequest(w0, first)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // An expired lease whose shard was not handed on is still taken.
  v1::LeaseShardResponse third = Lease(w0);
  ASSERT_TRUE(third.has_generate());
  now_ms_ += 20000;
  auto late = client_->SubmitShard(GenerateRequest(w0, third));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_FALSE(late->duplicate());

  // Duplicates of a lease from a phase that has ended are still answered OK.
  v1::LeaseShardResponse fourth = Lease(w0);
  ASSERT_TRUE(fourth.has_generate());
  auto last = client_->SubmitShard(GenerateRequest(w0, fourth));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->phase(), v1::PHASE_TRAIN);
  auto after_phase = client_->SubmitShard(GenerateRequest(w0, fourth));
  ASSERT_TRUE(after_phase.ok()) << after_phase.status();
  EXPECT_TRUE(after_phase->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 6);
}

// Lease ids are predictable: another worker may not complete a lease it does not hold.
TEST_F(CoordinatorServiceTest, OnlyTheHolderOfALeaseCanSubmitIt) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  v1::LeaseShardResponse prompts = Lease(w0);
  ASSERT_TRUE(prompts.has_prompts());
  auto taken = SubmitPrompts(w1, prompts.lease().lease_id(), {"Describe how rainbows form in the sky"});
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition) << taken.status();
  EXPECT_THAT(std::string(taken.status().message()), ::testing::HasSubstr("is held by worker " + w0));
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 0);
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  ASSERT_TRUE(SubmitPrompts(w0, prompts.lease().lease_id(), {"Describe how rainbows form in the sky"}).ok());
  FillPrompts(w0);
  v1::LeaseShardResponse generate = Lease(w0);
  ASSERT_TRUE(generate.has_generate());
  auto stolen = client_->SubmitShard(GenerateRequest(w1, generate));
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kFailedPrecondition) << stolen.status();
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 0);
  ASSERT_TRUE(client_->SubmitShard(GenerateRequest(w0, generate)).ok());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 2);
}

TEST_F(CoordinatorServiceTest, BadRequestsAreInvalidArgumentAndChangeNothing) {
  v1::RegisterWorkerRequest bad_rank;
  bad_rank.set_rank(2);
  bad_rank.set_world_size(2);
  auto refused = client_->RegisterWorker(bad_rank);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("rank 2"));
  EXPECT_EQ(client_->GetStatus()->workers_size(), 0);

  v1::LeaseShardRequest unknown;
  unknown.set_worker_id("nobody");
  EXPECT_EQ(client_->LeaseShard(unknown).status().code(), absl::StatusCode::kNotFound);

  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  EXPECT_EQ(Checkpoint(w0, 0, 2, 5, "/x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Checkpoint(w0, 0, 2, 0, "").status().code(), absl::StatusCode::kInvalidArgument);
  FinishSft(w0, w1);
  FillPrompts(w0);
  v1::StreamPairsRequest early;
  early.set_worker_id(w0);
  early.set_iteration(1);
  early.set_world_size(1);
  EXPECT_EQ(client_->StreamPairs(early, [](const v1::TrainingPair&) { return true; }).code(),
            absl::StatusCode::kFailedPrecondition);  // not frozen yet

  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_generate());
  v1::SubmitShardRequest malformed = GenerateRequest(w0, lease);
  malformed.set_lease_id("garbage");
  EXPECT_EQ(client_->SubmitShard(malformed).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest missing = GenerateRequest(w0, lease);
  missing.mutable_generate()->mutable_results()->RemoveLast();
  EXPECT_EQ(client_->SubmitShard(missing).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest bad_index = GenerateRequest(w0, lease);
  bad_index.mutable_generate()->mutable_results(1)->mutable_pair()->set_chosen_index(9);
  auto index_refused = client_->SubmitShard(bad_index);
  EXPECT_EQ(index_refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(index_refused.status().message()), ::testing::HasSubstr("out of range"));
  v1::SubmitShardRequest wrong_kind = GenerateRequest(w0, lease);
  wrong_kind.mutable_prompts()->add_prompts("x");
  EXPECT_EQ(client_->SubmitShard(wrong_kind).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest no_outcome = GenerateRequest(w0, lease);
  no_outcome.mutable_generate()->mutable_results(1)->clear_pair();
  EXPECT_EQ(client_->SubmitShard(no_outcome).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 0);
  // After the refusals the lease still takes the valid submission.
  EXPECT_TRUE(client_->SubmitShard(GenerateRequest(w0, lease)).ok());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 2);
}

TEST_F(CoordinatorServiceTest, ReRegisteringARankReleasesItsLeasesAtOnce) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  v1::LeaseShardResponse held = Lease(w0);
  ASSERT_TRUE(held.has_prompts());
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  v1::RegisterWorkerRequest again;
  again.set_rank(0);
  again.set_world_size(2);
  auto relaunched = client_->RegisterWorker(again);
  ASSERT_TRUE(relaunched.ok());
  EXPECT_EQ(relaunched->released_leases(), 1);
  EXPECT_NE(relaunched->worker_id(), w0);
  EXPECT_EQ(relaunched->iteration(), 1);
  EXPECT_EQ(relaunched->model_dir(), "/ckpt/m1");
  EXPECT_FALSE(relaunched->run_config_yaml().empty());
  auto parsed = ParseRunConfig(relaunched->run_config_yaml(), "registration");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->prompts.per_iteration, 6);
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 0);
  v1::LeaseShardResponse handed = Lease(w1);
  ASSERT_TRUE(handed.has_prompts());
  EXPECT_EQ(handed.lease().shard_id(), held.lease().shard_id());
  EXPECT_EQ(handed.lease().attempt(), 2);
}

// A relaunch with fewer ranks: the ranks of the earlier, larger launch are no longer listed, also
// after a coordinator restart, and their leases go back to the pool at once.
TEST_F(CoordinatorServiceTest, RanksOfAnEarlierLargerLaunchAreDroppedAndTheirLeasesReleased) {
  const std::string w0 = Register(0, 3), w1 = Register(1, 3), w2 = Register(2, 3);
  FinishSftWithRanks({w0, w1, w2});
  ASSERT_TRUE(Lease(w2).has_prompts());
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  const std::string r0 = Register(0, 2);
  auto status = client_->GetStatus();
  EXPECT_EQ(status->shards().leased(), 0);
  std::vector<std::string> listed;
  for (const auto& w : status->workers()) listed.push_back(w.worker_id());
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre(r0, w1));
  Stop();
  Start(std::nullopt);
  listed.clear();
  auto restarted = client_->GetStatus();
  ASSERT_TRUE(restarted.ok());
  for (const auto& w : restarted->workers()) {
    listed.push_back(w.worker_id());
    // Not heard from since this coordinator started: no heartbeat time (it showed the restart's).
    EXPECT_EQ(w.last_heartbeat_unix_ms(), 0) << w.worker_id();
  }
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre(r0, w1));
  v1::HeartbeatRequest beat;
  beat.set_worker_id(r0);
  ASSERT_TRUE(client_->Heartbeat(beat).ok());
  auto heard = client_->GetStatus();
  ASSERT_TRUE(heard.ok());
  for (const auto& w : heard->workers()) {
    EXPECT_EQ(w.last_heartbeat_unix_ms() > 0, w.worker_id() == r0) << w.worker_id();
  }
}


// A refusal reads the shard's state, which another call may have changed in memory and not yet
// committed: it is answered only once that state is durable. Answered before, a crash undid the
// hand-on, and the refused lease was again the shard's newest, held by a worker that had dropped
// its result (and that its heartbeats kept alive).
TEST_F(CoordinatorServiceTest, ARefusalIsAnsweredOnlyOnceTheStateItReportsIsDurable) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  const v1::LeaseShardResponse first = Lease(w0);
  ASSERT_TRUE(first.has_generate());
  now_ms_ += 11000;  // the 10 s lease expired
  // Another connection holds the write lock, as a slow fsync would: the hand-on's commit waits.
  auto blocker = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadWrite);
  ASSERT_TRUE(blocker.ok()) << blocker.status();
  ASSERT_TRUE((*blocker)->Exec("BEGIN IMMEDIATE").ok());
  std::thread hand_on([&] {
    v1::LeaseShardRequest request;
    request.set_worker_id(w1);
    EXPECT_TRUE(client_->LeaseShard(request).ok());
  });
  // (GetStatus, too, answers only what is durable: the hand-on is given time to happen in memory.)
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::atomic<bool> answered{false};
  absl::Status refusal;
  std::thread submit([&] {
    refusal = client_->SubmitShard(GenerateRequest(w0, first)).status();
    answered = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(answered) << "refused before the hand-on it reports was durable";
  ASSERT_TRUE((*blocker)->Exec("ROLLBACK").ok());
  hand_on.join();
  submit.join();
  EXPECT_EQ(refusal.code(), absl::StatusCode::kFailedPrecondition) << refusal;
  EXPECT_THAT(std::string(refusal.message()), testing::HasSubstr("expired and its shard was handed on"));
}

}  // namespace
}  // namespace srlm::coordinator
