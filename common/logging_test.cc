// Tests of common/logging.h: every line carries role, rank, severity and location.
#include "common/logging.h"

#include <gtest/gtest.h>

#include <regex>

namespace srlm {
namespace {

TEST(Logging, LineCarriesRoleRankSeverityAndLocation) {
  SetLogIdentity("worker", 3);
  testing::internal::CaptureStderr();
  SRLM_LOG(WARNING) << "loss " << 0.5;
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::regex_search(
      out, std::regex(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[worker r3\] W logging_test\.cc:\d+\] loss 0\.5\n$)")))
      << out;
}

TEST(Logging, NoRankForSingletons) {
  SetLogIdentity("coordinator", -1);
  testing::internal::CaptureStderr();
  SRLM_LOG(INFO) << "up";
  EXPECT_NE(testing::internal::GetCapturedStderr().find("[coordinator] I "), std::string::npos);
}

TEST(Logging, BelowMinimumIsDroppedAndNotEvaluated) {
  SetMinLogSeverity(LogSeverity::kWARNING);
  int evaluated = 0;
  auto side_effect = [&] { return ++evaluated; };
  testing::internal::CaptureStderr();
  SRLM_LOG(INFO) << side_effect();
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(evaluated, 0);
  SetMinLogSeverity(LogSeverity::kINFO);
}

TEST(LoggingDeathTest, FatalAborts) {
  EXPECT_DEATH({ SRLM_LOG(FATAL) << "boom"; }, "boom");
}

}  // namespace
}  // namespace srlm
