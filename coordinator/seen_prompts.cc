// Implementation of coordinator/seen_prompts.h.
#include "coordinator/seen_prompts.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/jsonl.h"
#include "common/status_macros.h"

namespace srlm::coordinator {
namespace {

// Appends the string `prompt` of every line of `path` to `prompts`; errors start with `key` (a
// data.* key).
absl::Status AppendPrompts(const std::string& key, const std::string& path, std::vector<std::string>* prompts) {
  const absl::Status read =
      ForEachJsonlLine(path, [&](int64_t number, absl::StatusOr<nlohmann::json> line) -> absl::Status {
        const std::string where = absl::StrCat(path, ":", number, ": ");
        if (!line.ok()) return absl::InvalidArgumentError(absl::StrCat(where, line.status().message()));
        const auto prompt = line->find("prompt");
        if (prompt == line->end() || !prompt->is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, "no string 'prompt'"));
        }
        prompts->push_back(prompt->get<std::string>());
        return absl::OkStatus();
      });
  if (!read.ok()) return absl::Status(read.code(), absl::StrCat(key, ": ", read.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadSeenPrompts(const DataConfig& data) {
  std::vector<std::string> prompts;
  if (!data.ift.empty()) SRLM_RETURN_IF_ERROR(AppendPrompts("data.ift", data.ift, &prompts));
  if (!data.eval.empty()) SRLM_RETURN_IF_ERROR(AppendPrompts("data.eval", data.eval, &prompts));
  return prompts;
}

}  // namespace srlm::coordinator
