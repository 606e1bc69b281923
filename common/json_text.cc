// Implementation of common/json_text.h.
#include "common/json_text.h"

#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace srlm {
namespace {

// The parser's excerpt as valid UTF-8, its last 40 bytes at most (where the error is).
std::string Excerpt(std::string_view token) {
  constexpr size_t kMax = 40;
  if (token.size() <= kMax) return utf8::RepairLossy(token);
  return absl::StrCat("...", utf8::RepairLossy(token.substr(token.size() - kMax)));
}

// nlohmann's parse_error text, "[json.exception.parse_error.101] parse error at line L, column C:
// syntax error while parsing value - <reason>[; last read: '<token>'][; expected <token kind>]", as
// "invalid JSON at line L, column C: <the rest>" with the token made printable.
std::string Reason(const std::string& what, bool one_line) {
  std::string text = what;
  if (const size_t at = text.find("parse error at "); at != std::string::npos) {
    text = text.substr(at + 15);
    if (one_line && text.rfind("line 1, ", 0) == 0) text = text.substr(8);
    text = "invalid JSON at " + text;
  } else {
    if (text.rfind("[json.exception.", 0) == 0 && text.find("] ") != std::string::npos) text = text.substr(text.find("] ") + 2);
    text = "invalid JSON: " + text;
  }
  const std::string last_read = "; last read: '";
  const size_t token_at = text.find(last_read);
  if (token_at == std::string::npos) return utf8::RepairLossy(text);
  const size_t begin = token_at + last_read.size();
  size_t end = text.rfind("'; expected ");
  if (end == std::string::npos || end < begin) end = text.size() - 1;  // the closing quote
  if (end < begin || text[end] != '\'') return utf8::RepairLossy(text);
  return absl::StrCat(text.substr(0, begin), Excerpt(std::string_view(text).substr(begin, end - begin)),
                      text.substr(end));
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonText(std::string_view text, bool one_line) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(Reason(e.what(), one_line));
  }
}

std::string JsonKindName(const nlohmann::json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  if (value.is_string()) return "a string";
  if (value.is_number()) return "a number";
  if (value.is_boolean()) return "true or false";
  return "null";
}

}  // namespace srlm
