// Implementation of common/score_pattern.h.
#include "common/score_pattern.h"

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace srlm {

absl::StatusOr<std::shared_ptr<const re2::RE2>> CompileScorePattern(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);  // the error goes into the status instead of stderr
  auto regex = std::make_shared<const RE2>(pattern, options);
  if (!regex->ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "judge.score_pattern '", pattern, "' is not a valid RE2 regex: ", regex->error(),
        " (RE2 syntax: no backreferences such as \\1, no lookahead or lookbehind)"));
  }
  if (regex->NumberOfCapturingGroups() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("judge.score_pattern '", pattern, "' has no capture group for the score"));
  }
  return regex;
}

}  // namespace srlm
