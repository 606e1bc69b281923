// Implementation of coordinator/prompt_filter.h.
#include "coordinator/prompt_filter.h"

#include <algorithm>
#include <cctype>
#include <tuple>
#include <utility>

#include "common/logging.h"
#include "coordinator/seen_prompt_index.h"

namespace srlm::coordinator {
namespace {

uint64_t Fnv1a(std::string_view s, uint64_t hash = 1469598103934665603ULL) {
  for (unsigned char c : s) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

}  // namespace

std::string_view TrimPrompt(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

std::string NormalizePrompt(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (unsigned char c : text) {
    if (std::isspace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (std::ispunct(c)) continue;
    if (pending_space) out += ' ';
    pending_space = false;
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

std::vector<uint64_t> PromptNgrams(std::string_view normalized, int64_t n) {
  std::vector<std::string_view> words;
  size_t start = 0;
  while (start < normalized.size()) {
    size_t end = normalized.find(' ', start);
    if (end == std::string_view::npos) end = normalized.size();
    if (end > start) words.push_back(normalized.substr(start, end - start));
    start = end + 1;
  }
  std::vector<uint64_t> grams;
  if (words.empty()) return grams;
  size_t width = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(n, 1)), words.size());
  for (size_t i = 0; i + width <= words.size(); ++i) {
    uint64_t hash = 1469598103934665603ULL;
    for (size_t j = 0; j < width; ++j) hash = Fnv1a(words[i + j], Fnv1a("\x1f", hash));
    grams.push_back(hash);
  }
  std::sort(grams.begin(), grams.end());
  grams.erase(std::unique(grams.begin(), grams.end()), grams.end());
  return grams;
}

double NgramOverlap(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  if (a.empty() || b.empty()) return 0.0;
  size_t shared = 0;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] == b[j]) {
      ++shared, ++i, ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return static_cast<double>(shared) / static_cast<double>(std::min(a.size(), b.size()));
}

PromptFilter::PromptFilter(PromptFilterOptions options, std::shared_ptr<const SeenPromptIndex> seen)
    : options_(options), seen_(std::move(seen)) {
  if (seen_ != nullptr && seen_->ngram() != options_.ngram) {
    SRLM_LOG(FATAL) << "a seen prompt index of " << seen_->ngram() << "-grams given to a filter of "
                    << options_.ngram << "-grams";
  }
}

PromptVerdict PromptFilter::Offer(std::string_view text) {
  std::string_view trimmed = TrimPrompt(text);
  if (static_cast<int64_t>(trimmed.size()) < options_.min_chars ||
      static_cast<int64_t>(trimmed.size()) > options_.max_chars) {
    return PromptVerdict::kLength;
  }
  std::string normalized = NormalizePrompt(trimmed);
  // Punctuation alone ("????") has no word: it is no prompt, whatever its length.
  if (normalized.empty()) return PromptVerdict::kLength;
  if (normalized_.count(normalized)) return PromptVerdict::kDuplicate;
  if (seen_normalized_.count(normalized) || (seen_ != nullptr && seen_->Contains(normalized))) {
    return PromptVerdict::kSeen;
  }
  std::vector<uint64_t> grams = PromptNgrams(normalized, options_.ngram);
  const int64_t k = static_cast<int64_t>(grams.size());
  // The fewest shared grams that reach the threshold against a prompt of `size` grams.
  auto needed = [&](int64_t size) {
    const int64_t smaller = std::min(k, size);
    for (int64_t c = 1; c <= smaller; ++c) {
      if (static_cast<double>(c) / static_cast<double>(smaller) >= options_.near_duplicate_threshold) return c;
    }
    return smaller + 1;  // unreachable (threshold above 1)
  };
  // a's grams that some indexed prompt holds (in this filter's index, the seen index or both),
  // rarest first by their holders in both.
  struct Held {
    int64_t total = 0;
    const Postings* own = nullptr;
    const SeenPromptIndex::Posting* seen_first = nullptr;
    const SeenPromptIndex::Posting* seen_last = nullptr;
  };
  std::vector<Held> lists;
  for (uint64_t gram : grams) {
    Held held;
    if (auto it = index_.find(gram); it != index_.end()) {
      held.own = &it->second;
      held.total += it->second.total;
    }
    if (seen_ != nullptr) {
      std::tie(held.seen_first, held.seen_last) = seen_->Postings(gram);
      held.total += held.seen_last - held.seen_first;
    }
    if (held.total > 0) lists.push_back(held);
  }
  std::sort(lists.begin(), lists.end(), [](const Held& x, const Held& y) { return x.total < y.total; });
  // Grams no indexed prompt holds count as the rarest of all: they come first in the order (the
  // pigeonhole bound holds for any k - r + 1 of a's grams).
  const int64_t absent = k - static_cast<int64_t>(lists.size());
  std::unordered_set<int32_t> candidates, seen_candidates;
  for (size_t i = 0; i < lists.size(); ++i) {
    const int64_t position = absent + static_cast<int64_t>(i);
    // A prompt of a size class that fails this shares one of a's rarer grams. Both kinds of
    // postings come by ascending size, and needed() does not decrease with the size (c shared grams
    // that reach the threshold over a larger set reach it over a smaller one), so the size classes
    // that qualify come first: the first that does not ends the gram's postings.
    auto qualifies = [&](int32_t size) { return position <= k - needed(size); };
    if (lists[i].own != nullptr) {
      for (const auto& [size, ids] : lists[i].own->by_size) {
        if (!qualifies(size)) break;
        candidates.insert(ids.begin(), ids.end());
      }
    }
    int32_t qualified_size = -1;  // the size class last found to qualify
    for (const SeenPromptIndex::Posting* posting = lists[i].seen_first; posting != lists[i].seen_last; ++posting) {
      if (posting->size != qualified_size) {
        if (!qualifies(posting->size)) break;
        qualified_size = posting->size;
      }
      seen_candidates.insert(posting->prompt);
    }
  }
  // A near copy of a seen prompt outranks one of a pool prompt (the verdicts' order).
  for (int32_t other : seen_candidates) {
    if (NgramOverlap(grams, seen_->grams(other)) >= options_.near_duplicate_threshold) return PromptVerdict::kSeen;
  }
  bool near_pool_prompt = false;
  for (int32_t other : candidates) {
    if (NgramOverlap(grams, grams_[other]) < options_.near_duplicate_threshold) continue;
    if (indexed_as_seen_[other]) return PromptVerdict::kSeen;
    near_pool_prompt = true;
    if (seen_normalized_.empty()) break;  // no seen prompt in this filter's own index
  }
  if (near_pool_prompt) return PromptVerdict::kNearDuplicate;
  AddAccepted(trimmed);
  return PromptVerdict::kAccepted;
}

void PromptFilter::AddAccepted(std::string_view text) {
  Index(text, /*seen=*/false);
  ++accepted_;
}

void PromptFilter::AddSeen(std::string_view text) { Index(text, /*seen=*/true); }

void PromptFilter::Index(std::string_view text, bool seen) {
  std::string normalized = NormalizePrompt(TrimPrompt(text));
  std::vector<uint64_t> grams = PromptNgrams(normalized, options_.ngram);
  int32_t id = static_cast<int32_t>(grams_.size());
  for (uint64_t gram : grams) {
    Postings& postings = index_[gram];
    ++postings.total;
    postings.by_size[static_cast<int32_t>(grams.size())].push_back(id);
  }
  grams_.push_back(std::move(grams));
  indexed_as_seen_.push_back(seen);
  (seen ? seen_normalized_ : normalized_).insert(std::move(normalized));
}

}  // namespace srlm::coordinator
