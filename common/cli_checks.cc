// Implementation of common/cli_checks.h.
#include "common/cli_checks.h"

#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace srlm {

CLI::Validator FiniteNumber(double min, double max, bool exclude_min) {
  const std::string range = max == std::numeric_limits<double>::infinity()
                                ? absl::StrCat(exclude_min ? "> " : ">= ", min)
                                : absl::StrCat("in ", exclude_min ? "(" : "[", min, ", ", max, "]");
  return CLI::Validator(
      [=](std::string& input) -> std::string {
        double value = 0;
        const bool ok = CLI::detail::lexical_cast(input, value) && std::isfinite(value) && value >= min &&
                        value <= max && !(exclude_min && value == min);
        return ok ? std::string() : absl::StrCat("expected a finite number ", range, ", got '", input, "'");
      },
      "NUMBER " + range);
}

CLI::Validator Integer(int64_t min, int64_t max) {
  const std::string range = max == std::numeric_limits<int64_t>::max() ? absl::StrCat(">= ", min)
                                                                          : absl::StrCat("in [", min, ", ", max, "]");
  return CLI::Validator(
      [=](std::string& input) -> std::string {
        int64_t value = 0;
        const bool ok = absl::SimpleAtoi(input, &value) && value >= min && value <= max;
        return ok ? std::string() : absl::StrCat("expected an integer ", range, ", got '", input, "'");
      },
      "INT " + range);
}

CLI::Validator NonEmptyPath() {
  return CLI::Validator(
      [](std::string& input) -> std::string { return input.empty() ? "expected a path, got an empty string" : ""; },
      "PATH");
}

}  // namespace srlm
