// Tests of coordinator/shard_order.h: PROMPTS shards released in shard order, held ones restored.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/shard_order.h"

namespace srlm::coordinator {
namespace {

std::vector<int64_t> ShardsOf(const std::vector<ShardSubmission>& submissions) {
  std::vector<int64_t> shards;
  for (const ShardSubmission& submission : submissions) shards.push_back(submission.shard);
  return shards;
}

TEST(ShardOrderTest, ReleasesShardsInOrderAndRestoresHeldOnes) {
  ShardOrder order;
  EXPECT_TRUE(order.Add({2, "l2", {"c"}}).empty());
  EXPECT_TRUE(order.IsHeld(2));
  std::vector<ShardSubmission> first = order.Add({0, "l0", {"a"}});
  EXPECT_THAT(ShardsOf(first), ::testing::ElementsAre(0));
  EXPECT_EQ(first[0].prompts, std::vector<std::string>{"a"});
  EXPECT_EQ(order.next_shard(), 1);
  EXPECT_EQ(order.held(), 1);
  EXPECT_EQ(order.held_prompts(), 1);
  std::vector<ShardSubmission> rest = order.Add({1, "l1", {"b"}});
  EXPECT_THAT(ShardsOf(rest), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(rest[1].lease_id, "l2");
  EXPECT_EQ(order.held(), 0);
  EXPECT_EQ(order.held_prompts(), 0);
  EXPECT_EQ(order.next_shard(), 3);

  ASSERT_TRUE(order.Restore(1, {{3, "l3", {}}, {2, "l2", {"c"}}}).ok());
  EXPECT_EQ(order.held(), 2);
  EXPECT_THAT(ShardsOf(order.Add({1, "l1", {}})), ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(order.Restore(2, {{2, "l2", {}}}).code(), absl::StatusCode::kDataLoss);  // not after 2
  EXPECT_EQ(order.Restore(0, {{4, "a", {}}, {4, "b", {}}}).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace srlm::coordinator
