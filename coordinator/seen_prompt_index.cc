// Implementation of coordinator/seen_prompt_index.h.
#include "coordinator/seen_prompt_index.h"

#include <algorithm>
#include <tuple>

#include "coordinator/prompt_filter.h"

namespace srlm::coordinator {

SeenPromptIndex::SeenPromptIndex(const std::vector<std::string>& texts, int64_t ngram) : ngram_(ngram) {
  size_t total = 0;
  for (const std::string& text : texts) {
    std::string normalized = NormalizePrompt(TrimPrompt(text));
    if (normalized_.count(normalized)) continue;
    std::vector<uint64_t> grams = PromptNgrams(normalized, ngram_);
    grams.shrink_to_fit();  // kept for the life of the run
    total += grams.size();
    grams_.push_back(std::move(grams));
    normalized_.insert(std::move(normalized));
  }
  grams_.shrink_to_fit();
  // (gram, size, prompt) for every gram of every prompt, sorted: each gram's postings by size.
  struct Entry {
    uint64_t gram;
    int32_t size;
    int32_t prompt;
  };
  std::vector<Entry> entries;
  entries.reserve(total);
  for (size_t prompt = 0; prompt < grams_.size(); ++prompt) {
    const int32_t size = static_cast<int32_t>(grams_[prompt].size());
    for (uint64_t gram : grams_[prompt]) entries.push_back({gram, size, static_cast<int32_t>(prompt)});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.gram, a.size, a.prompt) < std::tie(b.gram, b.size, b.prompt);
  });
  postings_.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i == 0 || entries[i].gram != entries[i - 1].gram) {
      keys_.push_back(entries[i].gram);
      key_begin_.push_back(static_cast<uint32_t>(i));
    }
    postings_.push_back({entries[i].size, entries[i].prompt});
  }
  key_begin_.push_back(static_cast<uint32_t>(postings_.size()));
  keys_.shrink_to_fit();
  key_begin_.shrink_to_fit();
  // A few keys per bucket (a uint32_t each): a lookup reads its bucket's bounds, then those keys.
  while (bits_ < 28 && (size_t{4} << bits_) < keys_.size()) ++bits_;
  bucket_begin_.assign((size_t{1} << bits_) + 1, 0);
  for (uint64_t key : keys_) ++bucket_begin_[Bucket(key) + 1];
  for (size_t b = 1; b < bucket_begin_.size(); ++b) bucket_begin_[b] += bucket_begin_[b - 1];
}

std::pair<const SeenPromptIndex::Posting*, const SeenPromptIndex::Posting*> SeenPromptIndex::Postings(
    uint64_t gram) const {
  if (keys_.empty()) return {nullptr, nullptr};
  const size_t bucket = Bucket(gram);
  const uint64_t* first = keys_.data() + bucket_begin_[bucket];
  const uint64_t* last = keys_.data() + bucket_begin_[bucket + 1];
  const uint64_t* key = std::lower_bound(first, last, gram);
  if (key == last || *key != gram) return {nullptr, nullptr};
  const size_t i = static_cast<size_t>(key - keys_.data());
  return {postings_.data() + key_begin_[i], postings_.data() + key_begin_[i + 1]};
}

}  // namespace srlm::coordinator
