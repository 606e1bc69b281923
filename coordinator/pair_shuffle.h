// The deterministic order of an iteration's frozen pair set: a Fisher-Yates shuffle driven by
// SplitMix64 seeded from (run seed, iteration), so that every rank and every restart agree and the
// order does not depend on the standard library's distributions.
#pragma once

#include <cstdint>
#include <vector>

namespace srlm::coordinator {

// position[i] = the shuffled position of the i-th pair (pairs ordered by prompt id); a permutation
// of 0..count-1.
std::vector<int64_t> ShuffledPositions(int64_t count, int64_t run_seed, int64_t iteration);

}  // namespace srlm::coordinator
