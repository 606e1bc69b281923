// The coordinator's near-duplicate prompt filter at pool sizes a cluster run reaches, against the
// baseline it replaced, side by side on the same prompts: the baseline counts, for every gram of a
// new prompt, every accepted prompt holding it (so prompts that share openings like "how do i"
// make one offer scan a fixed share of the pool); PromptFilter visits only the size classes that
// can still qualify. Both must give the same verdicts (checked); prints time per offer and the ratio.
// Usage: prompt_filter_bench [pool sizes...] (default 4000 20000 40000).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/prompt_filter.h"

namespace {

using srlm::coordinator::NgramOverlap;
using srlm::coordinator::NormalizePrompt;
using srlm::coordinator::PromptFilter;
using srlm::coordinator::PromptFilterOptions;
using srlm::coordinator::PromptNgrams;
using srlm::coordinator::PromptVerdict;
using srlm::coordinator::TrimPrompt;

// The filter as it was: per gram, every accepted prompt holding it, counted.
class ScanningFilter {
 public:
  explicit ScanningFilter(PromptFilterOptions options) : options_(options) {}
  PromptVerdict Offer(const std::string& text) {
    std::string normalized = NormalizePrompt(TrimPrompt(text));
    if (normalized_.count(normalized)) return PromptVerdict::kDuplicate;
    std::vector<uint64_t> grams = PromptNgrams(normalized, options_.ngram);
    std::unordered_map<int32_t, int32_t> shared;
    for (uint64_t gram : grams) {
      auto it = index_.find(gram);
      if (it == index_.end()) continue;
      for (int32_t other : it->second) ++shared[other];
    }
    for (const auto& [other, count] : shared) {
      const size_t smaller = std::min(grams.size(), grams_[other].size());
      if (smaller > 0 && static_cast<double>(count) / smaller >= options_.near_duplicate_threshold) {
        return PromptVerdict::kNearDuplicate;
      }
    }
    const int32_t id = static_cast<int32_t>(grams_.size());
    for (uint64_t gram : grams) index_[gram].push_back(id);
    grams_.push_back(std::move(grams));
    normalized_.insert(std::move(normalized));
    return PromptVerdict::kAccepted;
  }

 private:
  PromptFilterOptions options_;
  std::unordered_set<std::string> normalized_;
  std::vector<std::vector<uint64_t>> grams_;
  std::unordered_map<uint64_t, std::vector<int32_t>> index_;
};

// Model-written prompts: a few common openings, then words from a large vocabulary.
std::vector<std::string> MakePrompts(size_t count) {
  const std::vector<std::string> openings = {"how do i", "what is the best way to", "write a short", "explain how to",
                                             "can you give me", "list five", "describe the", "why does the"};
  std::mt19937 rng(7);
  std::vector<std::string> prompts;
  for (size_t i = 0; i < count; ++i) {
    std::string p = openings[rng() % openings.size()];
    const int words = 4 + static_cast<int>(rng() % 10);
    for (int w = 0; w < words; ++w) p += " w" + std::to_string(rng() % 5000);
    prompts.push_back(std::move(p));
  }
  return prompts;
}

template <typename Filter>
double SecondsToFill(Filter& filter, const std::vector<std::string>& prompts, std::vector<PromptVerdict>* verdicts) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& p : prompts) verdicts->push_back(filter.Offer(p));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(static_cast<size_t>(std::atoll(argv[i])));
  if (sizes.empty()) sizes = {4000, 20000, 40000};
  const PromptFilterOptions options;  // the run's defaults: 3-grams, threshold 0.7
  std::printf("%-8s %-10s %-16s %-16s %-8s\n", "pool", "accepted", "scan us/offer", "indexed us/offer", "ratio");
  for (size_t size : sizes) {
    const std::vector<std::string> prompts = MakePrompts(size);
    ScanningFilter scanning(options);
    PromptFilter indexed(options);
    std::vector<PromptVerdict> want, got;
    const double scan_seconds = SecondsToFill(scanning, prompts, &want);
    const double indexed_seconds = SecondsToFill(indexed, prompts, &got);
    if (want != got) {
      std::fprintf(stderr, "verdicts differ at pool %zu\n", size);
      return 1;
    }
    std::printf("%-8zu %-10lld %-16.1f %-16.1f %.1fx\n", size, static_cast<long long>(indexed.accepted()),
                1e6 * scan_seconds / size, 1e6 * indexed_seconds / size, scan_seconds / indexed_seconds);
  }
  return 0;
}
