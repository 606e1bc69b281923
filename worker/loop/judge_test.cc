// Tests of the judge template and the score parser.
#include "worker/loop/judge.h"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "common/run_config.h"

namespace srlm {
namespace {

JudgeScoreParser DefaultParser() {
  RunConfig config;
  auto parser = JudgeScoreParser::Create(config.judge.score_pattern, config.judge.min_score,
                                         config.judge.max_score);
  EXPECT_TRUE(parser.ok()) << parser.status();
  return *std::move(parser);
}

TEST(JudgeTemplateTest, BuiltinIsAdditiveFivePointRubricEndingInScoreLine) {
  const std::string& t = BuiltinJudgeTemplate();
  EXPECT_NE(t.find("{prompt}"), std::string::npos);
  EXPECT_NE(t.find("{response}"), std::string::npos);
  EXPECT_NE(t.find("five-point"), std::string::npos);
  EXPECT_NE(t.find("Score: <points>"), std::string::npos);
  // Five criteria, one point each.
  size_t bullets = 0;
  for (size_t pos = 0; (pos = t.find("\n- ", pos)) != std::string::npos; ++pos) ++bullets;
  EXPECT_EQ(bullets, 5u);
}

TEST(JudgeTemplateTest, RenderSubstitutesOnceAndDoesNotRecurse) {
  auto t = JudgeTemplate::FromText("Q={prompt} A={response} again {prompt}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->Render("what {response}?", "x{prompt}y"),
            "Q=what {response}? A=x{prompt}y again what {response}?");
}

TEST(JudgeTemplateTest, RejectsTemplateWithoutPlaceholders) {
  EXPECT_FALSE(JudgeTemplate::FromText("no placeholders {prompt}").ok());
  EXPECT_FALSE(JudgeTemplate::FromText("{response} only").ok());
}

TEST(JudgeTemplateTest, EmptyPathIsBuiltinAndFileIsRead) {
  auto builtin = JudgeTemplate::FromFile("");
  ASSERT_TRUE(builtin.ok());
  EXPECT_EQ(builtin->text(), BuiltinJudgeTemplate());

  const std::string path = ::testing::TempDir() + "/judge_template.txt";
  { std::ofstream(path) << "P:{prompt}\nR:{response}\nScore:"; }
  auto from_file = JudgeTemplate::FromFile(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_file->Render("1+1", "2"), "P:1+1\nR:2\nScore:");
  std::remove(path.c_str());
  EXPECT_EQ(JudgeTemplate::FromFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(JudgeScoreParserTest, ReadsTheLastScoreLine) {
  JudgeScoreParser p = DefaultParser();
  EXPECT_EQ(*p.Parse("Relevant and complete.\nScore: 4").score, 4.0);
  EXPECT_EQ(*p.Parse("Score: 1 would be harsh; it is better.\nScore:  3.5\n").score, 3.5);
  EXPECT_EQ(*p.Parse("Score:0").score, 0.0);
  EXPECT_EQ(*p.Parse("Score: 5").score, 5.0);
}

TEST(JudgeScoreParserTest, CountsFailuresAndNeverInventsAScore) {
  JudgeScoreParser p = DefaultParser();
  JudgeScore none = p.Parse("A fine answer, I give it four points.");
  EXPECT_FALSE(none.ok());
  EXPECT_EQ(none.failure, JudgeParseFailure::kNoMatch);
  JudgeScore high = p.Parse("Score: 7");
  EXPECT_FALSE(high.ok());
  EXPECT_EQ(high.failure, JudgeParseFailure::kOutOfRange);
  JudgeScore high_fraction = p.Parse("Score: 5.5");
  EXPECT_EQ(high_fraction.failure, JudgeParseFailure::kOutOfRange);
  // A negative number does not match the default pattern at all.
  EXPECT_EQ(p.Parse("Score: -1").failure, JudgeParseFailure::kNoMatch);
  EXPECT_STREQ(JudgeParseFailureName(JudgeParseFailure::kOutOfRange), "out_of_range");
}

TEST(JudgeScoreParserTest, CustomPatternAndRange) {
  auto p = JudgeScoreParser::Create(R"(Rating \[(-?\d+)\])", -2, 2);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p->Parse("Rating [-2]").score, -2.0);
  EXPECT_EQ(p->Parse("Rating [3]").failure, JudgeParseFailure::kOutOfRange);
  EXPECT_FALSE(JudgeScoreParser::Create("Score: \\d+", 0, 5).ok());  // no capture group
  EXPECT_FALSE(JudgeScoreParser::Create("Score: (", 0, 5).ok());     // invalid regex
  EXPECT_FALSE(JudgeScoreParser::Create("(\\d)", 5, 5).ok());        // empty range
}

TEST(JudgeScoreParserTest, NonNumericCaptureIsNotANumber) {
  auto p = JudgeScoreParser::Create(R"(Score: (\S+))", 0, 5);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Parse("Score: four").failure, JudgeParseFailure::kNotANumber);
  EXPECT_EQ(p->Parse("Score: 4x").failure, JudgeParseFailure::kNotANumber);
}

}  // namespace
}  // namespace srlm
