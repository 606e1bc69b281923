// Filters self-instructed prompts into an iteration's pool: length bounds, exact duplicates after
// normalisation (lowercase, punctuation stripped, whitespace collapsed) and near-duplicates by word
// n-gram overlap, as Self-Instruct does. Overlap of prompts a and b is |G(a) ∩ G(b)| / min(|G(a)|,
// |G(b)|) over their sets of word n-grams (a prompt shorter than n words has its whole word
// sequence as its one gram). A new prompt is judged against the indexed prompts: the accepted ones
// and the seen ones (prompts the run holds outside the pool, such as its instruction and held-out
// evaluation prompts), which are indexed alike but are not counted as accepted; a prompt that
// repeats or nearly repeats one of them is dropped as kSeen (the model copying its instruction data
// or the held-out prompts), told apart from the pool's duplicates. Seen prompts come
// from a shared SeenPromptIndex given at construction (seen_prompt_index.h: built once per run, so
// a new filter costs nothing per seen prompt) and from AddSeen (into the filter's own index). Not
// thread-safe (the shared index is never modified).
//
// Finding near-duplicates without scanning the index: a prompt with m = min(|G(a)|, |G(b)|) must
// share at least r(m) grams with a new prompt a to reach the threshold, so (pigeonhole) it shares
// one of any |G(a)| - r(m) + 1 of a's grams. The index keeps, per gram, the indexed prompts by
// their gram count; a's grams are visited from the rarest, and each gram only yields the prompts
// whose size class can still qualify there. Every candidate is then checked exactly. The verdicts
// are those of comparing against every indexed prompt; common grams ("how do i") shared by much of
// the index are skipped for all but the smallest prompts, so one offer no longer grows with the
// number of indexed prompts (pool and seen ones together). With a shared seen index a gram's
// holders are those of both indexes: its rarity is their sum, and each index yields its own
// qualifying size classes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace srlm::coordinator {

// Why Offer dropped a prompt, checked in this order: kLength (outside the bounds), kDuplicate (the
// same normalised text as a pool prompt), kSeen (the same text as, or a near-duplicate of, a seen
// prompt), kNearDuplicate (of a pool prompt). A pool prompt was itself judged against the seen
// ones, so its exact repeat is no copy of them.
enum class PromptVerdict { kAccepted, kDuplicate, kNearDuplicate, kLength, kSeen };

struct PromptFilterOptions {
  int64_t min_chars = 4;      // after trimming surrounding whitespace
  int64_t max_chars = 512;
  int64_t ngram = 3;
  double near_duplicate_threshold = 0.7;
};

// `text` without surrounding whitespace.
std::string_view TrimPrompt(std::string_view text);
// Lowercase, ASCII punctuation removed, runs of whitespace collapsed to one space, trimmed.
std::string NormalizePrompt(std::string_view text);
// The set of word n-grams of a normalised prompt, hashed.
std::vector<uint64_t> PromptNgrams(std::string_view normalized, int64_t n);
// The overlap of two n-gram sets (each sorted and unique) as defined above; 0 when either is empty.
double NgramOverlap(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b);

class SeenPromptIndex;

class PromptFilter {
 public:
  // `seen` (may be null: none) must index by the same n-grams (seen->ngram() == options.ngram).
  explicit PromptFilter(PromptFilterOptions options, std::shared_ptr<const SeenPromptIndex> seen = nullptr);
  // Judges `text` against every indexed prompt (accepted and seen); when accepted, it joins the
  // accepted set.
  PromptVerdict Offer(std::string_view text);
  // Adds an already-accepted prompt (e.g. from the database at start-up) without judging it.
  void AddAccepted(std::string_view text);
  // Indexes a prompt seen outside the pool without judging it: an offer that repeats or nearly
  // repeats it is kSeen, and it is not one of accepted(). The coordinator passes a shared SeenPromptIndex instead; tests use this to add seen
  // prompts after accepted ones, and the bench as its rebuild-per-filter baseline.
  void AddSeen(std::string_view text);
  // Prompts accepted by Offer or added by AddAccepted (seen ones excluded).
  int64_t accepted() const { return accepted_; }

 private:
  // Adds `text` to its duplicate set (the pool's or the seen prompts') and to the n-gram index.
  void Index(std::string_view text, bool seen);

  PromptFilterOptions options_;
  std::shared_ptr<const SeenPromptIndex> seen_;  // shared, never modified; may be null
  int64_t accepted_ = 0;
  std::unordered_set<std::string> normalized_;       // the pool's
  std::unordered_set<std::string> seen_normalized_;  // AddSeen's
  std::vector<std::vector<uint64_t>> grams_;         // per indexed prompt
  std::vector<bool> indexed_as_seen_;                // per indexed prompt: added by AddSeen
  struct Postings {
    int64_t total = 0;
    std::map<int32_t, std::vector<int32_t>> by_size;  // gram count of the prompt -> indexed prompts
  };
  std::unordered_map<uint64_t, Postings> index_;  // gram -> indexed prompts holding it
};

}  // namespace srlm::coordinator
