// The prompts a run holds outside its self-instructed pool: the `prompt` of every line of data.ift
// (the instruction data whose prompts workers show as few-shot examples) and of data.eval (the
// held-out evaluation). The coordinator's prompt filter treats them as seen (indexed once in a
// SeenPromptIndex, seen_prompt_index.h), so that a new prompt repeating one never enters the pool: a
// copied shot adds nothing new, and an evaluation prompt trained on with DPO would contaminate the
// held-out score.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"

namespace srlm::coordinator {

// The prompts of data.ift, then of data.eval, in file order; a key whose path is empty adds none.
// Both files are read with the workers' rules (common/run_data.h): every line of
// data.ift needs a string `prompt` that is not blank (and the file at least one line), every line of
// data.eval a string `prompt` and a string `answer` that is not blank. Errors name the key, the file and, for a bad line, its number: "data.eval:
// <path>:<line>: no string 'answer'" (or "no string 'prompt'", "'answer' is empty", "not a JSON
// object"); a file that cannot be opened keeps the OS's reason.
absl::StatusOr<std::vector<std::string>> ReadSeenPrompts(const DataConfig& data);

}  // namespace srlm::coordinator
