// What the coordinator checks of the workers' inputs when it accepts a run configuration (a new run,
// or one replaced with --force-config), so that a mistake fails the start, not every worker minutes
// later, and is not stored as the run's configuration (whose correction would then need
// --force-config): the judge template, SFT's data while SFT is still to come, and the score pattern
// against the judgements of data.eft. The rules are the workers' own (common/judge.h,
// common/run_data.h). The start model's folder is only looked at (StartModelProblem): workers may
// load it from a filesystem the coordinator does not see, such as a copy on each node's local disk.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/run_config.h"

namespace srlm::coordinator {

// OK, or INVALID_ARGUMENT / NOT_FOUND naming the key and the file:
// - judge.template_file (empty: the built-in template) must be readable and hold {prompt} and
//   {response};
// - with `sft_pending` (iteration 0's SFT not yet committed), every line of data.ift and of data.eft
//   (each when set; Open requires data.ift of a new run from srlm-coordinator) needs a string `prompt` and a string `response` that is not blank, and when data.eft
//   has lines, judge.score_pattern must read a score in [judge.min_score, judge.max_score] from at
//   least one of their responses: a judge trained on judgements the parser cannot read gives none
//   it can, and every pair of the run would be dropped.
absl::Status CheckWorkerInputs(const RunConfig& config, bool sft_pending);

// Why `model_path` does not look like a start model (not a folder, no config.json, no weights, no
// tokenizer), or nullopt when it does.
std::optional<std::string> StartModelProblem(const std::string& model_path);

}  // namespace srlm::coordinator
