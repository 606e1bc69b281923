// The bearer token that every coordinator RPC but health must carry. Resolution order: the
// --token-file, then $SRLM_TOKEN, then <run-dir>/token (generated with 256 random bits, mode 0600,
// on first use, for clients on the same file system to read).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/token_file.h"  // ReadTokenFile

namespace srlm::coordinator {

// The server's token; `generated` (optional) tells whether the run directory's file was written.
absl::StatusOr<std::string> ResolveServerToken(const std::string& token_file, const std::string& run_dir,
                                               bool* generated = nullptr);
// Equality that takes the same time wherever the strings first differ.
bool TokensEqual(const std::string& a, const std::string& b);

}  // namespace srlm::coordinator
