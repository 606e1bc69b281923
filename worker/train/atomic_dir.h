// Atomic checkpoint directories: the contents are written into a temporary sibling
// (".<name>.tmp-<pid>"), every file and the folder are fsynced, then the folder is renamed to its
// final name (swapped with an existing one in one step, where the file system can) and the parent
// fsynced. A crash at any point leaves either the previous state or the
// whole new checkpoint; readers only look at final names ("checkpoint-<step>"), never temporaries.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/make_dirs.h"  // MakeDirs, which the users of these functions call too

namespace srlm {

// Writes `final_dir` atomically: `write_contents(tmp_dir)` fills the temporary folder. An existing
// `final_dir` is replaced. Leftover temporaries of this name from crashed writers are removed, and so
// is the temporary when `write_contents` fails.
absl::Status WriteDirectoryAtomically(const std::string& final_dir,
                                      const std::function<absl::Status(const std::string& tmp_dir)>& write_contents);

// Fails now with the error WriteDirectoryAtomically(final_dir) would give after the work: makes the
// parent folder if needed, then creates and removes a probe folder in it. For checking before a
// long training that its checkpoint can be written.
absl::Status CheckDirectoryWritable(const std::string& final_dir);

// The name of the checkpoint of `step` under `out_dir`: "<out_dir>/checkpoint-<step>".
std::string CheckpointDir(const std::string& out_dir, int64_t step);

// The whole checkpoint with the highest step under `out_dir` (one holding `marker_file`), or
// nullopt when there is none (also when `out_dir` does not exist; one that cannot be listed is an
// error). Temporaries are ignored.
absl::StatusOr<std::optional<int64_t>> FindLatestCheckpointStep(const std::string& out_dir,
                                                                 const std::string& marker_file);

// fsyncs a file or a folder.
absl::Status FsyncPath(const std::string& path);

// Removes a file or a folder tree; missing paths are fine. Best effort.
void RemoveTree(const std::string& path);

}  // namespace srlm
