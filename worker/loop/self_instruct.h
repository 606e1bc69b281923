// Self-instruct: the few-shot prompt that asks the model for a new task, drawn from the IFT prompts,
// and the parser that cuts one new prompt out of the model's continuation. Pure functions.
//
// The few-shot prompt is raw text (no chat template: the model continues a list):
//   Below are example tasks. Write one new task in the same style.\n\n
//   ### Task\n<shot 1>\n\n### Task\n<shot 2>\n\n ... ### Task\n
// and generation stops at the next "###" (SelfInstructStop()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

// `shots` distinct indices into a pool of `pool_size` prompts, chosen by `seed` (reproducible on
// every platform: a SplitMix64 stream drives a partial Fisher-Yates shuffle). All when shots >= pool.
std::vector<int64_t> SampleShotIndices(int64_t pool_size, int64_t shots, uint64_t seed);

// The shot pool of an IFT file's prompts: each text once (first occurrence, in file order; texts
// equal after trimming surrounding white space are one). A dataset with several responses per
// prompt would otherwise show one task twice in a few-shot prompt and weight the pool towards it.
std::vector<std::string> DistinctShotPrompts(std::vector<std::string> prompts);

std::string BuildSelfInstructPrompt(const std::vector<std::string>& shots);

// The stop string for self-instruct sampling.
const std::string& SelfInstructStop();

// One new prompt from a continuation: the text before the first "###", trimmed of surrounding
// whitespace. INVALID_ARGUMENT when nothing is left, when it repeats either sentence of the header
// (any case: the model echoing the request), or when it is outside [min_chars, max_chars].
// Any "###" ends the task, also one that is not "### Task": a model that goes on with its own
// section ("### Response", "### Answer") has finished the task, which matters more than the rare
// task with a markdown heading of its own (cut there, or dropped when too short).
absl::StatusOr<std::string> ParseGeneratedPrompt(const std::string& continuation, int64_t min_chars,
                                                 int64_t max_chars);

// A 64-bit seed derived from a run seed and a list of integers (iteration, shard, item...), so each
// unit of work samples the same way whichever worker does it and however often it is retried.
uint64_t DeriveSeed(uint64_t run_seed, const std::vector<int64_t>& parts);

}  // namespace srlm
