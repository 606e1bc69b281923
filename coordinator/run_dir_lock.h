// An exclusive lock on a run directory, held while one coordinator serves the run: a second
// srlm-coordinator started on the same directory is refused, instead of serving the run beside
// the first (two coordinators would both hand out and accept work). The lock is flock(2) on
// RUN_DIR/lock, which also holds the holder's pid and host for the error message; the kernel drops
// it when the holder exits, however it exits, so a crash never leaves the directory locked.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace srlm::coordinator {

class RunDirLock {
 public:
  // FailedPrecondition naming the holder when another process (or another RunDirLock in this
  // one) holds the directory.
  static absl::StatusOr<std::unique_ptr<RunDirLock>> Acquire(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  explicit RunDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace srlm::coordinator
