// CLI11 validators shared by the command lines: numbers that must be finite (CLI11's own
// NonNegativeNumber lets "nan" through, and a NaN limit compares false with everything).
#pragma once

#include <cmath>
#include <string>

#include <CLI/CLI.hpp>

namespace srlm {

// A finite number >= 0.
inline CLI::Validator FiniteNonNegative() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value < 0) {
          return "expected a finite number >= 0, got '" + text + "'";
        }
        return "";
      },
      "FINITE>=0");
}

// A finite number > 0.
inline CLI::Validator FinitePositive() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || value <= 0) {
          return "expected a finite number > 0, got '" + text + "'";
        }
        return "";
      },
      "FINITE>0");
}

}  // namespace srlm
