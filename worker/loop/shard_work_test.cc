// Tests of one shard's work against a scripted model: a model that answers the demo's arithmetic
// prompts right or wrong by seed and judges by checking the arithmetic, so the expected pairs are
// known independently of the code under test.
#include "worker/loop/shard_work.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "worker/loop/self_instruct.h"

namespace srlm {
namespace {

// "Add: a + b" -> candidates "a+b" (seed even) or "a+b+1" (seed odd). Its chat template wraps a user
// message as "<u>...</u>"; raw requests are used as they are. Judge prompts (rendered from
// "T:{prompt}|A:{response}", then chat-formatted) are scored "Score: 5" when the answer is
// right, "Score: 1" when wrong, and "no idea" when the judge seed is divisible by 7 (unparsable).
// Self-instruct requests are answered with "Add: <seed % 10> + 1\n###".
class ScriptedModel : public LoopModel {
 public:
  static std::string Format(const std::string& text, PromptFormat format) {
    return format == PromptFormat::kChat ? "<u>" + text + "</u>" : text;
  }
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override {
    ++generate_calls;
    last_stop = sampling.stop;
    std::vector<std::string> prompts;
    for (const std::string& t : texts) prompts.push_back(Format(t, format));
    std::vector<GeneratedText> out;
    static const std::regex kJudge(R"(<u>T:Add: (\d+) \+ (\d+)\|A:(-?\d+)</u>)");
    static const std::regex kAsk(R"(<u>Add: (\d+) \+ (\d+)</u>)");
    for (size_t i = 0; i < prompts.size(); ++i) {
      std::smatch m;
      GeneratedText g;
      g.finish_reason = "eos";
      if (std::regex_match(prompts[i], m, kJudge)) {
        const bool right = std::stoi(m[1]) + std::stoi(m[2]) == std::stoi(m[3]);
        g.text = seeds[i] % 7 == 0 ? "no idea" : (right ? "right.\nScore: 5" : "wrong.\nScore: 1");
      } else if (std::regex_match(prompts[i], m, kAsk)) {
        const int sum = std::stoi(m[1]) + std::stoi(m[2]) + (seeds[i] % 2 == 0 ? 0 : 1);
        g.text = std::to_string(sum);
      } else if (prompts[i].rfind("Below are example tasks.", 0) == 0) {
        g.text = "Add: " + std::to_string(seeds[i] % 10) + " + 1\n";
        g.finish_reason = "stop";
      } else {
        return absl::InvalidArgumentError("unexpected prompt: " + prompts[i]);
      }
      g.num_tokens = static_cast<int64_t>(g.text.size());
      out.push_back(g);
    }
    return out;
  }
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string& user_message, const std::vector<std::string>& responses) override {
    scored_messages.push_back(user_message);
    std::vector<ScoredResponse> out;
    for (const auto& r : responses) {
      out.push_back({-0.5 * static_cast<double>(r.size()), static_cast<int64_t>(r.size()) + 1});
    }
    return out;
  }
  int generate_calls = 0;
  std::vector<std::string> last_stop;
  std::vector<std::string> scored_messages;  // ScoreResponses gets the user message, not a formatted prompt
};

class ShardWorkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.generate.candidates = 4;
    config_.judge.samples = 3;
    config_.prompts.shots = 2;
    templ_ = std::make_unique<JudgeTemplate>(*JudgeTemplate::FromText("T:{prompt}|A:{response}"));
    parser_ = std::make_unique<JudgeScoreParser>(
        *JudgeScoreParser::Create(config_.judge.score_pattern, 0, 5));
    ctx_.config = &config_;
    ctx_.ift_prompts = &ift_;
    ctx_.judge_template = templ_.get();
    ctx_.score_parser = parser_.get();
  }
  v1::GenerateShard Shard(uint64_t seed) {
    v1::GenerateShard shard;
    shard.set_seed(seed);
    for (int i = 0; i < 6; ++i) {
      v1::PoolPrompt* p = shard.add_prompts();
      p->set_prompt_id(100 + i);
      p->set_text("Add: " + std::to_string(i) + " + " + std::to_string(2 * i));
    }
    return shard;
  }
  RunConfig config_;
  std::vector<std::string> ift_ = {"Add: 1 + 2", "Add: 3 + 4", "Reverse the word: cat"};
  std::unique_ptr<JudgeTemplate> templ_;
  std::unique_ptr<JudgeScoreParser> parser_;
  ShardContext ctx_;
};

TEST_F(ShardWorkTest, GenerateShardPairsRightOverWrongWithReferenceLogprobs) {
  ScriptedModel model;
  auto result = RunGenerateShard(Shard(99), ctx_, model);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->results_size(), 6);
  int pairs = 0, ties = 0, unparsable = 0;
  for (int p = 0; p < 6; ++p) {
    const v1::PromptResult& r = result->results(p);
    EXPECT_EQ(r.prompt_id(), 100 + p);
    ASSERT_EQ(r.candidates_size(), 4);
    ASSERT_EQ(r.judgements_size(), 12);
    ASSERT_EQ(r.mean_scores_size(), 4);
    const int truth = 3 * p;
    for (const auto& j : r.judgements()) {
      if (j.unparsable()) {
        ++unparsable;
        continue;
      }
      const bool right = std::stoi(r.candidates(j.candidate_index()).text()) == truth;
      EXPECT_EQ(j.score(), right ? 5 : 1);
    }
    if (r.has_pair()) {
      ++pairs;
      EXPECT_EQ(r.pair().chosen(), std::to_string(truth));
      EXPECT_EQ(r.pair().rejected(), std::to_string(truth + 1));
      EXPECT_EQ(r.pair().chosen_score(), 5);
      EXPECT_EQ(r.pair().rejected_score(), 1);
      EXPECT_DOUBLE_EQ(r.pair().ref_chosen_logprob(), -0.5 * r.pair().chosen().size());
      EXPECT_EQ(r.pair().rejected_num_tokens(), static_cast<int64_t>(r.pair().rejected().size()) + 1);
      EXPECT_EQ(r.candidates(r.pair().chosen_index()).text(), r.pair().chosen());
    } else {
      // No pair only when every scored candidate got the same mean (all right or all wrong).
      EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_TIE);
      ++ties;
    }
  }
  EXPECT_EQ(pairs + ties, 6);
  EXPECT_GT(pairs, 0);
  EXPECT_GT(unparsable, 0);  // about 1 in 7 judge seeds
  ASSERT_EQ(model.scored_messages.size(), static_cast<size_t>(pairs));
  for (const std::string& m : model.scored_messages) {
    EXPECT_TRUE(std::regex_match(m, std::regex(R"(Add: \d \+ \d+)"))) << m;
  }
}

TEST_F(ShardWorkTest, SamplesDependOnRunSeedIterationAndPromptNotOnShardPlacement) {
  ScriptedModel a, b, c, d;
  ctx_.run_seed = 5;
  ctx_.iteration = 1;
  auto first = RunGenerateShard(Shard(7), ctx_, a);
  auto other_shard_seed = RunGenerateShard(Shard(8), ctx_, b);
  ASSERT_TRUE(first.ok() && other_shard_seed.ok());
  EXPECT_EQ(first->SerializeAsString(), other_shard_seed->SerializeAsString());
  // The same prompts in reverse order (another shard layout): each prompt's result is unchanged.
  v1::GenerateShard reversed = Shard(7);
  std::reverse(reversed.mutable_prompts()->begin(), reversed.mutable_prompts()->end());
  auto moved = RunGenerateShard(reversed, ctx_, c);
  ASSERT_TRUE(moved.ok());
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(first->results(i).SerializeAsString(), moved->results(5 - i).SerializeAsString());
  }
  ctx_.run_seed = 6;
  auto other_run = RunGenerateShard(Shard(7), ctx_, d);
  ASSERT_TRUE(other_run.ok());
  EXPECT_NE(first->SerializeAsString(), other_run->SerializeAsString());
}

TEST_F(ShardWorkTest, AllJudgementsUnparsableDropsWithReason) {
  ScriptedModel model;
  ctx_.score_parser = nullptr;
  auto never = JudgeScoreParser::Create(R"(Points=(\d))", 0, 5);
  ASSERT_TRUE(never.ok());
  ctx_.score_parser = &*never;
  auto result = RunGenerateShard(Shard(3), ctx_, model);
  ASSERT_TRUE(result.ok());
  for (const auto& r : result->results()) {
    EXPECT_FALSE(r.has_pair());
    EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_UNPARSABLE);
    for (double m : r.mean_scores()) EXPECT_LT(m, config_.judge.min_score);
  }
}

// judge.require_all_scores: a candidate with one unparsable judgement of its k never enters a pair.
TEST_F(ShardWorkTest, RequireAllScoresKeepsCandidatesWithAnUnparsableJudgementOut) {
  int lenient_pairs_with_failures = 0;
  for (int64_t run_seed = 1; run_seed <= 8; ++run_seed) {
    ctx_.run_seed = run_seed;
    ScriptedModel lenient_model, strict_model;
    config_.judge.require_all_scores = false;
    auto lenient = RunGenerateShard(Shard(3), ctx_, lenient_model);
    config_.judge.require_all_scores = true;
    auto strict = RunGenerateShard(Shard(3), ctx_, strict_model);
    ASSERT_TRUE(lenient.ok() && strict.ok());
    for (int p = 0; p < strict->results_size(); ++p) {
      const v1::PromptResult& r = strict->results(p);
      std::set<int> with_failure;  // candidates (by text: equal texts share judgements)
      std::set<std::string> failed_texts;
      for (const auto& j : r.judgements()) {
        if (j.unparsable()) failed_texts.insert(r.candidates(j.candidate_index()).text());
      }
      for (int c = 0; c < r.candidates_size(); ++c) {
        if (failed_texts.count(r.candidates(c).text())) {
          with_failure.insert(c);
          EXPECT_LT(r.mean_scores(c), config_.judge.min_score);
        }
      }
      if (r.has_pair()) {
        EXPECT_FALSE(with_failure.count(r.pair().chosen_index()));
        EXPECT_FALSE(with_failure.count(r.pair().rejected_index()));
      }
      const v1::PromptResult& l = lenient->results(p);
      if (l.has_pair() && (with_failure.count(l.pair().chosen_index()) || with_failure.count(l.pair().rejected_index()))) {
        ++lenient_pairs_with_failures;
      }
    }
  }
  config_.judge.require_all_scores = false;
  EXPECT_GT(lenient_pairs_with_failures, 0);  // the setting changed something
}

// ScriptedModel whose outputs for which `cut(request text, seed)` holds end at max_new_tokens
// ("length").
class CuttingModel : public ScriptedModel {
 public:
  explicit CuttingModel(std::function<bool(const std::string&, uint64_t)> cut) : cut_(std::move(cut)) {}
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override {
    auto out = ScriptedModel::Generate(texts, format, sampling, seeds);
    if (!out.ok()) return out;
    for (size_t i = 0; i < out->size(); ++i) {
      if (!cut_(texts[i], seeds[i])) continue;
      (*out)[i].finish_reason = "length";
      ++truncated;
    }
    return out;
  }
  int truncated = 0;

 private:
  std::function<bool(const std::string&, uint64_t)> cut_;
};

// Judgements cut off by max_new_tokens count as unparsable, even when they hold a "Score:" (one the
// justification mentioned, maybe: the rubric puts the total on the last line, and there is none).
TEST_F(ShardWorkTest, JudgementsCutOffByLengthAreUnparsable) {
  CuttingModel model([](const std::string& text, uint64_t) { return text.rfind("T:", 0) == 0; });  // judge requests
  auto result = RunGenerateShard(Shard(3), ctx_, model);
  ASSERT_TRUE(result.ok()) << result.status();
  for (const auto& r : result->results()) {
    EXPECT_FALSE(r.has_pair());
    EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_UNPARSABLE);
    ASSERT_GT(r.judgements_size(), 0);
    for (const auto& j : r.judgements()) {
      EXPECT_TRUE(j.unparsable()) << j.raw_text();
      EXPECT_EQ(j.finish_reason(), "length");
    }
  }
}

// Candidates cut off by max_new_tokens are fragments: never judged, chosen or rejected; a prompt
// left with fewer than two answers is dropped as TOO_FEW_ANSWERS, not as unparsable.
TEST_F(ShardWorkTest, CandidatesCutOffByLengthAreNeitherJudgedNorPaired) {
  int pairs = 0, too_few = 0, judged_prompts = 0;
  for (int64_t run_seed = 1; run_seed <= 8; ++run_seed) {
    ctx_.run_seed = run_seed;
    // About a third of the candidates (the requests are the bare user messages "Add: ...").
    CuttingModel model([](const std::string& text, uint64_t seed) { return text.rfind("Add:", 0) == 0 && seed % 3 == 0; });
    auto result = RunGenerateShard(Shard(3), ctx_, model);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_GT(model.truncated, 0);
    for (const auto& r : result->results()) {
      int answers = 0;
      std::set<std::string> answer_texts;
      for (const auto& c : r.candidates()) {
        if (c.finish_reason() == "length") continue;
        ++answers;
        answer_texts.insert(c.text());
      }
      for (int c = 0; c < r.candidates_size(); ++c) {
        // A fragment has no score of its own (it shares its text's mean when an answer has its text).
        if (r.candidates(c).finish_reason() == "length" && !answer_texts.count(r.candidates(c).text())) {
          EXPECT_LT(r.mean_scores(c), config_.judge.min_score);
        }
      }
      const int truth = 3 * static_cast<int>(r.prompt_id() - 100);
      for (const auto& j : r.judgements()) {
        const v1::Candidate& judged = r.candidates(j.candidate_index());
        EXPECT_NE(judged.finish_reason(), "length") << "a fragment was judged";
        // Each judgement is of its own candidate (only some candidates are judged).
        if (!j.unparsable()) {
          EXPECT_EQ(j.score(), std::stoi(judged.text()) == truth ? 5 : 1);
        }
      }
      if (answers < 2) {
        ++too_few;
        EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_TOO_FEW_ANSWERS);
        EXPECT_EQ(r.judgements_size(), 0);  // nothing to rank: no judge calls spent
        continue;
      }
      ++judged_prompts;
      EXPECT_EQ(r.judgements_size(), 3 * answers);
      if (!r.has_pair()) continue;
      ++pairs;
      EXPECT_EQ(r.pair().chosen(), std::to_string(truth));
      EXPECT_NE(r.candidates(r.pair().chosen_index()).finish_reason(), "length");
      EXPECT_NE(r.candidates(r.pair().rejected_index()).finish_reason(), "length");
    }
  }
  // Both cases occurred over the seeds.
  EXPECT_GT(too_few, 0);
  EXPECT_GT(judged_prompts, 0);
  EXPECT_GT(pairs, 0);
}

// ScriptedModel with a context counted in characters: a prompt longer than `generate_limit` gets
// nothing ("context"); a response whose prompt + text exceed `score_limit` does not fit.
class ShortContextModel : public ScriptedModel {
 public:
  ShortContextModel(size_t generate_limit, size_t score_limit)
      : generate_limit_(generate_limit), score_limit_(score_limit) {}
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override {
    std::vector<std::string> fitting;
    std::vector<uint64_t> fitting_seeds;
    auto too_long = [&](const std::string& text) { return Format(text, format).size() > generate_limit_; };
    for (size_t i = 0; i < texts.size(); ++i) {
      if (too_long(texts[i])) continue;
      fitting.push_back(texts[i]);
      fitting_seeds.push_back(seeds[i]);
    }
    auto generated = ScriptedModel::Generate(fitting, format, sampling, fitting_seeds);
    if (!generated.ok()) return generated.status();
    std::vector<GeneratedText> out;
    for (size_t i = 0, k = 0; i < texts.size(); ++i) {
      out.push_back(too_long(texts[i]) ? GeneratedText{"", 0, "context"} : (*generated)[k++]);
    }
    return out;
  }
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string& user_message, const std::vector<std::string>& responses) override {
    auto scored = ScriptedModel::ScoreResponses(user_message, responses);
    if (!scored.ok()) return scored.status();
    const std::string prompt = Format(user_message, PromptFormat::kChat);
    for (size_t i = 0; i < responses.size(); ++i) {
      if (prompt.size() + responses[i].size() > score_limit_) (*scored)[i] = {0.0, 9, false};
    }
    return scored;
  }

 private:
  size_t generate_limit_, score_limit_;
};

// What does not fit the model's context is recorded and dropped, never an error: the text is the
// model's own, so an error would repeat on every retry and stop the run for good.
TEST_F(ShardWorkTest, WhatDoesNotFitTheContextIsDroppedNotAnError) {
  // Chat prompts are "<u>Add: i + 2i</u>" (16-17 characters), judge prompts "<u>T:Add: ...|A:n</u>" (22+).
  {  // the prompt itself does not fit: its candidates have no text, nothing is judged
    ShortContextModel model(10, 1000);
    auto result = RunGenerateShard(Shard(3), ctx_, model);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ(result->results_size(), 6);
    for (const auto& r : result->results()) {
      EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_TOO_LONG);
      ASSERT_EQ(r.candidates_size(), 4);
      for (const auto& c : r.candidates()) EXPECT_EQ(c.finish_reason(), "context");
      EXPECT_EQ(r.judgements_size(), 0);
    }
  }
  {  // the judge prompts do not fit: every judgement is unparsable and says why
    ShortContextModel model(20, 1000);
    auto result = RunGenerateShard(Shard(3), ctx_, model);
    ASSERT_TRUE(result.ok()) << result.status();
    for (const auto& r : result->results()) {
      EXPECT_EQ(r.drop_reason(), v1::DROP_REASON_UNPARSABLE);
      ASSERT_EQ(r.judgements_size(), 12);
      for (const auto& j : r.judgements()) {
        EXPECT_TRUE(j.unparsable());
        EXPECT_EQ(j.finish_reason(), "context");
      }
    }
  }
  {  // chosen or rejected does not fit after the prompt (for scoring and training): TOO_LONG
    ScriptedModel unlimited;
    auto reference = RunGenerateShard(Shard(3), ctx_, unlimited);
    ShortContextModel model(1000, 19);  // only "<u>Add: 5 + 10</u>" (18) + its answers (15, 16) is over
    auto result = RunGenerateShard(Shard(3), ctx_, model);
    ASSERT_TRUE(reference.ok() && result.ok()) << result.status();
    ASSERT_TRUE(reference->results(5).has_pair());
    EXPECT_EQ(result->results(5).drop_reason(), v1::DROP_REASON_TOO_LONG);
    for (int p = 0; p < 5; ++p) {  // the others as without a limit
      EXPECT_EQ(result->results(p).SerializeAsString(), reference->results(p).SerializeAsString()) << p;
    }
  }
}

TEST_F(ShardWorkTest, PromptsShardParsesNewPromptsAndStopsAtMarker) {
  ScriptedModel model;
  v1::PromptsShard shard;
  shard.set_num_prompts(5);
  shard.set_seed(11);
  auto result = RunPromptsShard(shard, ctx_, model);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->prompts_size(), 5);
  for (const auto& p : result->prompts()) EXPECT_TRUE(std::regex_match(p, std::regex(R"(Add: \d \+ 1)"))) << p;
  ASSERT_FALSE(model.last_stop.empty());
  EXPECT_EQ(model.last_stop.back(), SelfInstructStop());
  std::vector<std::string> empty;
  ctx_.ift_prompts = &empty;
  EXPECT_EQ(RunPromptsShard(shard, ctx_, model).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A model whose reference log-probability of one answer is NaN (numerically broken): the pair is
// dropped with its reason instead of being submitted, which the coordinator would refuse, on every
// seeded retry.
class NanScoringModel : public ScriptedModel {
 public:
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string& user_message, const std::vector<std::string>& responses) override {
    auto scored = ScriptedModel::ScoreResponses(user_message, responses);
    if (!scored.ok()) return scored.status();
    for (size_t i = 0; i < responses.size(); ++i) {
      if (responses[i] == "9") (*scored)[i].logprob = std::nan("");
    }
    return scored;
  }
};

TEST_F(ShardWorkTest, NonFiniteReferenceLogprobsDropThePair) {
  ScriptedModel plain;
  NanScoringModel nan_model;
  auto reference = RunGenerateShard(Shard(3), ctx_, plain);
  auto result = RunGenerateShard(Shard(3), ctx_, nan_model);
  ASSERT_TRUE(reference.ok() && result.ok()) << result.status();
  ASSERT_TRUE(reference->results(3).has_pair());  // "Add: 3 + 6": chosen "9"
  ASSERT_EQ(reference->results(3).pair().chosen(), "9");
  EXPECT_EQ(result->results(3).drop_reason(), v1::DROP_REASON_NOT_FINITE);
  for (int p : {0, 1, 2, 4, 5}) {
    EXPECT_EQ(result->results(p).SerializeAsString(), reference->results(p).SerializeAsString()) << p;
  }
}

// Self-instruct outputs cut off by max_new_tokens (no end marker) are unfinished tasks: dropped.
TEST_F(ShardWorkTest, PromptsShardDropsOutputsCutOffByLength) {
  CuttingModel model([](const std::string&, uint64_t seed) { return seed % 2 == 1; });
  v1::PromptsShard shard;
  shard.set_num_prompts(8);
  shard.set_seed(11);
  auto result = RunPromptsShard(shard, ctx_, model);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_GT(model.truncated, 0);
  ASSERT_LT(model.truncated, 8);
  EXPECT_EQ(result->prompts_size(), 8 - model.truncated);
}

}  // namespace
}  // namespace srlm
