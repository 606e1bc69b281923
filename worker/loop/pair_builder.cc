// Implementation of worker/loop/pair_builder.h.
#include "worker/loop/pair_builder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"

namespace srlm {

const char* PairOutcomeName(PairOutcome outcome) {
  switch (outcome) {
    case PairOutcome::kPair: return "pair";
    case PairOutcome::kTie: return "tie";
    case PairOutcome::kTooFewAnswers: return "too_few_answers";
    case PairOutcome::kTooFewScored: return "too_few_scored";
  }
  return "unknown";
}

std::optional<double> MeanJudgeScore(const std::vector<JudgeScore>& scores, bool require_all) {
  double sum = 0;
  int64_t count = 0;
  for (const JudgeScore& s : scores) {
    if (!s.ok()) {
      if (require_all) return std::nullopt;
      continue;
    }
    sum += *s.score;
    ++count;
  }
  if (count == 0) return std::nullopt;
  return sum / static_cast<double>(count);
}

namespace {

// Means that are equal but for rounding: decimal scores (3.1) summed in another order, or pooled
// over other counts, differ in their last bits, and a 4e-16 "margin" made a pair DPO trained on.
bool SameMean(double a, double b) {
  return std::abs(a - b) <= 1e-9 * std::max({1.0, std::abs(a), std::abs(b)});
}

}  // namespace

bool PairEligible(const JudgedCandidate& candidate) {
  return candidate.finished && !absl::StripAsciiWhitespace(candidate.text).empty();
}

PairResult BuildPreferencePair(const std::string& prompt,
                               const std::vector<JudgedCandidate>& candidates,
                               const PairOptions& options) {
  PairResult result;
  // Candidates with the same text are one answer: they share the mean of all their judgements, and
  // only the first eligible one of them competes, so judge noise can never make an answer both
  // chosen and rejected.
  std::map<absl::string_view, int64_t> first_index_of_text;
  std::set<absl::string_view> texts_competing;
  std::vector<int64_t> first_with_text(candidates.size());
  std::vector<bool> competes(candidates.size());  // eligible, and the first eligible one of its text
  std::vector<std::vector<JudgeScore>> scores_of_text(candidates.size());  // at each text's first index
  int64_t answers = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const absl::string_view text = absl::StripAsciiWhitespace(candidates[i].text);
    const int64_t first = first_index_of_text.emplace(text, static_cast<int64_t>(i)).first->second;
    first_with_text[i] = first;
    if (PairEligible(candidates[i])) {
      ++answers;
      competes[i] = texts_competing.insert(text).second;
    }
    scores_of_text[first].insert(scores_of_text[first].end(), candidates[i].scores.begin(),
                                 candidates[i].scores.end());
    for (const JudgeScore& s : candidates[i].scores) {
      ++result.judgements;
      if (!s.ok()) ++result.unparsable_judgements;
    }
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    result.mean_scores.push_back(MeanJudgeScore(scores_of_text[first_with_text[i]], options.require_all_scores));
  }
  if (answers < 2) {
    result.outcome = PairOutcome::kTooFewAnswers;
    return result;
  }
  int64_t best = -1, worst = -1, scored = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::optional<double>& mean = result.mean_scores[i];
    if (!mean || !PairEligible(candidates[i])) continue;
    ++scored;
    const int64_t idx = static_cast<int64_t>(i);
    if (!competes[i]) continue;
    if (best < 0 || *mean > *result.mean_scores[best]) best = idx;
    if (worst < 0 || *mean < *result.mean_scores[worst]) worst = idx;
  }
  if (scored < 2) {
    result.outcome = PairOutcome::kTooFewScored;
    return result;
  }
  const double best_score = *result.mean_scores[best];
  const double worst_score = *result.mean_scores[worst];
  if (SameMean(best_score, worst_score)) {  // also when every scored candidate gave the same text
    result.outcome = PairOutcome::kTie;
    return result;
  }
  int64_t chosen = best;
  if (options.length_control) {
    // Shortest among those near the top; it must still beat the rejected one.
    for (size_t i = 0; i < candidates.size(); ++i) {
      const auto& mean = result.mean_scores[i];
      if (!mean || !PairEligible(candidates[i]) || *mean <= worst_score || SameMean(*mean, worst_score) ||
          *mean < best_score - options.length_band) {
        continue;
      }
      if (candidates[i].length < candidates[chosen].length) chosen = static_cast<int64_t>(i);
    }
  }
  PreferencePair pair;
  pair.prompt = prompt;
  pair.chosen = candidates[chosen].text;
  pair.rejected = candidates[worst].text;
  pair.chosen_score = *result.mean_scores[chosen];
  pair.rejected_score = worst_score;
  pair.chosen_index = chosen;
  pair.rejected_index = worst;
  result.pair = std::move(pair);
  result.outcome = PairOutcome::kPair;
  return result;
}

}  // namespace srlm
