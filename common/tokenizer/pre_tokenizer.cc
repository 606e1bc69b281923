// Scanner equivalents of the GPT-2 / Llama 3 / Qwen2 split regexes. Each function below mirrors one
// alternative of the regex; alternatives are tried in order, as a backtracking regex engine does.
#include "common/tokenizer/pre_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode_tables.h"
#include "common/utf8.h"

namespace srlm {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Prefix = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|)";
constexpr std::string_view kLlama3Suffix = R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum CharClass : unsigned char { kLetter, kNumber, kSpace, kOther };

// The code points of a piece of text with their classes and byte offsets.
struct CodePoints {
  std::vector<char32_t> cp;
  std::vector<CharClass> cls;
  std::vector<size_t> offset;  // size n + 1

  explicit CodePoints(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
      char32_t c;
      offset.push_back(pos);
      pos += utf8::DecodeAt(text, pos, &c);
      cp.push_back(c);
      cls.push_back(IsUnicodeLetter(c) ? kLetter : IsUnicodeNumber(c) ? kNumber
                    : IsUnicodeWhitespace(c) ? kSpace : kOther);
    }
    offset.push_back(pos);
  }
  size_t size() const { return cp.size(); }
};

// Case folding for the contraction letters under (?i): ASCII, plus U+017F LATIN SMALL LETTER LONG S,
// which Unicode folds to 's' (Oniguruma matches "'ſ" as a contraction).
char32_t FoldCase(char32_t c) {
  if (c == 0x17F) return 's';
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive. Returns the match length or 0.
size_t MatchContraction(const CodePoints& t, size_t i, bool ignore_case) {
  const size_t n = t.size();
  if (t.cp[i] != '\'' || i + 1 >= n) return 0;
  auto at = [&](size_t k) { return ignore_case ? FoldCase(t.cp[k]) : t.cp[k]; };
  const char32_t c1 = at(i + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (i + 2 >= n) return 0;
  const char32_t c2 = at(i + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

size_t RunEnd(const CodePoints& t, size_t j, CharClass cls) {
  while (j < t.size() && t.cls[j] == cls) ++j;
  return j;
}

// ` ?X+` where X is a class: returns the end of the match or `i` when none.
size_t MatchOptionalSpaceThenRun(const CodePoints& t, size_t i, CharClass cls) {
  size_t j = i;
  if (t.cp[j] == ' ' && j + 1 < t.size() && t.cls[j + 1] == cls) ++j;
  if (t.cls[j] != cls) return i;
  return RunEnd(t, j, cls);
}

// \s+(?!\S)|\s+ at a white-space position: the run, less its last character when a non-space follows
// and the run is longer than one.
size_t MatchWhitespace(const CodePoints& t, size_t i) {
  const size_t e = RunEnd(t, i, kSpace);
  if (e == t.size() || e - i == 1) return e;
  return e - 1;
}

bool IsNewline(char32_t c) { return c == '\r' || c == '\n'; }

size_t NextGpt2(const CodePoints& t, size_t i) {
  if (size_t len = MatchContraction(t, i, /*ignore_case=*/false)) return i + len;
  for (CharClass cls : {kLetter, kNumber, kOther}) {
    const size_t e = MatchOptionalSpaceThenRun(t, i, cls);
    if (e != i) return e;
  }
  return MatchWhitespace(t, i);
}

size_t NextLlama3(const CodePoints& t, size_t i, int max_digits) {
  const size_t n = t.size();
  if (size_t len = MatchContraction(t, i, /*ignore_case=*/true)) return i + len;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (t.cls[i] != kLetter && t.cls[i] != kNumber && !IsNewline(t.cp[i]) && i + 1 < n && t.cls[i + 1] == kLetter) {
    return RunEnd(t, i + 1, kLetter);
  }
  if (t.cls[i] == kLetter) return RunEnd(t, i, kLetter);
  // \p{N}{1,K}
  if (t.cls[i] == kNumber) {
    size_t j = i;
    while (j < n && t.cls[j] == kNumber && (max_digits == 0 || j - i < static_cast<size_t>(max_digits))) ++j;
    return j;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t e = MatchOptionalSpaceThenRun(t, i, kOther);
  if (e != i) {
    while (e < n && IsNewline(t.cp[e])) ++e;
    return e;
  }
  // \s*[\r\n]+ : up to and including the last newline of the white-space run.
  const size_t run_end = RunEnd(t, i, kSpace);
  for (size_t k = run_end; k > i; --k) {
    if (IsNewline(t.cp[k - 1])) return k;
  }
  return MatchWhitespace(t, i);
}

void SplitDigits(std::string_view text, bool individual, std::vector<std::string>* words) {
  CodePoints t(text);
  size_t i = 0;
  while (i < t.size()) {
    size_t e = i + 1;
    const bool digit = t.cls[i] == kNumber;
    if (!digit || !individual) {
      while (e < t.size() && (t.cls[e] == kNumber) == digit) ++e;
    }
    words->emplace_back(text.substr(t.offset[i], t.offset[e] - t.offset[i]));
    i = e;
  }
}

}  // namespace

std::string GptTwoSplitPattern() { return std::string(kGpt2Pattern); }

absl::StatusOr<SplitRegex> ParseSplitRegex(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return SplitRegex{SplitRegexKind::kGpt2, 0};
  if (pattern.size() > kLlama3Prefix.size() + kLlama3Suffix.size() &&
      pattern.substr(0, kLlama3Prefix.size()) == kLlama3Prefix &&
      pattern.substr(pattern.size() - kLlama3Suffix.size()) == kLlama3Suffix) {
    const std::string_view digits =
        pattern.substr(kLlama3Prefix.size(), pattern.size() - kLlama3Prefix.size() - kLlama3Suffix.size());
    if (digits == R"(\p{N})") return SplitRegex{SplitRegexKind::kLlama3, 1};
    if (digits == R"(\p{N}+)") return SplitRegex{SplitRegexKind::kLlama3, 0};
    for (int k = 1; k <= 9; ++k) {
      if (digits == std::string(R"(\p{N}{1,)") + std::to_string(k) + "}") return SplitRegex{SplitRegexKind::kLlama3, k};
    }
  }
  return absl::UnimplementedError(absl::StrCat(
      "pre-tokenizer regex is not one of the supported GPT-2 / Llama 3 / Qwen2 patterns: ",
      absl::string_view(pattern.data(), pattern.size())));
}

void SplitWithRegex(const SplitRegex& regex, std::string_view text, std::vector<std::string>* words) {
  CodePoints t(text);
  size_t i = 0;
  while (i < t.size()) {
    const size_t e = regex.kind == SplitRegexKind::kGpt2 ? NextGpt2(t, i) : NextLlama3(t, i, regex.max_digits);
    words->emplace_back(text.substr(t.offset[i], t.offset[e] - t.offset[i]));
    i = e;
  }
}

void PreTokenize(const std::vector<PreTokenizerStep>& steps, std::string_view text, std::vector<std::string>* words) {
  std::vector<std::string> current{std::string(text)};
  std::vector<std::string> next;
  for (const PreTokenizerStep& step : steps) {
    next.clear();
    for (std::string& piece : current) {
      if (piece.empty()) continue;
      switch (step.type) {
        case PreTokenizerStep::Type::kSplit:
          SplitWithRegex(step.regex, piece, &next);
          break;
        case PreTokenizerStep::Type::kDigits:
          SplitDigits(piece, step.individual_digits, &next);
          break;
        case PreTokenizerStep::Type::kByteLevel:
          if (step.add_prefix_space && (piece.empty() || piece[0] != ' ')) piece.insert(0, " ");
          if (step.use_regex) {
            SplitWithRegex(step.regex, piece, &next);
          } else {
            next.push_back(std::move(piece));
          }
          break;
      }
    }
    current.swap(next);
  }
  for (std::string& w : current) {
    if (!w.empty()) words->push_back(std::move(w));
  }
}

}  // namespace srlm
