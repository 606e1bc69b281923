// SHA-256 manifests of checkpoint files: `checksums.sha256` in the format of coreutils' sha256sum
// ("<64 hex digits>  <file name>" per line, so `sha256sum -c checksums.sha256` checks it by hand).
// SaveModel writes one for the files it writes; LoadModel verifies it, so bytes that changed after a
// checkpoint was written (a storage fault, a partial copy, an overwrite) are reported instead of
// loaded. A directory without a manifest (a model from elsewhere) loads as before. No libtorch.
//
// A process verifies each file's bytes once: a verified file whose identity and times are unchanged
// (device, inode, size, mtime and ctime to the nanosecond; ctime moves on every write and cannot be
// set back by hand) is not read again. A worker loads each new checkpoint twice (to evaluate it, then
// to train from it in the next iteration), and the second load skips the second full read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

inline constexpr char kChecksumManifest[] = "checksums.sha256";

// The SHA-256 of the file's bytes, as 64 lowercase hex digits.
absl::StatusOr<std::string> Sha256File(const std::string& path);

// Writes `dir`/checksums.sha256 for `files` (names inside `dir`), replacing it atomically.
absl::Status WriteChecksumManifest(const std::string& dir, const std::vector<std::string>& files);

// Checks every file `dir`/checksums.sha256 lists; returns how many (0 when there is no manifest).
// A missing or changed file is DataLoss naming it; a manifest path that cannot be looked up (`dir`
// is a file: "Not a directory") is an error with the OS's reason.
absl::StatusOr<int> VerifyChecksumManifest(const std::string& dir);

// How many files this process has hashed to verify a manifest (the ones the cache could not answer).
int64_t FilesHashedForVerification();

}  // namespace srlm
