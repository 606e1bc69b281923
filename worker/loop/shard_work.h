// One leased shard of work, start to end, against the current model M_t:
//   PROMPTS:  few-shot self-instruct prompts -> sample -> parse new prompts
//   GENERATE: for each prompt: N candidates -> k judgements each -> mean scores -> pair ->
//             reference log-probabilities of chosen and rejected under M_t.
// Every random draw is seeded reproducibly (self-instruct: the shard's seed and the item's position;
// candidates and judgements: the run seed, the iteration and the prompt's text), so a retried shard
// (another worker, after a crash) produces the same result. Not thread-safe (uses one LoopModel).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "srlm/v1/coordinator.pb.h"
#include "common/judge.h"
#include "worker/loop/loop_model.h"

namespace srlm {

struct ShardContext {
  const RunConfig* config = nullptr;
  const std::vector<std::string>* ift_prompts = nullptr;  // the pool of few-shot examples
  const JudgeTemplate* judge_template = nullptr;
  const JudgeScoreParser* score_parser = nullptr;
  // Candidates and judgements are seeded by (run_seed, iteration, prompt text), not by the shard:
  // the pool's order (hence which shard holds a prompt) can differ between runs that submitted in
  // another order, and a prompt must still get the same samples.
  uint64_t run_seed = 0;
  int64_t iteration = 0;
};

absl::StatusOr<v1::PromptsResult> RunPromptsShard(const v1::PromptsShard& shard,
                                                  const ShardContext& context, LoopModel& model);

absl::StatusOr<v1::GenerateResult> RunGenerateShard(const v1::GenerateShard& shard,
                                                    const ShardContext& context, LoopModel& model);

}  // namespace srlm
