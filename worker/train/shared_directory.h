// The check that a checkpoint folder is shared by every rank. Rank 0 writes the checkpoints and the
// other ranks read them (a resume, the loop's next model); on a node-local path (a /tmp on each host,
// say) they would not find them, or, worse, find another rank's older ones. The check runs once, at
// start, before any work that a failure would throw away.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/train/communicator.h"

namespace srlm {

// How long a rank looks for rank 0's probe before it concludes that it cannot see the folder.
inline constexpr double kSharedDirectoryWaitSeconds = 10;

// Collective. Rank 0 makes `dir` (and its parents) and writes a probe file with a random name in it;
// the name goes to every rank (an all-reduce), and each rank looks for the file for up to
// `wait_seconds`; then rank 0 removes it. Fails on every rank when `dir` cannot be made or written
// (the error names the path) or when some rank could not see the probe (FailedPrecondition,
// naming those ranks and `what`, the flag that chose the folder). Alone, it checks that `dir` can be
// written.
absl::Status CheckDirectorySharedByRanks(const std::string& dir, const std::string& what, Communicator& comm,
                                         double wait_seconds = kSharedDirectoryWaitSeconds);

// Collective. The checkpoint under `out_dir` that every rank resumes from: the newest whole one
// (holding `marker_file`) that rank 0 sees, or nullopt when it sees none. Each other rank waits up to
// `wait_seconds` for that same checkpoint to show up; one that never does fails every rank
// (FailedPrecondition naming the ranks): a rank resuming from another checkpoint, or from none, would
// train other steps with its own optimizer state.
absl::StatusOr<std::optional<std::string>> AgreeOnResumeCheckpoint(
    const std::string& out_dir, const std::string& marker_file, Communicator& comm,
    double wait_seconds = kSharedDirectoryWaitSeconds);

}  // namespace srlm
