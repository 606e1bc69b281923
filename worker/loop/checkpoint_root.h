// Which run a checkpoint root belongs to. A root holds one run's checkpoints (`iter-<t>`), and
// names that run in a marker file, `<root>/srlm-run-id` (one line: the coordinator's run id),
// written the first time one of the run's workers registers. Two runs on one root replaced each
// other's committed models without a word (a checkpoint is swapped in over any folder of its name);
// now a worker of the second run is refused at registration, before it takes any work.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace srlm {

// The marker's name inside the root.
inline constexpr char kCheckpointRootMarker[] = "srlm-run-id";

// What ClaimCheckpointRoot found.
enum class CheckpointRootClaim {
  kNew,      // no marker and no checkpoints: this caller wrote the marker
  kOurs,     // the marker names this run (written before, or just now by a rank that won a race)
  kAdopted,  // iter-* folders but no marker (from an older build): this caller wrote the marker
};

// Makes `root` and its missing parents, then claims it for `run_id` (not empty, one line). The
// marker is written to a temporary file and hard-linked to its name, so the first writer wins with
// the whole line; then every caller reads it back and compares. Safe to call at once from every
// rank, threads or processes, on one host or on several sharing the root. An adopted root is
// logged as a WARNING (whose it is cannot be told; refusing it would block resuming old runs).
// Errors: FailedPrecondition when the marker names another run (the message names the root, both
// run ids and the fix: a --checkpoint-root of its own) or is empty; InvalidArgument for an empty
// root or a bad run id; Internal, naming the path, when the root cannot be made, read or written.
absl::StatusOr<CheckpointRootClaim> ClaimCheckpointRoot(const std::string& root,
                                                        const std::string& run_id);

}  // namespace srlm
