// Test helper for randomized mutation tests (a reader fed thousands of damaged inputs): CheckMutants
// runs one check per numbered mutant, counts how the reader took them, and reports the first few
// that broke the reader's promise. Header-only (gtest and the standard library).
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace srlm::testing_util {

struct MutantCounts {
  int accepted = 0;  // the reader took the mutant
  int rejected = 0;  // the reader refused it
  int broken = 0;    // the promise was broken (a wrong result, a wrong error, an exception)
};

// check(i, &accepted, &label) -> ::testing::AssertionResult for mutant i: success when the reader
// kept its promise; it sets `accepted` when the reader took the mutant and `label` to say what the
// mutation was. An exception out of the check counts as broken. The first 10 broken mutants are
// reported as test failures; all are counted.
template <typename Check>
MutantCounts CheckMutants(int count, Check check) {
  constexpr int kReported = 10;
  MutantCounts counts;
  for (int i = 0; i < count; ++i) {
    bool accepted = false;
    std::string label;
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    try {
      result = check(i, &accepted, &label);
    } catch (const std::exception& e) {
      result = ::testing::AssertionFailure() << "threw " << e.what();
    }
    ++(accepted ? counts.accepted : counts.rejected);
    if (!result && ++counts.broken <= kReported) {
      ADD_FAILURE() << "mutant " << i << " (" << label << "): " << result.message();
    }
  }
  return counts;
}

}  // namespace srlm::testing_util
