// Implementation of common/judge.h.
#include "common/judge.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/score_pattern.h"
#include "re2/re2.h"

namespace srlm {

const std::string& BuiltinJudgeTemplate() {
  static const std::string* const kTemplate = new std::string(
      "Read the user's request and the candidate response below, then grade the response with an "
      "additive five-point scale. Start from zero and add points as follows:\n"
      "- 1 point if the response is on topic and offers something useful about the request, even "
      "if it is partial or carries unrelated material.\n"
      "- 1 more point if it deals with a large part of the request without fully settling it.\n"
      "- 1 more point if it answers the core of the request in a useful way, even if it is "
      "incomplete or does not read like an assistant's answer.\n"
      "- 1 more point if it is written as an assistant's answer that addresses the request "
      "directly and completely, is well organised and helpful, even if it could be tighter.\n"
      "- 1 more point if it fits the request precisely, without padding, and shows expert, "
      "clear and insightful knowledge.\n"
      "\n"
      "Request: {prompt}\n"
      "<response>{response}</response>\n"
      "\n"
      "Give a short justification of the total (at most 100 words). Then write the total on the "
      "last line exactly as: \"Score: <points>\"\n");
  return *kTemplate;
}

absl::StatusOr<JudgeTemplate> JudgeTemplate::FromText(std::string text) {
  if (text.find("{prompt}") == std::string::npos || text.find("{response}") == std::string::npos) {
    return absl::InvalidArgumentError(
        "judge template must contain both {prompt} and {response} placeholders");
  }
  return JudgeTemplate(std::move(text));
}

absl::StatusOr<JudgeTemplate> JudgeTemplate::FromFile(const std::string& path) {
  if (path.empty()) return FromText(BuiltinJudgeTemplate());
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("judge template file not readable: ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto parsed = FromText(buffer.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.status().message()));
  }
  return parsed;
}

std::string JudgeTemplate::Render(const std::string& prompt, const std::string& response) const {
  static const std::string kPrompt = "{prompt}";
  static const std::string kResponse = "{response}";
  std::string out;
  out.reserve(text_.size() + prompt.size() + response.size());
  size_t i = 0;
  while (i < text_.size()) {
    if (text_.compare(i, kPrompt.size(), kPrompt) == 0) {
      out += prompt;
      i += kPrompt.size();
    } else if (text_.compare(i, kResponse.size(), kResponse) == 0) {
      out += response;
      i += kResponse.size();
    } else {
      out += text_[i++];
    }
  }
  return out;
}

const char* JudgeParseFailureName(JudgeParseFailure failure) {
  switch (failure) {
    case JudgeParseFailure::kNone: return "none";
    case JudgeParseFailure::kNoMatch: return "no_match";
    case JudgeParseFailure::kNotANumber: return "not_a_number";
    case JudgeParseFailure::kOutOfRange: return "out_of_range";
    case JudgeParseFailure::kCutOff: return "cut_off";
  }
  return "unknown";
}

absl::StatusOr<JudgeScoreParser> JudgeScoreParser::Create(const std::string& pattern,
                                                          double min_score, double max_score) {
  if (!(min_score < max_score)) {
    return absl::InvalidArgumentError("judge score range: min_score must be below max_score");
  }
  absl::StatusOr<std::shared_ptr<const RE2>> regex = CompileScorePattern(pattern);
  if (!regex.ok()) return regex.status();
  return JudgeScoreParser(*std::move(regex), min_score, max_score);
}

JudgeScore JudgeScoreParser::Parse(const std::string& judgement) const {
  JudgeScore result;
  // Every match, left to right, as std::regex_iterator did; the last one's group 1 counts. After an
  // empty match the search moves on one byte so that it always advances. RE2::Match with a start
  // position keeps the whole text as context: ^ and \b see what precedes the start.
  re2::StringPiece text(judgement);
  re2::StringPiece groups[2];
  std::string last;
  bool matched = false;
  size_t pos = 0;
  while (pos <= text.size() &&
         regex_->Match(text, pos, text.size(), RE2::UNANCHORED, groups, 2)) {
    matched = true;
    last.assign(groups[1].data() ? groups[1].data() : "", groups[1].size());
    const size_t end = static_cast<size_t>(groups[0].data() - text.data()) + groups[0].size();
    pos = groups[0].empty() ? end + 1 : end;
  }
  if (!matched) {
    result.failure = JudgeParseFailure::kNoMatch;
    return result;
  }
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(last.c_str(), &end);
  if (last.empty() || end != last.c_str() + last.size() || errno != 0 || !std::isfinite(value)) {
    result.failure = JudgeParseFailure::kNotANumber;
    return result;
  }
  if (value < min_score_ || value > max_score_) {
    result.failure = JudgeParseFailure::kOutOfRange;
    return result;
  }
  result.score = value;
  return result;
}

}  // namespace srlm
