// Pre-tokenizer of Hugging Face byte-level BPE tokenizers: splits text into words the way the
// tokenizer.json regexes of GPT-2, Llama 3 and Qwen2 do, with a hand-written scanner over code points
// (no std::regex). Only the known patterns are accepted; others give Unimplemented.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

// The split regexes the scanner implements.
enum class SplitRegexKind {
  kGpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,  // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
};

struct SplitRegex {
  SplitRegexKind kind = SplitRegexKind::kGpt2;
  int max_digits = 0;  // kLlama3: K in \p{N}{1,K}; 1 for Qwen2's \p{N}; 0 = unbounded
};

// Recognises one of the supported regex strings exactly as tokenizer.json writes them.
absl::StatusOr<SplitRegex> ParseSplitRegex(std::string_view pattern);
std::string GptTwoSplitPattern();

// One step of a pre-tokenizer pipeline (the pre_tokenizer entries of tokenizer.json).
struct PreTokenizerStep {
  enum class Type { kSplit, kDigits, kByteLevel } type = Type::kSplit;
  SplitRegex regex;               // kSplit, and kByteLevel when use_regex
  bool individual_digits = false; // kDigits
  bool add_prefix_space = false;  // kByteLevel
  bool use_regex = true;          // kByteLevel
};

// Splits `text` (valid UTF-8) into words, appending them to `words` in order; the words concatenate to
// `text` (plus a leading space per piece when a ByteLevel step adds a prefix space).
void PreTokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text, std::vector<std::string>* words);

// The regex split alone (one step): appends the matches of `regex` in `text`.
void SplitWithRegex(const SplitRegex& regex, std::string_view text, std::vector<std::string>* words);

}  // namespace srlm
