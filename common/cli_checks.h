// CLI11 checks of a flag's value, shared by every command line, with a message that says what is
// expected (CLI11's Range and PositiveNumber let "nan" through, and a NaN limit compares false with
// everything). Every numeric flag carries FiniteNumber or Integer: they see the flag's text before
// CLI11 converts it, and CLI11's conversion alone reads "" as 0, clamps an integer past int64 to
// INT64_MAX, and reads "010" as octal 8 and "0x10" as 16.
#pragma once

#include <cstdint>
#include <limits>

#include <CLI/CLI.hpp>

namespace srlm {

// A finite number in [min, max], or in (min, max] when `exclude_min`; by default any finite number.
// "" is refused.
CLI::Validator FiniteNumber(double min = -std::numeric_limits<double>::infinity(),
                            double max = std::numeric_limits<double>::infinity(), bool exclude_min = false);
// An integer in [min, max] (by default any int64), in plain decimal: "", "2.5", "1e3", a value
// past int64 (99999999999999999999), a leading zero ("010", which CLI11 would read as octal) and
// "0x10" are refused, so that what passes is exactly the value CLI11 stores.
CLI::Validator Integer(int64_t min = std::numeric_limits<int64_t>::min(),
                       int64_t max = std::numeric_limits<int64_t>::max());

// A path that is not empty (an empty --checkpoint-root would put <root>/iter-1 at the top of the
// file system).
CLI::Validator NonEmptyPath();

// Shorthands: a finite number > 0, a finite number >= 0.
inline CLI::Validator FinitePositive() { return FiniteNumber(0, std::numeric_limits<double>::infinity(), true); }
inline CLI::Validator FiniteNonNegative() { return FiniteNumber(0); }

}  // namespace srlm
