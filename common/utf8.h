// UTF-8 helpers for the tokenizers and the configuration reader: validation with a position in the
// error, code point iteration, encoding, and lossy repair (invalid sequences -> U+FFFD, as Rust's
// String::from_utf8_lossy).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace srlm::utf8 {

// The byte offset of the first invalid sequence, or std::string_view::npos when `text` is valid.
size_t FirstInvalidOffset(std::string_view text);

// OK, or InvalidArgument naming the byte offset of the first invalid sequence.
absl::Status Validate(std::string_view text);

// Decodes the code point at text[pos] (text must be valid UTF-8); returns its byte length.
int DecodeAt(std::string_view text, size_t pos, char32_t* cp);

void Append(char32_t cp, std::string* out);

// Replaces each maximal invalid subsequence with U+FFFD.
std::string RepairLossy(std::string_view bytes);

}  // namespace srlm::utf8
