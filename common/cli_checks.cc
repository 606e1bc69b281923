// Implementation of common/cli_checks.h.
#include "common/cli_checks.h"

#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace srlm {
namespace {

// " in [min, max]", " >= min", " <= max" or "" for an unbounded range, with `open_min` for (min.
template <typename T>
std::string RangeText(T min, T max, T lowest, T highest, bool open_min = false) {
  if (min == lowest && max == highest) return "";
  if (max == highest) return absl::StrCat(open_min ? " > " : " >= ", min);
  if (min == lowest) return absl::StrCat(" <= ", max);
  return absl::StrCat(" in ", open_min ? "(" : "[", min, ", ", max, "]");
}

// Whether `text` is a plain decimal integer: an optional sign, then "0" or digits without a
// leading zero.
bool IsPlainDecimal(const std::string& text) {
  const size_t digits = !text.empty() && (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (digits == text.size()) return false;
  for (size_t i = digits; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return text[digits] != '0' || text.size() == digits + 1;
}

}  // namespace

CLI::Validator FiniteNumber(double min, double max, bool exclude_min) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const std::string range = RangeText(min, max, -kInf, kInf, exclude_min);
  return CLI::Validator(
      [=](std::string& input) -> std::string {
        double value = 0;
        const bool ok = CLI::detail::lexical_cast(input, value) && std::isfinite(value) && value >= min &&
                        value <= max && !(exclude_min && value == min);
        return ok ? std::string() : absl::StrCat("expected a finite number", range, ", got '", input, "'");
      },
      "NUMBER" + range);
}

CLI::Validator Integer(int64_t min, int64_t max) {
  const std::string range =
      RangeText(min, max, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
  return CLI::Validator(
      [=](std::string& input) -> std::string {
        int64_t value = 0;
        const bool ok = IsPlainDecimal(input) && absl::SimpleAtoi(input, &value) && value >= min && value <= max;
        if (ok) return "";
        // "010", "+07", " 5": a number, but CLI11 would not read it as written.
        const bool not_plain = !IsPlainDecimal(input) && absl::SimpleAtoi(input, &value);
        return absl::StrCat("expected an integer", range, ", got '", input, "'",
                            not_plain ? " (write it in plain decimal, without a leading zero or space)" : "");
      },
      "INT" + range);
}

CLI::Validator NonEmptyPath() {
  return CLI::Validator(
      [](std::string& input) -> std::string { return input.empty() ? "expected a path, got an empty string" : ""; },
      "PATH");
}

}  // namespace srlm
