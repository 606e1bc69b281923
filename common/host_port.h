// Checks a gRPC address as srlm's command lines take it: HOST:PORT (HOST a name, an IPv4 address or
// a bracketed IPv6 one) or a unix: / unix-abstract: socket target. Pure, header-only.
#pragma once

#include <string>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace srlm {

// True for a unix socket target, or HOST:PORT with PORT in [min_port, 65535]. gRPC itself would
// take a larger port modulo 65536 (99999 reached port 34463) and a missing one as 443.
inline bool IsHostPortAddress(const std::string& address, int min_port) {
  if (address.rfind("unix:", 0) == 0 || address.rfind("unix-abstract:", 0) == 0) return true;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const absl::string_view digits = absl::string_view(address).substr(colon + 1);
  int port = 0;
  return !digits.empty() && digits.size() <= 5 && absl::c_all_of(digits, absl::ascii_isdigit) &&
         absl::SimpleAtoi(digits, &port) && port >= min_port && port <= 65535;
}

}  // namespace srlm
