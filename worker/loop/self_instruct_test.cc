// Tests of the self-instruct prompt builder and parser.
#include "worker/loop/self_instruct.h"

#include <set>

#include <gtest/gtest.h>

namespace srlm {
namespace {

TEST(SelfInstructTest, PromptListsShotsAndEndsWithOpenMarker) {
  const std::string p = BuildSelfInstructPrompt({"Add 2 and 3.", "  Reverse the word cat.\n"});
  EXPECT_EQ(p,
            "Below are example tasks. Write one new task in the same style.\n\n"
            "### Task\nAdd 2 and 3.\n\n"
            "### Task\nReverse the word cat.\n\n"
            "### Task\n");
}

TEST(SelfInstructTest, ParseCutsAtStopAndTrims) {
  auto p = ParseGeneratedPrompt("  Uppercase the word dog.\n\n### Task\nAnother", 4, 512);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, "Uppercase the word dog.");
  EXPECT_EQ(*ParseGeneratedPrompt("Multi\nline task", 4, 512), "Multi\nline task");
}

TEST(SelfInstructTest, ParseRejectsEmptyShortAndLong) {
  EXPECT_FALSE(ParseGeneratedPrompt("  \n### Task\nx", 1, 512).ok());
  EXPECT_FALSE(ParseGeneratedPrompt("abc", 4, 512).ok());
  EXPECT_FALSE(ParseGeneratedPrompt(std::string(600, 'x'), 4, 512).ok());
  EXPECT_TRUE(ParseGeneratedPrompt(std::string(512, 'x'), 4, 512).ok());
}

// The model echoing the few-shot request is not a task (it used to enter the pool): either sentence
// of the header, in any case, alone or with text around it.
TEST(SelfInstructTest, ParseRejectsAnEchoOfTheRequest) {
  const std::string request = BuildSelfInstructPrompt({"Name a colour"});
  const std::string header = request.substr(0, request.find("###"));
  EXPECT_FALSE(ParseGeneratedPrompt(header, 4, 512).ok());
  EXPECT_FALSE(ParseGeneratedPrompt("below are example tasks. Name three fruits.", 4, 512).ok());
  EXPECT_FALSE(ParseGeneratedPrompt("Please write one new task in the same style as above", 4, 512).ok());
  EXPECT_FALSE(ParseGeneratedPrompt("Below are example\ntasks.  Write one new task in\tthe same style.", 4, 512).ok());
  auto status = ParseGeneratedPrompt(header + "Name three fruits.\n### Task", 4, 512).status();
  EXPECT_NE(status.message().find("repeats the self-instruct request"), std::string::npos) << status;
  // A task that merely shares words with it is one.
  EXPECT_TRUE(ParseGeneratedPrompt("Write one new poem about tasks.", 4, 512).ok());
}

// A "###" of any kind ends the task (a model that goes on with "### Response" has finished it).
TEST(SelfInstructTest, AnyHashMarkEndsTheTask) {
  EXPECT_EQ(*ParseGeneratedPrompt("Sort these numbers: 3, 1, 2.\n### Response\n1, 2, 3", 4, 512),
            "Sort these numbers: 3, 1, 2.");
}

TEST(SelfInstructTest, ShotPoolHoldsEachPromptOnceInFileOrder) {
  EXPECT_EQ(DistinctShotPrompts({"Add: 1 + 2", "Name a colour", "Add: 1 + 2", " Name a colour\n", "add: 1 + 2"}),
            (std::vector<std::string>{"Add: 1 + 2", "Name a colour", "add: 1 + 2"}));
  EXPECT_TRUE(DistinctShotPrompts({}).empty());
}

TEST(SelfInstructTest, ShotIndicesAreDistinctInRangeAndReproducible) {
  auto a = SampleShotIndices(100, 8, 42);
  auto b = SampleShotIndices(100, 8, 42);
  auto c = SampleShotIndices(100, 8, 43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 8u);
  std::set<int64_t> distinct(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), 8u);
  for (int64_t i : a) {
    EXPECT_GE(i, 0);
    EXPECT_LT(i, 100);
  }
  EXPECT_EQ(SampleShotIndices(3, 8, 1).size(), 3u);
  EXPECT_TRUE(SampleShotIndices(0, 8, 1).empty());
}

TEST(SelfInstructTest, ShotsCoverThePoolEvenly) {
  // Over many seeds every index of a pool of 10 is drawn about shots/pool of the time.
  std::vector<int> counts(10, 0);
  const int draws = 4000;
  for (int s = 0; s < draws; ++s) {
    for (int64_t i : SampleShotIndices(10, 3, DeriveSeed(7, {s}))) ++counts[i];
  }
  for (int c : counts) EXPECT_NEAR(c, draws * 3 / 10, draws * 3 / 10 * 0.1);
}

TEST(SelfInstructTest, DerivedSeedsDependOnEveryPart) {
  EXPECT_EQ(DeriveSeed(1, {2, 3}), DeriveSeed(1, {2, 3}));
  EXPECT_NE(DeriveSeed(1, {2, 3}), DeriveSeed(1, {3, 2}));
  EXPECT_NE(DeriveSeed(1, {2, 3}), DeriveSeed(2, {2, 3}));
  EXPECT_NE(DeriveSeed(1, {2}), DeriveSeed(1, {2, 0}));
}

}  // namespace
}  // namespace srlm
