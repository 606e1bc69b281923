// Tests of the judge template and the score parser.
#include "common/judge.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

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

TEST(JudgeScoreParserTest, RefusesPatternsRe2CannotRun) {
  // std::regex (ECMAScript) took backreferences and lookaround; RE2 does not, and Create says so.
  for (const std::string pattern : {R"(Score: (\d)\1)", R"(Score: (?=\d)(\d))"}) {
    auto p = JudgeScoreParser::Create(pattern, 0, 5);
    ASSERT_FALSE(p.ok()) << pattern;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(p.status().message());
    EXPECT_NE(message.find("judge.score_pattern '" + pattern + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("RE2"), std::string::npos) << message;
    EXPECT_NE(message.find("backreferences"), std::string::npos) << message;
  }
  // RE2's own error text is included.
  auto backref = JudgeScoreParser::Create(R"(Score: (\d)\1)", 0, 5);
  EXPECT_NE(std::string(backref.status().message()).find("invalid escape sequence"),
            std::string::npos)
      << backref.status();
}

TEST(JudgeScoreParserTest, NonNumericCaptureIsNotANumber) {
  auto p = JudgeScoreParser::Create(R"(Score: (\S+))", 0, 5);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Parse("Score: four").failure, JudgeParseFailure::kNotANumber);
  EXPECT_EQ(p->Parse("Score: 4x").failure, JudgeParseFailure::kNotANumber);
}

TEST(JudgeScoreParserTest, HugeRunsOfSpacesOrDigitsParseInLinearTime) {
  // std::regex recursed once per character matched by \s* or [0-9]+ and overflowed the stack on
  // such model-written judgements; the parser must handle them, quickly.
  JudgeScoreParser p = DefaultParser();
  const std::string spaces = "Score:" + std::string(1000000, ' ') + "4";
  const std::string digits = "Score: " + std::string(1000000, '9');
  const auto start = std::chrono::steady_clock::now();
  JudgeScore from_spaces = p.Parse(spaces);
  JudgeScore from_digits = p.Parse(digits);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(from_spaces.ok()) << JudgeParseFailureName(from_spaces.failure);
  EXPECT_EQ(*from_spaces.score, 4.0);
  // A million nines overflow a double (strtod: ERANGE): unparsable, never a score.
  EXPECT_FALSE(from_digits.ok());
  EXPECT_EQ(from_digits.failure, JudgeParseFailure::kNotANumber);
  EXPECT_LT(seconds, 0.5);
}

TEST(JudgeScoreParserTest, LastMatchWinsAcrossManyMatches) {
  JudgeScoreParser p = DefaultParser();
  EXPECT_EQ(*p.Parse("Score: 1\nScore: 2\nScore: 3\nno more scores here").score, 3.0);
  EXPECT_EQ(*p.Parse("Score: 2.5 Score:4Score: 1").score, 1.0);
  // The last match decides even when it is out of range and an earlier one was fine.
  EXPECT_EQ(p.Parse("Score: 4\nScore: 9").failure, JudgeParseFailure::kOutOfRange);
  // A pattern whose matches may be empty still terminates; the last (empty) match wins.
  auto optional = JudgeScoreParser::Create(R"(([0-9]*))", 0, 5);
  ASSERT_TRUE(optional.ok()) << optional.status();
  EXPECT_EQ(optional->Parse("3 then 4").failure, JudgeParseFailure::kNotANumber);
  auto anchored = JudgeScoreParser::Create(R"(([0-9])$)", 0, 5);
  ASSERT_TRUE(anchored.ok()) << anchored.status();
  EXPECT_EQ(*anchored->Parse("1 2 3").score, 3.0);
  auto at_start = JudgeScoreParser::Create(R"(^([0-9]))", 0, 5);
  ASSERT_TRUE(at_start.ok()) << at_start.status();
  EXPECT_EQ(*at_start->Parse("1 2 3").score, 1.0);  // ^ anchors at the text's start only
}

}  // namespace
}  // namespace srlm
