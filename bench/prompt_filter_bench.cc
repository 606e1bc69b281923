// The coordinator's near-duplicate prompt filter at pool sizes a cluster run reaches, against the
// baseline it replaced, side by side on the same prompts: the baseline counts, for every gram of a
// new prompt, every accepted prompt holding it (so prompts that share openings like "how do i"
// make one offer scan a fixed share of the pool); PromptFilter visits only the size classes that
// can still qualify. Both must give the same verdicts (checked); prints time per offer and the ratio.
//
// Then the seen prompts (data.ift and data.eval) at a phase reset, the old way against the new:
// a filter seeded with AddSeen at each reset (each SFT, PROMPTS and DONE transition, and at start,
// under the coordinator's lock) is the baseline; the new one indexes them once at start
// (SeenPromptIndex) and a new filter only points at that index. Prints the seconds and the memory
// (malloc's bytes in use) of one seeded filter the old way, the seconds of copying one (the other
// way to avoid the rebuild), of the index and of one reset the new way, and the cost of an offer against a pool of 20,000 with the seen prompts, both ways (best of
// three rounds; the verdicts must be equal: checked).
// Usage: prompt_filter_bench [pool sizes...] [--seen=N[:DISTINCT],...] (defaults 4000 20000 40000
// and --seen=1500:908,20000,100000: 1,500 seen prompts of which 908 distinct, as the demo's data.ift).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/prompt_filter.h"
#include "coordinator/seen_prompt_index.h"

namespace {

using srlm::coordinator::NgramOverlap;
using srlm::coordinator::NormalizePrompt;
using srlm::coordinator::PromptFilter;
using srlm::coordinator::PromptFilterOptions;
using srlm::coordinator::PromptNgrams;
using srlm::coordinator::PromptVerdict;
using srlm::coordinator::SeenPromptIndex;
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

// `count` seen prompts of 30 words (an opening, then words), `distinct` of them different: the
// rest repeat earlier ones, as an instruction file repeats prompts.
std::vector<std::string> MakeSeenPrompts(size_t count, size_t distinct) {
  const std::vector<std::string> openings = {"how do i", "what is the best way to", "write a short", "explain how to"};
  std::mt19937 rng(11);
  std::vector<std::string> prompts;
  for (size_t i = 0; i < count; ++i) {
    if (i >= distinct) {
      prompts.push_back(prompts[rng() % distinct]);
      continue;
    }
    std::string p = openings[rng() % openings.size()];
    while (std::count(p.begin(), p.end(), ' ') < 29) p += " s" + std::to_string(rng() % 20000);
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// Bytes malloc holds for the program (small and mmap'ed blocks).
double MallocBytes() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

template <typename Filter>
double SecondsToFill(Filter& filter, const std::vector<std::string>& prompts, std::vector<PromptVerdict>* verdicts) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& p : prompts) verdicts->push_back(filter.Offer(p));
  return SecondsSince(start);
}

// One seen-prompt case: old reset, new index and reset, and offers against both; false when their
// verdicts differ.
bool BenchSeen(size_t count, size_t distinct, const PromptFilterOptions& options,
               const std::vector<std::string>& pool) {
  const std::vector<std::string> seen = MakeSeenPrompts(count, distinct);
  // Old: every new filter adds every seen prompt.
  double before = MallocBytes();
  auto start = std::chrono::steady_clock::now();
  auto old_filter = std::make_unique<PromptFilter>(options);
  for (const std::string& text : seen) old_filter->AddSeen(text);
  const double old_reset_s = SecondsSince(start);
  const double old_mb = (MallocBytes() - before) / 1e6;
  // New: the index once (at Open), then a filter that points at it per reset.
  before = MallocBytes();
  start = std::chrono::steady_clock::now();
  auto index = std::make_shared<const SeenPromptIndex>(seen, options.ngram);
  const double index_s = SecondsSince(start);
  const double index_mb = (MallocBytes() - before) / 1e6;
  constexpr int kResets = 1000;
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kResets; ++i) {
    auto filter = std::make_unique<PromptFilter>(options, index);
    if (filter->accepted() != 0) return false;
  }
  const double new_reset_s = SecondsSince(start) / kResets;
  // Offers: the best of three alternating rounds (the machine is shared), each on fresh filters.
  // The old filter is copied for each round; the copy's time is that of the alternative to the
  // shared index (a pre-built seeded filter copied at each reset).
  double old_offer_s = 1e30, new_offer_s = 1e30, copy_s = 1e30;
  for (int round = 0; round < 3; ++round) {
    start = std::chrono::steady_clock::now();
    PromptFilter old_round = *old_filter;  // the seeded filter before any offer
    copy_s = std::min(copy_s, SecondsSince(start));
    PromptFilter new_round(options, index);
    std::vector<PromptVerdict> want, got;
    old_offer_s = std::min(old_offer_s, SecondsToFill(old_round, pool, &want));
    new_offer_s = std::min(new_offer_s, SecondsToFill(new_round, pool, &got));
    if (want != got) {
      std::fprintf(stderr, "verdicts differ with %zu seen prompts\n", count);
      return false;
    }
  }
  char time_ratio[32], mb_ratio[32];
  std::snprintf(time_ratio, sizeof(time_ratio), "%.1fx", old_reset_s / index_s);
  std::snprintf(mb_ratio, sizeof(mb_ratio), "%.1fx", old_mb / std::max(index_mb, 1e-9));
  std::printf("%-8zu %-9lld %-12.3f %-8.3f %-12.3f %-7s %-13.2f %-8.0f %-9.0f %-7s %-9.1f %-9.1f\n", count,
              static_cast<long long>(index->size()), old_reset_s, copy_s, index_s, time_ratio, 1e6 * new_reset_s,
              old_mb, index_mb, mb_ratio, 1e6 * old_offer_s / pool.size(), 1e6 * new_offer_s / pool.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  std::vector<std::pair<size_t, size_t>> seen_sizes;  // (count, distinct)
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seen=", 0) == 0) {
      for (size_t at = 7; at < arg.size();) {
        size_t comma = arg.find(',', at);
        if (comma == std::string::npos) comma = arg.size();
        const std::string item = arg.substr(at, comma - at);
        const size_t colon = item.find(':');
        const size_t count = static_cast<size_t>(std::atoll(item.c_str()));
        seen_sizes.emplace_back(count, colon == std::string::npos ? count
                                                                   : static_cast<size_t>(std::atoll(item.c_str() + colon + 1)));
        at = comma + 1;
      }
      continue;
    }
    sizes.push_back(static_cast<size_t>(std::atoll(argv[i])));
  }
  if (sizes.empty()) sizes = {4000, 20000, 40000};
  if (seen_sizes.empty()) seen_sizes = {{1500, 908}, {20000, 20000}, {100000, 100000}};
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
  // Seen prompts: one phase reset the old way and a copy of its seeded filter against the index
  // built once (s; ratio: old reset / index), one reset the new way (us), the memory of the old
  // seeded filter against the index's (MB; ratio), then us per offer of a 20,000-prompt pool
  // against them, old and new.
  std::printf("\n%-8s %-9s %-12s %-8s %-12s %-7s %-13s %-8s %-9s %-7s %-9s %-9s\n", "seen", "distinct",
              "old reset s", "copy s", "new index s", "ratio", "new reset us", "old MB", "index MB", "ratio",
              "old us/o", "new us/o");
  const std::vector<std::string> pool = MakePrompts(20000);
  for (const auto& [count, distinct] : seen_sizes) {
    if (!BenchSeen(count, std::min(count, std::max<size_t>(distinct, 1)), options, pool)) return 1;
  }
  return 0;
}
