// Tests of the PROMPTS phase: shards entering the pool in shard order (also across a restart), and
// the prompts of data.ift and data.eval kept out of the pool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator_test_util.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

// Ranks finish PROMPTS shards in any order, but the pool is filled in shard order, so that the
// filter's verdicts (and so the pool) are the same in every run. Held shards survive a restart,
// also one that brought no prompts.
TEST_F(CoordinatorServiceTest, PromptShardsEnterThePoolInShardOrderWhateverOrderTheyArrive) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.prompts.shard_size = 2;
  Start(config);
  const std::string w0 = Register(0, 3), w1 = Register(1, 3), w2 = Register(2, 3);
  v1::LeaseShardResponse s0 = Lease(w0), s1 = Lease(w1), s2 = Lease(w2);
  ASSERT_EQ(s0.lease().shard_id(), 0);
  ASSERT_EQ(s1.lease().shard_id(), 1);
  ASSERT_EQ(s2.lease().shard_id(), 2);

  auto empty = SubmitPrompts(w2, s2.lease().lease_id(), {});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->shards_held(), 1);
  auto early = SubmitPrompts(w1, s1.lease().lease_id(), {"Describe how rainbows form in the sky", "x"});
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->prompts_accepted(), 0);
  EXPECT_EQ(early->prompts_dropped_length(), 0);  // not filtered yet
  EXPECT_EQ(early->shards_held(), 2);
  EXPECT_EQ(early->phase(), v1::PHASE_PROMPTS);
  // Held shards count as supply by the prompts they hold: shard 1's 2 and the leased shard 0's 2
  // leave 2 of the 6 wanted uncovered (the empty shard 2 covers none), so a fourth shard is made;
  // with it the 6 are covered and a fifth is not.
  v1::LeaseShardResponse s3 = Lease(w1);
  ASSERT_TRUE(s3.has_prompts()) << s3.DebugString();
  EXPECT_EQ(s3.lease().shard_id(), 3);
  EXPECT_TRUE(Lease(w2).has_wait());
  // Nothing is exported while the pool is being written.
  EXPECT_EQ(client_->ExportPairs(1, [](const v1::ExportedPair&) { return true; }).code(),
            absl::StatusCode::kNotFound);
  // A lease id must be spelled as the coordinator spelled it.
  auto misspelled = SubmitPrompts(w0, "i1-P-s00-a1", {"Why is the sky blue at noon"});
  EXPECT_EQ(misspelled.status().code(), absl::StatusCode::kInvalidArgument) << misspelled.status();

  Stop();
  Start(std::nullopt);
  v1::GetStatusResponse held = *client_->GetStatus();
  EXPECT_EQ(held.prompts_accepted(), 0);
  EXPECT_EQ(held.shards().done(), 2);
  EXPECT_EQ(held.shards().held(), 2);
  auto duplicate = SubmitPrompts(w1, s1.lease().lease_id(), {"Describe how rainbows form in the sky", "x"});
  ASSERT_TRUE(duplicate.ok());
  EXPECT_TRUE(duplicate->duplicate());

  // Shard 0 completes the order: it enters first, then shard 1 (whose rainbow prompt is now the
  // duplicate), then the empty shard 2.
  auto last = SubmitPrompts(w0, s0.lease().lease_id(),
                            {"describe how RAINBOWS form in the sky!", "Why is the ocean salty"});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->prompts_accepted(), 2);
  EXPECT_EQ(last->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(last->prompts_dropped_length(), 1);
  EXPECT_EQ(last->shards_held(), 0);
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.prompts_accepted(), 2);
  EXPECT_EQ(status.prompts_dropped_duplicate(), 1);
  EXPECT_EQ(status.shards().held(), 0);

  auto db = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadOnly);
  ASSERT_TRUE(db.ok()) << db.status();
  auto pool = (*db)->Prepare("SELECT prompt_id, text, lease_id FROM prompts WHERE iteration = 1 ORDER BY prompt_id");
  ASSERT_TRUE(pool.ok());
  std::vector<std::string> rows;
  while (*(*pool)->Step()) {
    rows.push_back(absl::StrCat((*pool)->ColumnInt(0), " ", (*pool)->ColumnText(1), " ", (*pool)->ColumnText(2)));
  }
  (*pool)->Reset();
  EXPECT_THAT(rows, ::testing::ElementsAre("0 describe how RAINBOWS form in the sky! i1-P-s0-a1",
                                           "1 Why is the ocean salty i1-P-s0-a1"));
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM held_prompts", -1), 0);
  EXPECT_EQ(*(*db)->QueryInt("SELECT dropped_duplicate * 10 + dropped_length FROM leases "
                             "WHERE lease_id = 'i1-P-s1-a1'", -1), 11);
  // The pool lacks 4 prompts; shard 3 (leased) may bring 2: another shard is handed out.
  v1::LeaseShardResponse s4 = Lease(w1);
  ASSERT_TRUE(s4.has_prompts()) << s4.DebugString();
  EXPECT_EQ(s4.lease().shard_id(), 4);
}

// The prompts of data.ift (the few-shot examples) and data.eval (the held-out evaluation) count
// as seen: a new prompt repeating one, exactly or nearly, is dropped as a duplicate of a pool prompt
// would be, and counted apart (prompts_dropped_seen). They are not pool prompts: no ids, no rows, no
// share of prompts.per_iteration.
TEST_F(CoordinatorServiceTest, PromptsRepeatingIftOrEvalPromptsAreKeptOutOfThePool) {
  std::string w0, w1;
  StartPromptsWithSeenPrompts(&w0, &w1);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 0);
  ExpectSeenPromptsDropped(w0, "Why is the ocean salty");
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(status.prompts_accepted(), 1);
  EXPECT_EQ(status.prompts_dropped_seen(), 3);
  EXPECT_EQ(status.prompts_dropped_duplicate(), 0);
  EXPECT_EQ(status.prompts_dropped_near_duplicate(), 0);
  EXPECT_THAT(StoredPool(), ::testing::ElementsAre("Why is the ocean salty"));
}

// A coordinator reopened mid-PROMPTS on the same run directory seeds its rebuilt filter with the
// same seen prompts, next to the stored pool: the same verdicts as before the restart.
TEST_F(CoordinatorServiceTest, PromptsRepeatingIftOrEvalPromptsAreKeptOutAfterARestartMidPrompts) {
  std::string w0, w1;
  StartPromptsWithSeenPrompts(&w0, &w1);
  ExpectSeenPromptsDropped(w0, "Why is the ocean salty");
  Stop();
  Start(std::nullopt);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  ExpectSeenPromptsDropped(w0, "Explain the rules of chess briefly");
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.prompts_accepted(), 2);
  EXPECT_EQ(status.prompts_dropped_seen(), 6);  // the first shard's 3 from its lease row
  EXPECT_EQ(status.prompts_dropped_duplicate(), 0);
  EXPECT_EQ(status.prompts_dropped_near_duplicate(), 0);
  EXPECT_THAT(StoredPool(), ::testing::ElementsAre("Why is the ocean salty", "Explain the rules of chess briefly"));
  // The stored pool is in the rebuilt filter too.
  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
  auto again = SubmitPrompts(w0, lease.lease().lease_id(), {"why is the OCEAN salty?"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(again->prompts_dropped_seen(), 0);
}

// A run directory that a build before prompts_dropped_seen made (its leases table lacks the
// column) opens: the column is added, the older shards count no copies (they were counted with the
// duplicates then), and new shards count theirs, also across a restart.
TEST_F(CoordinatorServiceTest, ALeasesTableOfAnOlderBuildGetsTheSeenCountColumn) {
  std::string w0, w1;
  StartPromptsWithSeenPrompts(&w0, &w1);
  ExpectSeenPromptsDropped(w0, "Why is the ocean salty");
  Stop();
  {
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("ALTER TABLE leases DROP COLUMN dropped_seen").ok());
  }
  Start(std::nullopt);
  EXPECT_EQ(client_->GetStatus()->prompts_dropped_seen(), 0);
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 1);
  ExpectSeenPromptsDropped(w0, "Explain the rules of chess briefly");
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(client_->GetStatus()->prompts_dropped_seen(), 3);
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 2);
}

}  // namespace
}  // namespace srlm::coordinator
