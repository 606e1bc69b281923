// JSON Lines files: the one reader behind every JSONL input (generate/logprobs inputs, sft/dpo data,
// data.ift and data.eval, read by the worker loop and by the coordinator with the same rules) and
// the writer of the worker's JSONL outputs (srlmctl export-pairs streams its own). A line is one JSON
// object; blank lines are skipped; errors name the file and the line.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace srlm {

// Lines nested deeper than this (arrays and objects) are refused: writing such a value back would
// recurse once per level.
inline constexpr int kMaxJsonlDepth = 64;

// Calls visit(line_number, line) for every non-blank line of `path` in order, where `line` is the
// line's JSON object or why it is not one ("not a JSON object: invalid JSON at column 14: <the
// parser's reason>" (common/json_text.h), "not a JSON object: the line holds an array", "nested
// deeper than 64 levels of arrays and objects"); line numbers count from 1, blank lines included. Stops at, and returns, the
// first error `visit` returns. Errors of the file itself name `path` and the OS's reason: missing or
// unreadable (NotFound, PermissionDenied, ...), a folder (InvalidArgument), a read that fails.
absl::Status ForEachJsonlLine(const std::string& path,
                              const std::function<absl::Status(int64_t line_number,
                                                               absl::StatusOr<nlohmann::json> line)>& visit);

// Every non-blank line of `path` as a JSON object. The first line that is not one is an error
// "<path>:<line>: <why>"; a file with no lines is an error "no lines in <path>".
absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path);

// The string fields `keys` of every non-blank line of the JSONL file `path`, one row per line with the
// fields in the order of `keys`; the fields named in `not_blank` must hold more than white space.
// `key` names the file in errors (a data.* key): "<key> is not set in the run configuration" for an
// empty path, "<key>: <path>:<line>: no string '<name>'" (or "'<name>' is empty", "not a JSON
// object"), and "<key>: " before ForEachJsonlLine's errors of the file itself.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadJsonlStrings(const std::string& path, const std::string& key,
                                                                       const std::vector<std::string>& keys,
                                                                       const std::vector<std::string>& not_blank = {});

// Writes the lines through WriteFileAtomically (common/atomic_file.h): on any failure an existing
// `path` is left as it was; a symbolic link keeps pointing at its (replaced) target; /dev/stdout is
// written directly. Invalid UTF-8 in strings is written as U+FFFD.
absl::Status WriteJsonl(const std::string& path, const std::vector<nlohmann::json>& lines);

}  // namespace srlm
