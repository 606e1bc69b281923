// The iteration cycle end to end through the gRPC server and the client library: SFT -> PROMPTS ->
// GENERATE -> TRAIN -> COMMIT -> DONE with two ranks, then the export of the iteration's pairs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "coordinator/coordinator_test_util.h"
#include "coordinator/pair_shuffle.h"
#include "coordinator/run_cycle.h"

namespace srlm::coordinator {
namespace {

// The shard counts are ceil divisions that do not overflow: (n + size - 1) / size with a shard size
// of INT64_MAX passed INT64_MAX, which made the PROMPTS limit negative and left GENERATE with no shard.
TEST(RunCycle, PromptShardLimitWithAnEnormousShardSize) {
  RunConfig config = SmallConfig();
  EXPECT_EQ(PromptShardLimit(config), kPromptShardBudget * 2);  // 6 prompts in shards of 3
  config.prompts.shard_size = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(PromptShardLimit(config), kPromptShardBudget);
}

// The largest GENERATE shard size the configuration allows (2^31 - 1; INT64_MAX before it was
// bounded) makes one shard.
TEST_F(CoordinatorServiceTest, TheLargestGenerateShardSizeMakesOneShard) {
  RunConfig config = DiscardRun();
  config.generate.shard_size = kMaxBatchSize;
  Start(config);
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(client_->GetStatus()->shards().total(), 1);
  Stop();
  Start(std::nullopt);  // the shards of GENERATE rebuilt from the database
  EXPECT_EQ(client_->GetStatus()->shards().total(), 1);
  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_generate()) << lease.DebugString();
  EXPECT_EQ(lease.generate().prompts_size(), 6);
}

TEST_F(CoordinatorServiceTest, FullIterationCycleFromSftToDone) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  auto registered = client_->GetStatus();
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ(registered->workers_size(), 2);

  // SFT at iteration 0: both ranks train; progress is reported; every rank must report.
  v1::LeaseShardResponse sft = Lease(w0);
  ASSERT_TRUE(sft.has_train()) << sft.DebugString();
  EXPECT_EQ(sft.train().phase(), v1::PHASE_SFT);
  EXPECT_EQ(sft.train().model_dir(), "/models/m0");
  v1::ReportTrainStepRequest step;
  step.set_worker_id(w0);
  step.set_iteration(0);
  step.set_step(3);
  step.set_total_steps(10);
  step.set_loss(1.25);
  (*step.mutable_metrics())["lr"] = 1e-5;
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  EXPECT_EQ(client_->GetStatus()->train_step(), 3);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->train_loss(), 1.25);
  auto first = Checkpoint(w0, 0, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->committed());
  EXPECT_EQ(first->phase(), v1::PHASE_COMMIT);
  EXPECT_EQ(first->ranks_reported(), 1);
  EXPECT_TRUE(Lease(w0).has_wait());  // this rank is done; the other is not
  // A rank that asks for training after another reported can only be a relaunched one (ranks train
  // together): it is told the checkpoint is written, so it reports instead of training alone.
  v1::LeaseShardResponse late = Lease(w1);
  ASSERT_TRUE(late.has_train());
  EXPECT_EQ(late.train().written_checkpoint_dir(), "/ckpt/m1");
  EXPECT_EQ(client_->GetStatus()->iteration(), 0);  // not advanced before every rank reported
  auto second = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->committed());
  EXPECT_EQ(second->iteration(), 1);
  EXPECT_EQ(second->phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(second->model_dir(), "/ckpt/m1");
  // A retry of a committed report is OK and changes nothing.
  auto retry = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->committed());
  EXPECT_EQ(retry->iteration(), 1);

  // PROMPTS: the filter drops duplicates, near-duplicates and bad lengths.
  v1::LeaseShardResponse p0 = Lease(w0);
  ASSERT_TRUE(p0.has_prompts()) << p0.DebugString();
  EXPECT_EQ(p0.prompts().num_prompts(), 3);
  EXPECT_EQ(p0.lease().attempt(), 1);
  auto submitted = SubmitPrompts(w0, p0.lease().lease_id(),
                                 {"Describe how rainbows form in the sky", "describe how RAINBOWS form in the sky!",
                                  "Describe how rainbows form in the sky today", "no", "List three uses of copper wire"});
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->prompts_accepted(), 2);
  EXPECT_EQ(submitted->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(submitted->prompts_dropped_near_duplicate(), 1);
  EXPECT_EQ(submitted->prompts_dropped_length(), 1);
  EXPECT_EQ(submitted->phase(), v1::PHASE_PROMPTS);
  v1::LeaseShardResponse p1 = Lease(w1);
  ASSERT_TRUE(p1.has_prompts());
  ASSERT_TRUE(SubmitPrompts(w1, p1.lease().lease_id(),
                            {"Why is the ocean salty", "How do vaccines train immunity", "What is a prime number"})
                  .ok());
  v1::LeaseShardResponse p2 = Lease(w0);
  ASSERT_TRUE(p2.has_prompts());
  auto last_prompts = SubmitPrompts(w0, p2.lease().lease_id(),
                                    {"Compare cats and dogs as pets", "Explain the rules of chess briefly"});
  ASSERT_TRUE(last_prompts.ok());
  EXPECT_EQ(last_prompts->prompts_accepted(), 1);  // the pool holds exactly per_iteration (6)
  EXPECT_EQ(last_prompts->phase(), v1::PHASE_GENERATE);
  auto status = client_->GetStatus();
  EXPECT_EQ(status->prompts_accepted(), 6);
  EXPECT_EQ(status->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(status->prompts_dropped_near_duplicate(), 1);
  EXPECT_EQ(status->prompts_dropped_length(), 1);
  EXPECT_EQ(status->shards().total(), 3);  // 6 prompts / shard_size 2

  // GENERATE: three shards of two prompts; prompt 0 is a tie, the others pairs.
  std::set<int64_t> seen_prompts;
  for (int shard = 0; shard < 3; ++shard) {
    const std::string& worker = shard % 2 ? w1 : w0;
    v1::LeaseShardResponse lease = Lease(worker);
    ASSERT_TRUE(lease.has_generate()) << lease.DebugString();
    ASSERT_EQ(lease.generate().prompts_size(), 2);
    for (const auto& prompt : lease.generate().prompts()) {
      EXPECT_FALSE(prompt.text().empty());
      seen_prompts.insert(prompt.prompt_id());
    }
    auto accepted = client_->SubmitShard(GenerateRequest(worker, lease));
    ASSERT_TRUE(accepted.ok()) << accepted.status();
    EXPECT_EQ(accepted->results_accepted(), 2);
    EXPECT_EQ(accepted->phase(), shard == 2 ? v1::PHASE_TRAIN : v1::PHASE_GENERATE);
  }
  EXPECT_EQ(seen_prompts, (std::set<int64_t>{0, 1, 2, 3, 4, 5}));
  status = client_->GetStatus();
  EXPECT_EQ(status->phase(), v1::PHASE_TRAIN);
  EXPECT_EQ(status->pairs(), 4);  // prompts 0 and 5 are ties
  EXPECT_EQ(status->dropped_ties(), 2);
  EXPECT_EQ(status->candidates(), 18);
  EXPECT_EQ(status->judgements(), 18);
  int64_t histogram_total = 0;
  for (int64_t count : status->score_histogram()) histogram_total += count;
  EXPECT_EQ(histogram_total, 17);  // the unscored candidate is in no bucket
  EXPECT_EQ(status->score_histogram(0), 0);
  EXPECT_EQ(status->score_histogram(2), 5);  // score 1 of [0,5] in 10 buckets -> bucket 2
  EXPECT_EQ(status->score_histogram(9), 0);

  // TRAIN: the frozen pairs split by position across ranks, in the documented shuffle.
  v1::LeaseShardResponse train = Lease(w0);
  ASSERT_TRUE(train.has_train());
  EXPECT_EQ(train.train().num_pairs(), 4);
  EXPECT_EQ(train.train().model_dir(), "/ckpt/m1");
  std::map<int64_t, int64_t> prompt_at_position;
  for (int rank = 0; rank < 2; ++rank) {
    v1::StreamPairsRequest request;
    request.set_worker_id(rank ? w1 : w0);
    request.set_iteration(1);
    request.set_rank(rank);
    request.set_world_size(2);
    int64_t last = -1;
    ASSERT_TRUE(client_->StreamPairs(request, [&](const v1::TrainingPair& pair) {
      EXPECT_EQ(pair.position() % 2, rank);
      EXPECT_GT(pair.position(), last);
      last = pair.position();
      EXPECT_EQ(pair.total(), 4);
      EXPECT_EQ(pair.chosen(), "answer 2 to " + pair.prompt());
      EXPECT_EQ(pair.rejected(), "answer 0 to " + pair.prompt());
      EXPECT_DOUBLE_EQ(pair.ref_chosen_logprob(), -10.5 - pair.prompt_id());
      prompt_at_position[pair.position()] = pair.prompt_id();
      return true;
    }).ok());
  }
  std::vector<int64_t> expected_positions = ShuffledPositions(4, 77, 1);  // pairs 1,2,3,4 in id order
  ASSERT_EQ(prompt_at_position.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(prompt_at_position[expected_positions[i]], i + 1);

  // COMMIT -> DONE (run.iterations = 1).
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 1, "/ckpt/m2").ok());
  auto done = Checkpoint(w1, 1, 2, 1, "/ckpt/m2");
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->committed());
  EXPECT_EQ(done->phase(), v1::PHASE_DONE);
  v1::LeaseShardResponse final_lease = Lease(w0);
  ASSERT_TRUE(final_lease.has_done());
  EXPECT_EQ(final_lease.done().final_model_dir(), "/ckpt/m2");

  // Export of iteration 1: the four pairs with provenance, in prompt order.
  std::vector<v1::ExportedPair> exported;
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair& p) { exported.push_back(p); return true; }).ok());
  ASSERT_EQ(exported.size(), 4u);
  EXPECT_EQ(exported[0].prompt_id(), 1);
  EXPECT_EQ(exported[0].model_dir(), "/ckpt/m1");
  EXPECT_EQ(exported[0].attempt(), 1);
  EXPECT_THAT(exported[0].candidate_scores(), ::testing::ElementsAre(1, 2, 3));
  EXPECT_FALSE(exported[0].worker_id().empty());
}

}  // namespace
}  // namespace srlm::coordinator
