// The n-gram index of a run's seen prompts (seen_prompts.h: data.ift and data.eval), built once at
// the coordinator's start and never modified afterwards: every prompt filter of the run
// (PromptFilter, prompt_filter.h) consults it next to its own pool index, so that starting a PROMPTS
// phase costs nothing per seen prompt, and filters may share it across threads.
//
// It holds what a filter's own index holds, for the seen prompts: their normalised texts (exact
// duplicates), each one's set of n-grams, and per gram the prompts holding it ordered by their
// gram count (size class), so that PromptFilter::Offer can stop at the first size class that cannot
// qualify without visiting the prompts after it. Flat, as nothing is added later: the distinct
// grams sorted, each with its range of (size, prompt) postings, found through a directory on the
// gram's top bits (the grams are FNV-1a hashes), so that a lookup reads a few entries however many
// prompts hold the gram. A text whose normalised form is already indexed is skipped (its grams are
// those of the first).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace srlm::coordinator {

class SeenPromptIndex {
 public:
  struct Posting {
    int32_t size;    // gram count of the prompt
    int32_t prompt;  // its number in this index
  };

  // Indexes `texts` (trimmed and normalised as PromptFilter does) by word n-grams of `ngram` words;
  // the filters that consult it must use the same n.
  SeenPromptIndex(const std::vector<std::string>& texts, int64_t ngram);

  int64_t ngram() const { return ngram_; }
  // Distinct prompts indexed (after normalisation).
  int64_t size() const { return static_cast<int64_t>(grams_.size()); }
  // Whether `normalized` (NormalizePrompt's form) is one of the indexed prompts.
  bool Contains(const std::string& normalized) const { return normalized_.count(normalized) > 0; }
  // The prompts holding `gram`, as [first, last): ordered by size, then prompt; empty if none.
  std::pair<const Posting*, const Posting*> Postings(uint64_t gram) const;
  // The n-gram set (sorted, unique) of prompt `prompt`.
  const std::vector<uint64_t>& grams(int32_t prompt) const { return grams_[static_cast<size_t>(prompt)]; }

 private:
  size_t Bucket(uint64_t gram) const { return bits_ == 0 ? 0 : static_cast<size_t>(gram >> (64 - bits_)); }

  int64_t ngram_;
  std::unordered_set<std::string> normalized_;
  std::vector<std::vector<uint64_t>> grams_;  // per prompt
  std::vector<uint64_t> keys_;                // the distinct grams, sorted
  std::vector<uint32_t> key_begin_;           // keys_[i]'s postings: [key_begin_[i], key_begin_[i + 1])
  std::vector<Posting> postings_;
  int bits_ = 0;                              // directory: 2^bits_ buckets by the gram's top bits
  std::vector<uint32_t> bucket_begin_;        // bucket b's keys: [bucket_begin_[b], bucket_begin_[b + 1])
};

}  // namespace srlm::coordinator
