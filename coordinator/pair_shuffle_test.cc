// Tests of coordinator/pair_shuffle.h: the frozen pairs' positions, a seeded permutation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "coordinator/pair_shuffle.h"

namespace srlm::coordinator {
namespace {

TEST(PairShuffleTest, PermutationDeterministicAndSeedDependent) {
  std::vector<int64_t> a = ShuffledPositions(1000, 5, 1);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, ShuffledPositions(1000, 5, 1));
  EXPECT_NE(a, ShuffledPositions(1000, 5, 2));
  EXPECT_NE(a, ShuffledPositions(1000, 6, 1));
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10);  // a shuffle, not the identity (expected ~1 fixed point)
}

}  // namespace
}  // namespace srlm::coordinator
