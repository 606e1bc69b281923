// mkdir -p with plain POSIX calls (no std::filesystem: libtorch-linked code uses it too, and libtorch
// exports its own copy of std::filesystem's out-of-line functions).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace srlm {

// Makes `path` and its missing parents (mode 0755). An empty or existing path is fine (a file in the
// way fails where the folder is first used, with that use's message); a mkdir that fails is
// INTERNAL "mkdir P: <the OS's reason>".
absl::Status MakeDirs(const std::string& path);

}  // namespace srlm
