// Implementation of worker/loop/shard_work.h.
#include "worker/loop/shard_work.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/loop/pair_builder.h"
#include "worker/loop/self_instruct.h"

namespace srlm {
namespace {

// Seed streams of one shard: the first part names the use, so streams never collide.
enum SeedUse : int64_t { kShots = 1, kPromptSample = 2, kCandidate = 3, kJudge = 4 };

// 64-bit FNV-1a of a prompt's text.
int64_t TextHash(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return static_cast<int64_t>(h);
}

// Ended by max_new_tokens, or by the context before or while writing: unfinished text.
bool CutOff(const GeneratedText& g) { return g.finish_reason == "length" || g.finish_reason == "context"; }

v1::Candidate ToProto(const GeneratedText& g) {
  v1::Candidate c;
  c.set_text(g.text);
  c.set_num_tokens(g.num_tokens);
  c.set_finish_reason(g.finish_reason);
  return c;
}

template <typename T>
absl::Status CheckCount(const std::vector<T>& got, size_t want, const char* what) {
  if (got.size() == want) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("model returned ", got.size(), " ", what, " for ", want,
                                          " requests"));
}

}  // namespace

absl::StatusOr<v1::PromptsResult> RunPromptsShard(const v1::PromptsShard& shard,
                                                  const ShardContext& ctx, LoopModel& model) {
  const RunConfig& config = *ctx.config;
  const std::vector<std::string>& pool = *ctx.ift_prompts;
  if (pool.empty()) return absl::FailedPreconditionError("self-instruct needs IFT prompts as shots");
  std::vector<std::string> requests;
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < shard.num_prompts(); ++i) {
    std::vector<std::string> shots;
    for (int64_t index : SampleShotIndices(static_cast<int64_t>(pool.size()), config.prompts.shots,
                                           DeriveSeed(shard.seed(), {kShots, i}))) {
      shots.push_back(pool[static_cast<size_t>(index)]);
    }
    requests.push_back(BuildSelfInstructPrompt(shots));
    seeds.push_back(DeriveSeed(shard.seed(), {kPromptSample, i}));
  }
  SamplingConfig sampling = config.prompts.sampling;
  sampling.stop.push_back(SelfInstructStop());
  SRLM_ASSIGN_OR_RETURN(std::vector<GeneratedText> outputs,
                        model.Generate(requests, PromptFormat::kRaw, sampling, seeds));
  SRLM_RETURN_IF_ERROR(CheckCount(outputs, requests.size(), "self-instruct"));
  v1::PromptsResult result;
  for (const GeneratedText& out : outputs) {
    if (CutOff(out)) continue;  // an unfinished task, not a prompt
    auto prompt = ParseGeneratedPrompt(out.text, config.prompts.min_chars, config.prompts.max_chars);
    if (prompt.ok()) result.add_prompts(*prompt);  // the coordinator counts what it accepts
  }
  return result;
}

// One prompt: candidates -> judgements -> mean scores -> pair -> reference log-probs.
absl::StatusOr<v1::GenerateResult> RunGenerateShard(const v1::GenerateShard& shard,
                                                    const ShardContext& ctx, LoopModel& model) {
  const RunConfig& config = *ctx.config;
  const int64_t n = config.generate.candidates, k = config.judge.samples;
  v1::GenerateResult result;
  for (int p = 0; p < shard.prompts_size(); ++p) {
    const v1::PoolPrompt& pool_prompt = shard.prompts(p);
    // 1. N candidates. Every request is a user message; the model applies the chat template.
    std::vector<std::string> requests(static_cast<size_t>(n), pool_prompt.text());
    std::vector<uint64_t> seeds;
    const int64_t text_hash = TextHash(pool_prompt.text());
    for (int64_t c = 0; c < n; ++c) {
      seeds.push_back(DeriveSeed(ctx.run_seed, {kCandidate, ctx.iteration, text_hash, c}));
    }
    SRLM_ASSIGN_OR_RETURN(std::vector<GeneratedText> candidates,
                          model.Generate(requests, PromptFormat::kChat, config.generate.sampling, seeds));
    SRLM_RETURN_IF_ERROR(CheckCount(candidates, requests.size(), "candidates"));
    v1::PromptResult* out = result.add_results();
    out->set_prompt_id(pool_prompt.prompt_id());
    for (const GeneratedText& candidate : candidates) *out->add_candidates() = ToProto(candidate);
    // The chat-formatted prompt itself leaves no room in the model's context.
    if (std::all_of(candidates.begin(), candidates.end(),
                    [](const GeneratedText& c) { return c.finish_reason == "context"; })) {
      out->set_drop_reason(v1::DROP_REASON_TOO_LONG);
      continue;
    }

    // 2. k judgements of each answer, all in one batch. Only answers are judged (PairEligible: not
    // empty, not cut off), and none when fewer than two of them leave nothing to rank.
    std::vector<JudgedCandidate> judged;
    for (const GeneratedText& candidate : candidates) {
      judged.push_back(JudgedCandidate{candidate.text, candidate.num_tokens, {}, !CutOff(candidate)});
    }
    std::vector<int64_t> to_judge;
    for (int64_t c = 0; c < n; ++c) {
      if (PairEligible(judged[c])) to_judge.push_back(c);
    }
    if (to_judge.size() < 2) to_judge.clear();
    std::vector<std::string> judge_requests;
    seeds.clear();
    for (int64_t c : to_judge) {
      const std::string judge_prompt = ctx.judge_template->Render(pool_prompt.text(), candidates[c].text);
      for (int64_t j = 0; j < k; ++j) {
        judge_requests.push_back(judge_prompt);
        seeds.push_back(DeriveSeed(ctx.run_seed, {kJudge, ctx.iteration, text_hash, c, j}));
      }
    }
    std::vector<GeneratedText> judgements;
    if (!judge_requests.empty()) {
      SRLM_ASSIGN_OR_RETURN(judgements,
                            model.Generate(judge_requests, PromptFormat::kChat, config.judge.sampling, seeds));
      SRLM_RETURN_IF_ERROR(CheckCount(judgements, judge_requests.size(), "judgements"));
    }

    // 3. Mean scores and the pair. A judgement whose judge prompt did not fit the context has no
    // text, so it is unparsable, and its candidate takes no part.
    for (size_t t = 0; t < to_judge.size(); ++t) {
      const int64_t c = to_judge[t];
      for (int64_t j = 0; j < k; ++j) {
        const GeneratedText& judgement = judgements[t * static_cast<size_t>(k) + static_cast<size_t>(j)];
        const std::string& raw = judgement.text;
        // A judgement cut off by max_new_tokens has no last line: a "Score:" in it may be one its
        // justification mentioned on the way, so it counts as unparsable.
        const JudgeScore score = judgement.finish_reason == "length"
                                     ? JudgeScore{std::nullopt, JudgeParseFailure::kCutOff}
                                     : ctx.score_parser->Parse(raw);
        v1::Judgement* pj = out->add_judgements();
        pj->set_candidate_index(static_cast<int32_t>(c));
        pj->set_raw_text(raw);
        pj->set_finish_reason(judgement.finish_reason);
        pj->set_unparsable(!score.ok());
        pj->set_score(score.ok() ? *score.score : 0.0);
        judged[c].scores.push_back(score);
      }
    }
    PairOptions options;
    options.length_control = config.generate.length_control;
    options.length_band = config.generate.length_band;
    options.require_all_scores = config.judge.require_all_scores;
    PairResult pair = BuildPreferencePair(pool_prompt.text(), judged, options);
    // mean_scores holds one value per candidate; an unscored candidate is written as the minimum
    // score minus one, which no parsed score can be (the proto keeps the list NaN-free).
    for (const auto& mean : pair.mean_scores) {
      out->add_mean_scores(mean ? *mean : config.judge.min_score - 1);
    }
    if (pair.outcome == PairOutcome::kTie) {
      out->set_drop_reason(v1::DROP_REASON_TIE);
      continue;
    }
    if (pair.outcome == PairOutcome::kTooFewAnswers) {
      out->set_drop_reason(v1::DROP_REASON_TOO_FEW_ANSWERS);
      continue;
    }
    if (pair.outcome == PairOutcome::kTooFewScored) {
      out->set_drop_reason(v1::DROP_REASON_UNPARSABLE);
      continue;
    }

    // 4. Reference log-probabilities under M_t (the DPO reference).
    SRLM_ASSIGN_OR_RETURN(std::vector<ScoredResponse> ref,
                          model.ScoreResponses(pool_prompt.text(), {pair.pair->chosen, pair.pair->rejected}));
    SRLM_RETURN_IF_ERROR(CheckCount(ref, 2, "reference log-probabilities"));
    if (!ref[0].fits_context || !ref[1].fits_context) {  // re-tokenized longer than it was sampled
      out->set_drop_reason(v1::DROP_REASON_TOO_LONG);
      continue;
    }
    // The coordinator refuses non-finite log-probabilities, and seeded, the refusal would repeat
    // on every retry: drop the pair here.
    if (!std::isfinite(ref[0].logprob) || !std::isfinite(ref[1].logprob)) {
      SRLM_LOG(WARNING) << "prompt " << pool_prompt.prompt_id() << ": reference log-probabilities "
                        << ref[0].logprob << " and " << ref[1].logprob
                        << " are not all finite (is the model numerically broken?): pair dropped";
      out->set_drop_reason(v1::DROP_REASON_NOT_FINITE);
      continue;
    }
    v1::PreferencePair* pp = out->mutable_pair();
    pp->set_chosen_index(static_cast<int32_t>(pair.pair->chosen_index));
    pp->set_rejected_index(static_cast<int32_t>(pair.pair->rejected_index));
    pp->set_chosen(pair.pair->chosen);
    pp->set_rejected(pair.pair->rejected);
    pp->set_chosen_score(pair.pair->chosen_score);
    pp->set_rejected_score(pair.pair->rejected_score);
    pp->set_ref_chosen_logprob(ref[0].logprob);
    pp->set_ref_rejected_logprob(ref[1].logprob);
    pp->set_chosen_num_tokens(ref[0].num_tokens);
    pp->set_rejected_num_tokens(ref[1].num_tokens);
  }
  return result;
}

}  // namespace srlm
