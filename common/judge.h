// LLM-as-a-Judge: the judge prompt template and the parser of the score in a judgement.
// The built-in template is an additive five-point rubric ending in a `Score: <points>` line; a template
// file with {prompt} and {response} placeholders replaces it. Both classes are immutable after
// construction and safe to share between threads.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace srlm {

// The built-in judge prompt (our wording of the paper's additive 5-point rubric).
const std::string& BuiltinJudgeTemplate();

class JudgeTemplate {
 public:
  // `text` must hold {prompt} and {response} once or more each; INVALID_ARGUMENT otherwise.
  static absl::StatusOr<JudgeTemplate> FromText(std::string text);
  // Reads `path`; an empty path gives the built-in template.
  static absl::StatusOr<JudgeTemplate> FromFile(const std::string& path);

  // The judge prompt for one (prompt, response). Substitution is one pass: placeholder-like text
  // inside the prompt or the response is copied as is.
  std::string Render(const std::string& prompt, const std::string& response) const;
  const std::string& text() const { return text_; }

 private:
  explicit JudgeTemplate(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// Why a judgement gave no score.
// kCutOff: the judgement ended at max_new_tokens, so it has no last line to read the score from.
enum class JudgeParseFailure { kNone, kNoMatch, kNotANumber, kOutOfRange, kCutOff };
const char* JudgeParseFailureName(JudgeParseFailure failure);

struct JudgeScore {
  std::optional<double> score;  // set when the judgement parsed and lies in [min, max]
  JudgeParseFailure failure = JudgeParseFailure::kNone;
  bool ok() const { return score.has_value(); }
};

class JudgeScoreParser {
 public:
  // `pattern` is an RE2 regex (https://github.com/google/re2/wiki/Syntax) whose first capture group
  // is the score. RE2 matches in linear time without recursion, so a model-written judgement of any
  // length is safe; it has no backreferences or lookaround, and patterns using them are refused.
  static absl::StatusOr<JudgeScoreParser> Create(const std::string& pattern, double min_score,
                                                 double max_score);
  // The score of the LAST match in `judgement` (the rubric asks for the score on the last line;
  // earlier mentions of "Score:" inside the justification do not count).
  JudgeScore Parse(const std::string& judgement) const;

 private:
  JudgeScoreParser(std::shared_ptr<const re2::RE2> regex, double min_score, double max_score)
      : regex_(std::move(regex)), min_score_(min_score), max_score_(max_score) {}
  std::shared_ptr<const re2::RE2> regex_;  // RE2 is not copyable; const RE2 is thread-safe
  double min_score_;
  double max_score_;
};

}  // namespace srlm
