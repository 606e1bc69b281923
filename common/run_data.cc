// Implementation of common/run_data.h.
#include "common/run_data.h"

#include <utility>

#include "common/jsonl.h"
#include "common/status_macros.h"

namespace srlm {

absl::StatusOr<std::vector<std::string>> ReadIftPrompts(const std::string& path) {
  SRLM_ASSIGN_OR_RETURN(std::vector<std::vector<std::string>> rows,
                        ReadJsonlStrings(path, "data.ift", {"prompt"}, {"prompt"}));
  std::vector<std::string> prompts;
  for (std::vector<std::string>& row : rows) prompts.push_back(std::move(row[0]));
  return prompts;
}

absl::StatusOr<std::vector<std::vector<std::string>>> ReadEvalSet(const std::string& path) {
  return ReadJsonlStrings(path, "data.eval", {"prompt", "answer"}, {"answer"});
}

absl::StatusOr<std::vector<std::vector<std::string>>> ReadSftTexts(const std::string& path, const std::string& key) {
  return ReadJsonlStrings(path, key, {"prompt", "response"}, {"response"});
}

}  // namespace srlm
