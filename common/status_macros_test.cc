// Tests of common/status_macros.h.
#include "common/status_macros.h"

#include <gtest/gtest.h>

#include <memory>

namespace srlm {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status QuarterInto(int x, int* out) {
  SRLM_ASSIGN_OR_RETURN(int half, Half(x));
  SRLM_ASSIGN_OR_RETURN(*out, Half(half));
  return absl::OkStatus();
}

int calls = 0;
absl::Status CountedOk() { ++calls; return absl::OkStatus(); }

absl::Status Chain(bool fail_second) {
  SRLM_RETURN_IF_ERROR(CountedOk());
  SRLM_RETURN_IF_ERROR(fail_second ? absl::NotFoundError("second") : absl::OkStatus());
  SRLM_RETURN_IF_ERROR(CountedOk());
  return absl::OkStatus();
}

TEST(StatusMacros, AssignOrReturnPassesValuesAndErrors) {
  int out = -1;
  EXPECT_TRUE(QuarterInto(8, &out).ok());
  EXPECT_EQ(out, 2);
  out = -1;
  absl::Status s = QuarterInto(6, &out);  // 6 -> 3 -> odd
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, -1);
}

TEST(StatusMacros, ReturnIfErrorStopsAtFirstError) {
  calls = 0;
  EXPECT_TRUE(Chain(false).ok());
  EXPECT_EQ(calls, 2);
  calls = 0;
  absl::Status s = Chain(true);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(calls, 1);
}

absl::StatusOr<std::unique_ptr<int>> MakeBox(int v) { return std::make_unique<int>(v); }
absl::Status UseBox(int* seen) {
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<int> box, MakeBox(7));  // move-only values work
  SRLM_ASSIGN_OR_RETURN(auto again, MakeBox(8));                // twice in one scope
  *seen = *box + *again;
  return absl::OkStatus();
}

TEST(StatusMacros, MoveOnlyValues) {
  int seen = 0;
  ASSERT_TRUE(UseBox(&seen).ok());
  EXPECT_EQ(seen, 15);
}

absl::Status WithContext() {
  SRLM_RETURN_IF_ERROR_CTX(absl::DataLossError("bad byte"), "reading x.bin");
  return absl::OkStatus();
}

TEST(StatusMacros, ContextKeepsCodeAndPrefixesMessage) {
  absl::Status s = WithContext();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "reading x.bin: bad byte");
}

}  // namespace
}  // namespace srlm
