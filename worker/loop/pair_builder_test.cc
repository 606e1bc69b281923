// Tests of the preference pair builder.
#include "worker/loop/pair_builder.h"

#include <gtest/gtest.h>

namespace srlm {
namespace {

JudgeScore S(double v) { return JudgeScore{v, JudgeParseFailure::kNone}; }
JudgeScore Bad() { return JudgeScore{std::nullopt, JudgeParseFailure::kNoMatch}; }

JudgedCandidate C(const std::string& text, std::vector<JudgeScore> scores, int64_t length = -1) {
  return JudgedCandidate{text, length < 0 ? static_cast<int64_t>(text.size()) : length,
                         std::move(scores)};
}

// A candidate cut off by max_new_tokens (or the context) before it ended.
// Options with length control on, within `band` points of the best score.
PairOptions LengthControl(double band) {
  PairOptions options;
  options.length_control = true;
  options.length_band = band;
  return options;
}

JudgedCandidate Cut(const std::string& text, std::vector<JudgeScore> scores) {
  JudgedCandidate c = C(text, std::move(scores));
  c.finished = false;
  return c;
}

TEST(PairBuilderTest, BestVersusWorstByMeanOfK) {
  // Means: a 3.0, b 4.0, c 1.5, d 2.0.
  std::vector<JudgedCandidate> cands = {C("a", {S(3), S(3), S(3)}), C("b", {S(5), S(4), S(3)}),
                                        C("c", {S(1), S(2), Bad()}), C("d", {S(2), S(2), S(2)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  ASSERT_TRUE(r.pair.has_value());
  EXPECT_EQ(r.pair->prompt, "p");
  EXPECT_EQ(r.pair->chosen, "b");
  EXPECT_EQ(r.pair->rejected, "c");
  EXPECT_DOUBLE_EQ(r.pair->chosen_score, 4.0);
  EXPECT_DOUBLE_EQ(r.pair->rejected_score, 1.5);
  EXPECT_EQ(r.judgements, 12);
  EXPECT_EQ(r.unparsable_judgements, 1);
}

TEST(PairBuilderTest, RequireAllScoresDropsCandidateWithAnyFailure) {
  std::vector<JudgedCandidate> cands = {C("a", {S(3), S(3)}), C("b", {S(5), Bad()}),
                                        C("c", {S(1), S(1)})};
  PairOptions opts;
  opts.require_all_scores = true;
  PairResult r = BuildPreferencePair("p", cands, opts);
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "a");
  EXPECT_FALSE(r.mean_scores[1].has_value());
}

TEST(PairBuilderTest, AllEqualMeansIsATieAndNoPair) {
  std::vector<JudgedCandidate> cands = {C("a", {S(4), S(2)}), C("b", {S(3), S(3)}),
                                        C("c", {S(3), Bad()})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  EXPECT_EQ(r.outcome, PairOutcome::kTie);
  EXPECT_FALSE(r.pair.has_value());
}

// Decimal scores with the same mean, summed in another order or pooled over other counts, differ in
// their last bits: still a tie, not a pair by a 4e-16 margin.
TEST(PairBuilderTest, MeansEqualButForRoundingAreATie) {
  std::vector<JudgedCandidate> cands = {C("a", {S(3.0), S(3.1), S(3.8)}), C("b", {S(3.8), S(3.1), S(3.0)}),
                                        C("c", {S(3.3), S(3.3), S(3.3)})};
  ASSERT_NE(*MeanJudgeScore(cands[0].scores, false), *MeanJudgeScore(cands[1].scores, false));  // the rounding
  EXPECT_EQ(BuildPreferencePair("p", cands, PairOptions{}).outcome, PairOutcome::kTie);
  // Length control never picks a candidate that only rounding puts above the rejected one.
  cands.push_back(C("a much longer and best answer", {S(4.5)}));
  PairResult r = BuildPreferencePair("p", cands, LengthControl(5));
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "a much longer and best answer");
}

TEST(PairBuilderTest, SameTextIsOneAnswerScoredByAllItsJudgements) {
  // Alone, the first "x" (mean 3) would tie "y" and win as the earlier, and " x " (mean 1) would be
  // rejected: the same answer on both sides. Pooled, x has mean (5 + 1 + 1 + 1) / 4 = 2.
  std::vector<JudgedCandidate> cands = {C("x", {S(5), S(1)}), C("y", {S(3), S(3)}), C(" x ", {S(1), S(1)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "y");
  EXPECT_EQ(r.pair->rejected, "x");
  EXPECT_EQ(r.pair->rejected_index, 0);
  EXPECT_DOUBLE_EQ(r.pair->rejected_score, 2.0);
  ASSERT_EQ(r.mean_scores.size(), 3u);
  EXPECT_DOUBLE_EQ(*r.mean_scores[2], 2.0);
  EXPECT_EQ(r.judgements, 6);
}

TEST(PairBuilderTest, CandidatesThatAllGiveTheSameTextAreATie) {
  std::vector<JudgedCandidate> cands = {C("a", {S(5), S(4)}), C("a", {S(1), S(2)}), C("a ", {Bad()})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  EXPECT_EQ(r.outcome, PairOutcome::kTie);
  EXPECT_FALSE(r.pair.has_value());
}

TEST(PairBuilderTest, FewerThanTwoScoredCandidatesGiveNoPair) {
  std::vector<JudgedCandidate> cands = {C("a", {Bad(), Bad()}), C("b", {S(5)}), C("c", {Bad()})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  EXPECT_EQ(r.outcome, PairOutcome::kTooFewScored);
  EXPECT_FALSE(r.pair.has_value());
  EXPECT_EQ(r.unparsable_judgements, 3);
  EXPECT_EQ(BuildPreferencePair("p", {}, PairOptions{}).outcome, PairOutcome::kTooFewAnswers);
}

TEST(PairBuilderTest, EmptyResponsesKeepTheirScoreButNeverEnterAPair) {
  // A tiny model can end a candidate at once; the judge may still score the empty answer.
  std::vector<JudgedCandidate> cands = {C("", {S(5)}), C("b", {S(4)}), C(" \n", {S(1)}), C("d", {S(2)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "b");
  EXPECT_EQ(r.pair->rejected, "d");
  ASSERT_TRUE(r.mean_scores[0].has_value());
  EXPECT_EQ(*r.mean_scores[0], 3);  // "" and " \n" are the same (empty) answer: (5 + 1) / 2
  EXPECT_EQ(BuildPreferencePair("p", cands, LengthControl(5)).pair->chosen, "b");
  // One answer and two empty responses: no pair.
  EXPECT_EQ(BuildPreferencePair("p", {C("", {S(5)}), C("", {S(1)}), C("x", {S(3)})}, PairOptions{}).outcome,
            PairOutcome::kTooFewAnswers);
}

TEST(PairBuilderTest, CutOffCandidatesAreNeverChosenNorRejected) {
  // Scored or not, a fragment stays out: here it has the best and the worst mean.
  // Length control would pick "f", the shortest near the top, were it an answer.
  std::vector<JudgedCandidate> cands = {Cut("a long fragm", {S(5), S(5)}), C("bb", {S(4)}), C("c", {S(2)}),
                                        Cut("d", {S(0)}), Cut("f", {S(5)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "bb");
  EXPECT_EQ(r.pair->rejected, "c");
  ASSERT_TRUE(r.mean_scores[0].has_value());  // kept for the record
  EXPECT_EQ(*r.mean_scores[0], 5);
  EXPECT_EQ(BuildPreferencePair("p", cands, LengthControl(5)).pair->chosen, "bb");
}

TEST(PairBuilderTest, FewerThanTwoAnswersIsItsOwnOutcome) {
  // Two scored candidates, but one is a fragment: not a parse failure, too few answers.
  PairResult r = BuildPreferencePair("p", {Cut("frag", {S(1)}), C("b", {S(4)}), C("", {})}, PairOptions{});
  EXPECT_EQ(r.outcome, PairOutcome::kTooFewAnswers);
  EXPECT_FALSE(r.pair.has_value());
  EXPECT_STREQ(PairOutcomeName(r.outcome), "too_few_answers");
  // Two answers, unscored: too few scored.
  EXPECT_EQ(BuildPreferencePair("p", {Cut("frag", {S(1)}), C("b", {Bad()}), C("c", {S(2)})}, PairOptions{}).outcome,
            PairOutcome::kTooFewScored);
}

TEST(PairBuilderTest, AnAnswerWithTheTextOfAnEarlierFragmentStillCompetes) {
  // " x" ended; the earlier "x" was cut off at the same text. The answer competes for its text.
  std::vector<JudgedCandidate> cands = {Cut("x", {}), C("y", {S(1)}), C(" x", {S(5)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen_index, 2);
  EXPECT_EQ(r.pair->rejected_index, 1);
}

TEST(PairBuilderTest, TiesAtTheTopResolveToTheEarliestCandidate) {
  std::vector<JudgedCandidate> cands = {C("a", {S(1)}), C("b", {S(5)}), C("c", {S(5)}),
                                        C("d", {S(1)})};
  PairResult r = BuildPreferencePair("p", cands, PairOptions{});
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen_index, 1);
  EXPECT_EQ(r.pair->rejected_index, 0);
}

TEST(PairBuilderTest, LengthControlPicksShortestWithinBand) {
  // Means: long 5.0 (len 90), mid 4.67 (len 40), short 4.0 (len 10), bad 1.0.
  std::vector<JudgedCandidate> cands = {C("long", {S(5), S(5), S(5)}, 90),
                                        C("mid", {S(5), S(5), S(4)}, 40),
                                        C("short", {S(4), S(4), S(4)}, 10),
                                        C("bad", {S(1), S(1), S(1)}, 5)};
  PairOptions opts = LengthControl(0.5);
  PairResult r = BuildPreferencePair("p", cands, opts);
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "mid");  // "short" is 1.0 below the top: outside the band
  EXPECT_EQ(r.pair->rejected, "bad");
  EXPECT_NEAR(r.pair->chosen_score, 14.0 / 3.0, 1e-12);

  opts.length_band = 1.0;
  r = BuildPreferencePair("p", cands, opts);
  EXPECT_EQ(r.pair->chosen, "short");

  opts.length_control = false;
  r = BuildPreferencePair("p", cands, opts);
  EXPECT_EQ(r.pair->chosen, "long");
}

TEST(PairBuilderTest, LengthControlNeverChoosesTheRejected) {
  // Band 10 covers everything: the shortest is the worst itself, which must not become chosen.
  std::vector<JudgedCandidate> cands = {C("good", {S(5)}, 50), C("worst", {S(1)}, 1)};
  PairOptions opts = LengthControl(10);
  PairResult r = BuildPreferencePair("p", cands, opts);
  ASSERT_EQ(r.outcome, PairOutcome::kPair);
  EXPECT_EQ(r.pair->chosen, "good");
  EXPECT_EQ(r.pair->rejected, "worst");
}

}  // namespace
}  // namespace srlm
