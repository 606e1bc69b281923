// Implementation of coordinator/seen_prompts.h.
#include "coordinator/seen_prompts.h"

#include "absl/strings/str_cat.h"
#include "common/run_data.h"
#include "common/status_macros.h"

namespace srlm::coordinator {

absl::StatusOr<std::vector<std::string>> ReadSeenPrompts(const DataConfig& data) {
  std::vector<std::string> prompts;
  // The workers' rules (common/run_data.h): a file a worker would refuse at registration is refused
  // here, before the run is stored.
  if (!data.ift.empty()) {
    SRLM_ASSIGN_OR_RETURN(prompts, ReadIftPrompts(data.ift));
    // Self-instruct draws its few-shot examples from them: a run without any cannot fill a pool.
    if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat("data.ift: ", data.ift, " holds no prompts"));
  }
  if (!data.eval.empty()) {
    SRLM_ASSIGN_OR_RETURN(std::vector<std::vector<std::string>> eval, ReadEvalSet(data.eval));
    for (std::vector<std::string>& row : eval) prompts.push_back(std::move(row[0]));
  }
  return prompts;
}

}  // namespace srlm::coordinator
