// Implementation of coordinator/pair_shuffle.h.
#include "coordinator/pair_shuffle.h"

#include <numeric>
#include <utility>

#include "common/split_mix64.h"

namespace srlm::coordinator {
namespace {

// Uniform in [0, bound) without modulo bias (Lemire's rejection is overkill here: plain rejection).
uint64_t UniformBelow(uint64_t& state, uint64_t bound) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  while (true) {
    uint64_t draw = NextSplitMix64(&state);
    if (draw < limit) return draw % bound;
  }
}

}  // namespace

std::vector<int64_t> ShuffledPositions(int64_t count, int64_t run_seed, int64_t iteration) {
  std::vector<int64_t> order(count);  // order[p] = pair index at position p
  std::iota(order.begin(), order.end(), 0);
  uint64_t state = static_cast<uint64_t>(run_seed) * 0x100000001B3ULL ^
                   (static_cast<uint64_t>(iteration) + 0x632BE59BD9B4E019ULL);
  for (int64_t i = count - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(UniformBelow(state, static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  std::vector<int64_t> position(count);
  for (int64_t p = 0; p < count; ++p) position[order[p]] = p;
  return position;
}

}  // namespace srlm::coordinator
