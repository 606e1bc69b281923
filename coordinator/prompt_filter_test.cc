// Tests of the prompt filter (coordinator/prompt_filter.h): normalisation, duplicate,
// near-duplicate and length verdicts, seen prompts, and its indexed search against comparing each
// prompt with every other; and of the shared SeenPromptIndex it consults.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "coordinator/prompt_filter.h"
#include "coordinator/seen_prompt_index.h"

namespace srlm::coordinator {
namespace {

TEST(PromptFilterTest, NormalisesAndDropsDuplicatesNearDuplicatesAndLengths) {
  EXPECT_EQ(NormalizePrompt("  Hello,   WORLD!\n How are\tyou? "), "hello world how are you");
  PromptFilter filter({/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5});
  EXPECT_EQ(filter.Offer("Write a poem about the sea"), PromptVerdict::kAccepted);
  EXPECT_EQ(filter.Offer("write a POEM about the sea!!"), PromptVerdict::kDuplicate);
  // Bigrams: write a | a poem | poem about | about the | the ocean -> 3 of 5 shared (0.6 >= 0.5).
  EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kNearDuplicate);
  EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted);
  EXPECT_EQ(filter.Offer("abc"), PromptVerdict::kLength);
  EXPECT_EQ(filter.Offer(std::string(61, 'x')), PromptVerdict::kLength);
  EXPECT_EQ(filter.Offer("????"), PromptVerdict::kLength);  // long enough, but no word
  EXPECT_EQ(filter.Offer("  ... !?  "), PromptVerdict::kLength);
  EXPECT_EQ(filter.accepted(), 2);
  // Overlap is over the smaller gram set: a prompt inside a longer accepted one is near-duplicate.
  auto a = PromptNgrams("one two three four five six", 3);
  auto b = PromptNgrams("two three four", 3);
  EXPECT_DOUBLE_EQ(NgramOverlap(a, b), 1.0);
  EXPECT_DOUBLE_EQ(NgramOverlap(a, PromptNgrams("seven eight nine", 3)), 0.0);
}

// A seen prompt (AddSeen: data.ift, data.eval) drops its repeats and near-repeats as an accepted
// one does, told apart as kSeen, but is not one of accepted(). A repeat of a pool prompt stays
// kDuplicate; a prompt near both a pool prompt and a seen one is kSeen.
TEST(PromptFilterTest, SeenPromptsDropTheirRepeatsButAreNotAccepted) {
  PromptFilter filter({/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5});
  filter.AddSeen("Write a poem about the sea");
  EXPECT_EQ(filter.accepted(), 0);
  EXPECT_EQ(filter.Offer("write a POEM about the sea!!"), PromptVerdict::kSeen);
  EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kSeen);
  EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted);
  EXPECT_EQ(filter.Offer("summarise the history of rome"), PromptVerdict::kDuplicate);
  EXPECT_EQ(filter.Offer("Summarise the history of Rome, briefly"), PromptVerdict::kNearDuplicate);
  filter.AddAccepted("List three uses of copper");
  EXPECT_EQ(filter.accepted(), 2);
  filter.AddSeen("Explain how tides work");
  filter.AddSeen("List three uses of copper and tin");
  EXPECT_EQ(filter.accepted(), 2);
  EXPECT_EQ(filter.Offer("explain how TIDES work?"), PromptVerdict::kSeen);
  // The pool's "list three uses of copper" is near the seen "... and tin" (its 4 bigrams are in
  // both): its exact repeat is a duplicate, a near copy of both is seen.
  EXPECT_EQ(filter.Offer("List three uses of copper!"), PromptVerdict::kDuplicate);
  EXPECT_EQ(filter.Offer("list three uses of copper please"), PromptVerdict::kSeen);
}

// The verdicts of a PromptFilter's indexed search against those of comparing each prompt with every
// indexed one, on prompts built to stress it: shared openings, short prompts (one gram), near
// copies, several n and thresholds. With `seen_every` > 0 every seen_every-th prompt is seen instead
// of offered, and some offers must be dropped because of a seen prompt alone: added with AddSeen in
// turn (`shared_index` false), or all in a SeenPromptIndex the filter is built with (true; the
// small vocabulary repeats some, which the index keeps once).
void ExpectIndexedVerdictsOfComparingWithEveryPrompt(int seen_every, bool shared_index = false) {
  const std::vector<std::string> openings = {"how do i", "what is the best way to", "write a", "explain", ""};
  const std::vector<std::string> words = {"cat", "dog", "sea", "poem", "rome", "code", "tree", "song", "rain", "map",
                                          "list", "sort", "bake", "bread", "fix", "bike"};
  // Whether a prompt (normalised, grams) repeats one of `norms` or nearly repeats one of `grams_of`.
  auto repeats = [](const std::string& norm, const std::vector<uint64_t>& grams, const std::vector<std::string>& norms,
                    const std::vector<std::vector<uint64_t>>& grams_of, double threshold) {
    if (std::find(norms.begin(), norms.end(), norm) != norms.end()) return PromptVerdict::kDuplicate;
    for (const auto& other : grams_of) {
      if (NgramOverlap(grams, other) >= threshold) return PromptVerdict::kNearDuplicate;
    }
    return PromptVerdict::kAccepted;
  };
  int64_t repeated_seen = 0;  // seen texts the shared index kept once
  for (int64_t n : {1, 2, 3}) {
    for (double threshold : {0.3, 0.5, 0.7, 1.0}) {
      std::mt19937 rng(static_cast<uint32_t>(n * 100 + threshold * 10));
      std::vector<std::string> prompts;
      for (int i = 0; i < 1500; ++i) {
        std::string prompt = openings[rng() % openings.size()];
        const int length = 1 + static_cast<int>(rng() % 7);
        for (int w = 0; w < length; ++w) prompt += " " + words[rng() % words.size()];
        prompts.push_back(std::move(prompt));
      }
      auto is_seen = [&](int i) { return seen_every > 0 && i % seen_every == seen_every - 1; };
      PromptFilterOptions options{/*min_chars=*/1, /*max_chars=*/400, n, threshold};
      std::vector<std::string> accepted_norm, seen_norm;
      std::vector<std::vector<uint64_t>> accepted_grams, seen_grams;
      std::shared_ptr<const SeenPromptIndex> index;
      if (shared_index) {
        std::vector<std::string> seen_texts;
        for (int i = 0; i < 1500; ++i) {
          if (!is_seen(i)) continue;
          seen_texts.push_back(prompts[i]);
          seen_norm.push_back(NormalizePrompt(TrimPrompt(prompts[i])));
          seen_grams.push_back(PromptNgrams(seen_norm.back(), n));
        }
        index = std::make_shared<const SeenPromptIndex>(seen_texts, n);
        repeated_seen += static_cast<int64_t>(seen_texts.size()) - index->size();
      }
      PromptFilter filter(options, index);
      int near = 0, kept = 0, dropped_for_seen = 0;
      for (int i = 0; i < 1500; ++i) {
        const std::string& prompt = prompts[i];
        const std::string norm = NormalizePrompt(TrimPrompt(prompt));
        const std::vector<uint64_t> grams = PromptNgrams(norm, n);
        if (is_seen(i)) {
          if (!shared_index) {
            filter.AddSeen(prompt);
            seen_norm.push_back(norm);
            seen_grams.push_back(grams);
          }
          continue;
        }
        // The reference: exact duplicate of a pool prompt, then any copy of a seen one, then
        // overlap with every pool prompt.
        const PromptVerdict by_accepted = repeats(norm, grams, accepted_norm, accepted_grams, threshold);
        const PromptVerdict by_seen = repeats(norm, grams, seen_norm, seen_grams, threshold);
        PromptVerdict want = PromptVerdict::kAccepted;
        if (by_accepted == PromptVerdict::kDuplicate) {
          want = PromptVerdict::kDuplicate;
        } else if (by_seen != PromptVerdict::kAccepted) {
          want = PromptVerdict::kSeen;
        } else if (by_accepted == PromptVerdict::kNearDuplicate) {
          want = PromptVerdict::kNearDuplicate;
        }
        ASSERT_EQ(filter.Offer(prompt), want) << "n " << n << ", threshold " << threshold << ", prompt " << i << ": '"
                                              << prompt << "'";
        if (want == PromptVerdict::kAccepted) {
          accepted_norm.push_back(norm);
          accepted_grams.push_back(grams);
          ++kept;
        }
        // Near copies found (of the pool or seen ones): the n-gram search was exercised.
        near += by_accepted == PromptVerdict::kNearDuplicate || by_seen == PromptVerdict::kNearDuplicate;
        dropped_for_seen += want == PromptVerdict::kSeen;
      }
      EXPECT_GT(near, 0);
      EXPECT_EQ(filter.accepted(), kept);
      if (seen_every == 0) {
        EXPECT_GE(kept, 5);
      } else {
        // Seen prompts take some of the few distinct ones the small vocabulary allows; all of them
        // at once (the shared index) leave no unigram set new.
        if (!shared_index || n > 1) {
          EXPECT_GT(kept, 0) << "n " << n << ", threshold " << threshold;
        }
        EXPECT_GT(dropped_for_seen, 0) << "n " << n << ", threshold " << threshold;
      }
    }
  }
  if (shared_index) {
    EXPECT_GT(repeated_seen, 0);
  }
}

TEST(PromptFilterTest, IndexedSearchGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/0);
}

// Seen prompts are indexed as accepted ones: the same exact verdicts with every tenth prompt seen.
TEST(PromptFilterTest, IndexedSearchWithSeenPromptsGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/10);
}

// The same with the seen prompts in a shared SeenPromptIndex (the coordinator's way): its flat
// postings give the verdicts of comparing with every prompt, pool and seen, too.
TEST(PromptFilterTest, IndexedSearchWithASharedSeenIndexGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/10, /*shared_index=*/true);
}

// A SeenPromptIndex keeps each normalised prompt once, and is never changed by the filters that
// consult it: two filters over one index each accept the same fresh prompt, and drop a seen one.
TEST(PromptFilterTest, ASharedSeenIndexKeepsEachPromptOnceAndIsNotChangedByItsFilters) {
  const PromptFilterOptions options{/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5};
  auto index = std::make_shared<const SeenPromptIndex>(
      std::vector<std::string>{"Write a poem about the sea", "  write a POEM about the sea!! ", "Explain how tides work"},
      options.ngram);
  EXPECT_EQ(index->size(), 2);
  EXPECT_TRUE(index->Contains("write a poem about the sea"));
  EXPECT_FALSE(index->Contains("summarise the history of rome"));
  EXPECT_TRUE(SeenPromptIndex({}, 3).Postings(42).first == SeenPromptIndex({}, 3).Postings(42).second);
  for (int pass = 0; pass < 2; ++pass) {
    PromptFilter filter(options, index);
    EXPECT_EQ(filter.Offer("WRITE a poem about the sea"), PromptVerdict::kSeen);
    EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kSeen);
    EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted) << "pass " << pass;
    EXPECT_EQ(filter.Offer("summarise the history of rome"), PromptVerdict::kDuplicate);
    EXPECT_EQ(filter.accepted(), 1);
  }
  EXPECT_EQ(index->size(), 2);
  EXPECT_FALSE(index->Contains("summarise the history of rome"));
}

}  // namespace
}  // namespace srlm::coordinator
