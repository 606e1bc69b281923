// CLI11 checks of a flag's value, shared by every command line, with a message that says what is
// expected (CLI11's Range and PositiveNumber let "nan" through, and a NaN limit compares false with
// everything).
#pragma once

#include <cstdint>
#include <limits>

#include <CLI/CLI.hpp>

namespace srlm {

// A finite number in [min, max], or in (min, max] when `exclude_min`.
CLI::Validator FiniteNumber(double min, double max = std::numeric_limits<double>::infinity(),
                            bool exclude_min = false);
// An integer in [min, max] ("2.5" and "1e3" are refused).
CLI::Validator Integer(int64_t min, int64_t max = std::numeric_limits<int64_t>::max());

// A path that is not empty (an empty --checkpoint-root would put <root>/iter-1 at the top of the
// file system).
CLI::Validator NonEmptyPath();

// Shorthands: a finite number > 0, a finite number >= 0.
inline CLI::Validator FinitePositive() { return FiniteNumber(0, std::numeric_limits<double>::infinity(), true); }
inline CLI::Validator FiniteNonNegative() { return FiniteNumber(0); }

}  // namespace srlm
