// Implementation of coordinator/seen_prompts.h.
#include "coordinator/seen_prompts.h"

#include "absl/strings/str_cat.h"
#include "common/jsonl.h"
#include "common/status_macros.h"

namespace srlm::coordinator {

absl::StatusOr<std::vector<std::string>> ReadSeenPrompts(const DataConfig& data) {
  std::vector<std::string> prompts;
  // The worker's rules (worker_loop.cc, Worker::Register): a file a worker would refuse at
  // registration is refused here, before the run is stored.
  if (!data.ift.empty()) {
    SRLM_ASSIGN_OR_RETURN(std::vector<std::vector<std::string>> ift, ReadJsonlStrings(data.ift, "data.ift", {"prompt"}, {"prompt"}));
    // Self-instruct draws its few-shot examples from them: a run without any cannot fill a pool.
    if (ift.empty()) return absl::InvalidArgumentError(absl::StrCat("data.ift: ", data.ift, " holds no prompts"));
    for (std::vector<std::string>& row : ift) prompts.push_back(std::move(row[0]));
  }
  if (!data.eval.empty()) {
    SRLM_ASSIGN_OR_RETURN(std::vector<std::vector<std::string>> eval,
                          ReadJsonlStrings(data.eval, "data.eval", {"prompt", "answer"}, {"answer"}));
    for (std::vector<std::string>& row : eval) prompts.push_back(std::move(row[0]));
  }
  return prompts;
}

}  // namespace srlm::coordinator
