// Tests of common/int_math.h.
#include "common/int_math.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace srlm {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(CeilDiv, RoundsUp) {
  EXPECT_EQ(CeilDiv(0, 5), 0);
  EXPECT_EQ(CeilDiv(1, 5), 1);
  EXPECT_EQ(CeilDiv(20, 5), 4);
  EXPECT_EQ(CeilDiv(23, 5), 5);
  EXPECT_EQ(CeilDiv(7, 1), 7);
}

// (n + d - 1) / d passed INT64_MAX here: negative, or 0 (a division by zero in the trainer).
TEST(CeilDiv, NoOverflowAtTheEndsOfTheRange) {
  EXPECT_EQ(CeilDiv(20, kMax), 1);
  EXPECT_EQ(CeilDiv(kMax, kMax), 1);
  EXPECT_EQ(CeilDiv(kMax - 1, kMax), 1);
  EXPECT_EQ(CeilDiv(kMax, 1), kMax);
  EXPECT_EQ(CeilDiv(kMax, 2), int64_t{1} << 62);
  EXPECT_EQ(CeilDiv(0, kMax), 0);
}

}  // namespace
}  // namespace srlm
