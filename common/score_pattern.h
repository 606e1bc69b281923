// The judge's score pattern (judge.score_pattern): an RE2 regex whose first capture group is the
// score. Compiled in one place, so that the coordinator refuses a bad pattern when it checks the run
// configuration (a run it accepted would otherwise fail on every worker, at every relaunch) with the
// message the workers' parser (common/judge.h) gives.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace srlm {

// The compiled pattern, or InvalidArgument naming judge.score_pattern: not valid RE2 syntax (no
// backreferences, no lookaround), or no capture group. A const RE2 may be used from many threads.
absl::StatusOr<std::shared_ptr<const re2::RE2>> CompileScorePattern(const std::string& pattern);

}  // namespace srlm
