// A bearer-token file, read by one rule for the coordinator (its own token) and for every client
// (srlmctl, srlm-worker run): surrounding white space stripped, and a file with nothing else is
// refused, as a client that sent no token would fail every call later with UNAUTHENTICATED.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace srlm {

// The token in `path`; NOT_FOUND "cannot read token file PATH", INVALID_ARGUMENT "token file PATH is
// empty".
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace srlm
