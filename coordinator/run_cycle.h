// Rules of the run's iteration cycle that more than one part of RunCoordinator applies: which
// phase trains in an iteration, and how many PROMPTS shards a phase may use. Pure.
#pragma once

#include <cstdint>

#include "common/run_config.h"
#include "srlm/v1/coordinator.pb.h"

namespace srlm::coordinator {

constexpr int64_t kPromptShardBudget = 4;  // PROMPTS gives up after 4x the shards that suffice

// SFT at iteration 0 when run.sft is set; TRAIN otherwise.
inline v1::Phase TrainingPhaseOf(int64_t iteration, const RunConfig& config) {
  return iteration == 0 && config.run.sft ? v1::PHASE_SFT : v1::PHASE_TRAIN;
}

}  // namespace srlm::coordinator
