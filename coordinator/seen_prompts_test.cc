// Tests of coordinator/seen_prompts.h: the prompts of data.ift and data.eval, read in that order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "common/run_config.h"
#include "coordinator/coordinator_test_util.h"
#include "coordinator/seen_prompts.h"

namespace srlm::coordinator {
namespace {

TEST(SeenPromptsTest, ReadsThePromptsOfIftThenEvalAndNoneForAnUnsetPath) {
  char pattern[] = "/tmp/srlm_seen_prompts_XXXXXX";
  const std::string dir = mkdtemp(pattern);
  DataConfig data;
  data.ift = dir + "/ift.jsonl";
  data.eval = dir + "/eval.jsonl";
  WriteTextFile(data.ift, "{\"prompt\": \"a\", \"response\": \"1\"}\n\n{\"prompt\": \"b\", \"response\": \"2\"}\n");
  WriteTextFile(data.eval, "{\"prompt\": \"c\", \"answer\": \"3\"}\n");
  auto both = ReadSeenPrompts(data);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_THAT(*both, ::testing::ElementsAre("a", "b", "c"));
  data.ift.clear();
  auto eval_only = ReadSeenPrompts(data);
  ASSERT_TRUE(eval_only.ok()) << eval_only.status();
  EXPECT_THAT(*eval_only, ::testing::ElementsAre("c"));
  EXPECT_TRUE(ReadSeenPrompts(DataConfig{})->empty());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace srlm::coordinator
