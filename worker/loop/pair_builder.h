// Preference pairs from judged candidates: the mean of each candidate's k judge scores, the best
// candidate as chosen and the worst as rejected; ties give no pair. Only answers take part: a
// candidate that is empty, or that was cut off (by max_new_tokens or the context) before it ended,
// is never chosen or rejected, since DPO trains each side as a whole reply that ends its turn. Candidates with the same text
// (ignoring surrounding white space) are one answer scored by the mean of all their judgements.
// Optional length control: among the candidates within `length_band` points of the best mean, the
// shortest becomes chosen.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/judge.h"

namespace srlm {

// One sampled response and the k judgements of it.
struct JudgedCandidate {
  std::string text;
  int64_t length = 0;              // in tokens (length control compares this)
  std::vector<JudgeScore> scores;  // k judgements; unparsable ones have no score
  bool finished = true;            // ended by EOS or a stop string, not cut off
};

struct PreferencePair {
  std::string prompt;
  std::string chosen;
  std::string rejected;
  double chosen_score = 0;    // mean judge score
  double rejected_score = 0;
  int64_t chosen_index = -1;  // index among the candidates
  int64_t rejected_index = -1;
};

struct PairOptions {
  bool length_control = false;
  double length_band = 0.5;
  // A candidate whose k judgements all failed to parse has no mean and takes no part. When
  // require_all_scores is true, a candidate with ANY unparsable judgement is dropped instead.
  bool require_all_scores = false;
};

// kTooFewAnswers: fewer than two candidates are answers (PairEligible); kTooFewScored: fewer than
// two answers have a mean score.
enum class PairOutcome { kPair, kTie, kTooFewAnswers, kTooFewScored };
const char* PairOutcomeName(PairOutcome outcome);

struct PairResult {
  PairOutcome outcome = PairOutcome::kTooFewScored;
  std::optional<PreferencePair> pair;
  // Per candidate: the mean of all judgements of its text (its own, and those of any earlier or later
  // candidate with the same text); empty when unscored.
  std::vector<std::optional<double>> mean_scores;
  int64_t judgements = 0;           // all judgements seen
  int64_t unparsable_judgements = 0;
};

// The mean of the parsed scores; nullopt when none parsed (or, with require_all, when any failed).
std::optional<double> MeanJudgeScore(const std::vector<JudgeScore>& scores, bool require_all);

// True for an answer: a finished, non-empty response. An empty (or white-space only) one has nothing
// to train on, and neither DPO nor the coordinator takes an empty chosen or rejected text. A cut-off
// one is a fragment: DPO would train it with an end-of-turn token it never wrote, teaching the model
// to stop mid-sentence (as chosen) or to stop writing such a start (as rejected). An ineligible
// candidate keeps any mean score it has for the record but never enters a pair; the loop does not
// judge it at all.
bool PairEligible(const JudgedCandidate& candidate);

// Builds the pair for one prompt. Among equal best means the earliest candidate wins (and among
// equal worst the earliest loses) so that the result is deterministic. When all scored answers have
// the same text the outcome is a tie (with two or more of them) or too few scored (with one).
PairResult BuildPreferencePair(const std::string& prompt,
                               const std::vector<JudgedCandidate>& candidates,
                               const PairOptions& options);

}  // namespace srlm
