// Implementation of worker/loop/self_instruct.h.
#include "worker/loop/self_instruct.h"

#include <initializer_list>
#include <numeric>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/split_mix64.h"

namespace srlm {
namespace {

// The header's two sentences, without their full stops: a continuation that repeats either is the
// model echoing the request, not a task.
constexpr char kIntroduction[] = "Below are example tasks";
constexpr char kInstruction[] = "Write one new task in the same style";
constexpr char kMarker[] = "### Task\n";

}  // namespace

std::vector<int64_t> SampleShotIndices(int64_t pool_size, int64_t shots, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(pool_size > 0 ? pool_size : 0));
  std::iota(order.begin(), order.end(), 0);
  const int64_t n = std::min<int64_t>(shots, pool_size);
  uint64_t state = seed;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = i + static_cast<int64_t>(NextSplitMix64(&state) % static_cast<uint64_t>(pool_size - i));
    std::swap(order[i], order[j]);
  }
  order.resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  return order;
}

std::vector<std::string> DistinctShotPrompts(std::vector<std::string> prompts) {
  std::set<std::string> seen;
  std::vector<std::string> distinct;
  for (std::string& prompt : prompts) {
    if (seen.insert(std::string(absl::StripAsciiWhitespace(prompt))).second) distinct.push_back(std::move(prompt));
  }
  return distinct;
}

std::string BuildSelfInstructPrompt(const std::vector<std::string>& shots) {
  std::string out = absl::StrCat(kIntroduction, ". ", kInstruction, ".\n\n");
  for (const std::string& shot : shots) {
    absl::StrAppend(&out, kMarker, absl::StripAsciiWhitespace(shot), "\n\n");
  }
  out += kMarker;
  return out;
}

const std::string& SelfInstructStop() {
  static const std::string* const kStop = new std::string("###");
  return *kStop;
}

absl::StatusOr<std::string> ParseGeneratedPrompt(const std::string& continuation, int64_t min_chars,
                                                 int64_t max_chars) {
  std::string text = continuation.substr(0, continuation.find(SelfInstructStop()));
  text = std::string(absl::StripAsciiWhitespace(text));
  if (text.empty()) return absl::InvalidArgumentError("generated prompt is empty");
  // Lower case, white space runs as one space: an echo that breaks a line or doubles a space is one.
  const std::string lower =
      absl::AsciiStrToLower(absl::StrJoin(absl::StrSplit(text, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty()), " "));
  for (const char* sentence : {kIntroduction, kInstruction}) {
    if (absl::StrContains(lower, absl::AsciiStrToLower(sentence))) {
      return absl::InvalidArgumentError("generated prompt repeats the self-instruct request");
    }
  }
  const int64_t size = static_cast<int64_t>(text.size());
  if (size < min_chars || size > max_chars) {
    return absl::InvalidArgumentError(absl::StrCat("generated prompt has ", size,
                                                   " characters, outside [", min_chars, ", ",
                                                   max_chars, "]"));
  }
  return text;
}

uint64_t DeriveSeed(uint64_t run_seed, const std::vector<int64_t>& parts) {
  uint64_t state = run_seed ^ 0x5EED5EED5EED5EEDULL;
  uint64_t out = NextSplitMix64(&state);
  for (int64_t p : parts) {
    state ^= static_cast<uint64_t>(p) + 0x9E3779B97F4A7C15ULL + (out << 6) + (out >> 2);
    out = NextSplitMix64(&state);
  }
  return out;
}

}  // namespace srlm
