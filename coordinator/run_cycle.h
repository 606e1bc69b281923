// Rules of the run's iteration cycle that more than one part of RunCoordinator applies: which
// phase trains in an iteration, and how many PROMPTS shards a phase may use. Pure.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/int_math.h"
#include "common/run_config.h"
#include "srlm/v1/coordinator.pb.h"

namespace srlm::coordinator {

constexpr int64_t kPromptShardBudget = 4;  // PROMPTS gives up after 4x the shards that suffice

// prompts.shard_size, at least 1.
inline int64_t PromptShardSize(const RunConfig& config) { return std::max<int64_t>(1, config.prompts.shard_size); }

// The most PROMPTS shards one iteration may use: kPromptShardBudget times those that would suffice
// if every prompt were accepted.
inline int64_t PromptShardLimit(const RunConfig& config) {
  const int64_t shard_size = PromptShardSize(config);
  return kPromptShardBudget * CeilDiv(config.prompts.per_iteration, shard_size);
}

// SFT at iteration 0 when run.sft is set; TRAIN otherwise.
inline v1::Phase TrainingPhaseOf(int64_t iteration, const RunConfig& config) {
  return iteration == 0 && config.run.sft ? v1::PHASE_SFT : v1::PHASE_TRAIN;
}

}  // namespace srlm::coordinator
