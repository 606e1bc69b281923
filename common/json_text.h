// One JSON text parsed with the parser's reason kept: the JSONL reader (common/jsonl.h) and
// config.json (worker/model/llama_config.h) say why a text is not JSON, and where, instead of only
// that it is not an object. No libtorch.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace srlm {

// Parses `text` as one JSON value. Invalid JSON is InvalidArgument "invalid JSON at line L, column
// C: <nlohmann's reason>" ("at column C" when `one_line`, for a line of a JSONL file), e.g. "invalid
// JSON at column 14: syntax error while parsing value - invalid string: ill-formed UTF-8 byte; last
// read: '"a\xef\xbf\xbd'". The parser's excerpt of what it last read is made valid UTF-8 (U+FFFD for
// invalid bytes) and cut to its last 40 bytes, so the message can be logged and written as JSON.
absl::StatusOr<nlohmann::json> ParseJsonText(std::string_view text, bool one_line = false);

// The kind of a JSON value in words, for messages: "an object", "an array", "a string", "a number",
// "true or false", "null".
std::string JsonKindName(const nlohmann::json& value);

}  // namespace srlm
