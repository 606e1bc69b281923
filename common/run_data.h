// The run's data files, read by one rule per file for every process that reads them: the
// coordinator at Open (its pool filter keeps their prompts out of the pool) and each worker at
// registration (few-shot examples, held-out evaluation). A file one of them accepts the other never
// refuses later. Errors as ReadJsonlStrings (common/jsonl.h) gives them, naming key, file and line.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

// data.ift's prompts, in file order: every line needs a string `prompt` that is not blank.
absl::StatusOr<std::vector<std::string>> ReadIftPrompts(const std::string& path);

// data.eval's (prompt, answer) rows, in file order: both strings, the answer not blank (an empty
// answer would match an empty output, say a prompt with no room in the context).
absl::StatusOr<std::vector<std::vector<std::string>>> ReadEvalSet(const std::string& path);

// The (prompt, response) rows of a file SFT trains on at iteration 0 (data.ift, data.eft; `key` names
// it in errors): both strings, the response not blank. The loop's data is text (the coordinator
// filters and the judge parses text); token ids are for the offline sft and dpo commands.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadSftTexts(const std::string& path, const std::string& key);

}  // namespace srlm
