// Whole-file replacement for outputs and small state files (JSONL outputs, exported pairs, the
// coordinator's port file, checkpoint manifests): the bytes go to a temporary file beside the
// target, are fsynced, and the temporary is renamed over the target, so a failure at any point
// leaves the old contents (or no file). The target is the file `path` names through symbolic links
// (the link stays, its target is replaced); a `path` that exists and is not a regular file (a
// device or pipe: /dev/stdout) is written directly. POSIX calls only (no std::filesystem: this is
// linked into libtorch programs, whose copy of it misbehaves).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace srlm {

// Takes the next bytes of the file; an error ends the write.
using ByteSink = std::function<absl::Status(std::string_view bytes)>;

// Replaces the contents of `path` with what `produce` gives its sink, as above. Errors name `path`
// and the OS's reason.
absl::Status WriteFileAtomically(const std::string& path, const std::function<absl::Status(const ByteSink&)>& produce);
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Fails now, with the OS's reason, where WriteFileAtomically(path) would fail later: `path` names a
// folder, or its folder is missing or not writable. Writes nothing (a probe file is made and removed).
absl::Status CheckFileWritable(const std::string& path);

}  // namespace srlm
