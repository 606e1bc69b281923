// Integer arithmetic that cannot overflow where the obvious form does. Pure.
#pragma once

#include <cstdint>

namespace srlm {

// ceil(numerator / denominator) for numerator >= 0 and denominator > 0, for every such pair: the
// usual (numerator + denominator - 1) / denominator overflows when the sum passes INT64_MAX (a
// batch size of INT64_MAX made it negative, and the trainer divided by the resulting 0).
constexpr int64_t CeilDiv(int64_t numerator, int64_t denominator) {
  return numerator / denominator + (numerator % denominator != 0 ? 1 : 0);
}

}  // namespace srlm
