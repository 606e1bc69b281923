// Ends a worker whose work has stopped moving. In `srlm-worker run` the heartbeat thread keeps a
// worker's leases alive for as long as its process lives, so a rank stuck in its work (a model load
// from a hung file system, a GPU kernel or a collective that never returns) would hold its shard, and
// the whole job would wait for it, for ever; `sft` and `dpo` under mpirun would hang the same way in
// a collective. The work thread calls Progress() at every unit of work (a coordinator call, a model
// load, a batch of sampling, a training step); when none comes for `stall_seconds`, the watchdog's
// own thread calls `on_stall` once, with what the worker was last doing. The commands end the whole
// job there (mpi::AbortStalledJob, exit code 75), so that a restart resumes (docs/OPERATIONS.md).
// No libtorch, no MPI.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace srlm {

class ProgressWatchdog {
 public:
  using StallHandler = std::function<void(const std::string& description)>;
  // The longest window: a larger stall_seconds (up to infinity) waits this long, in effect never.
  static constexpr std::chrono::hours kLongestWindow{24 * 365 * 100};  // 100 years
  // stall_seconds <= 0 or no handler: disabled (no thread, Progress() only records the activity).
  ProgressWatchdog(double stall_seconds, StallHandler on_stall);
  ~ProgressWatchdog();
  ProgressWatchdog(const ProgressWatchdog&) = delete;
  ProgressWatchdog& operator=(const ProgressWatchdog&) = delete;

  // The worker moved on and is now doing `activity` (named in the stall message).
  void Progress(std::string activity);
  // The worker moved on and now only waits for the other ranks (a collective). Its window gets a
  // grace of half the limit, at most 60 s: when another rank is itself stuck, with a window that
  // began at about the same time, that rank reports first and names what it is stuck in, instead
  // of this one naming its wait.
  void WaitForOthers(std::string activity);
  // Whether on_stall has been called.
  bool fired() const;
  // The last activity and the seconds since the last Progress() (the heartbeat reports both).
  struct Snapshot {
    std::string activity;
    double seconds_since_progress = 0;
  };
  Snapshot Current() const;

 private:
  using Clock = std::chrono::steady_clock;
  // A wake-up this much later than asked for means the process was suspended.
  static constexpr std::chrono::seconds kSuspendedSlack{2};
  // `seconds` (>= 0) as the clock's duration, at most kLongestWindow.
  static Clock::duration ToDuration(double seconds);
  void Watch();
  // Progress: now doing `activity`, with `grace_seconds` beyond the limit.
  void Mark(std::string activity, double grace_seconds);

  const double stall_seconds_;
  const StallHandler on_stall_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Clock::time_point last_progress_;
  Clock::duration grace_{0};  // WaitForOthers' extra time for the current activity
  std::string activity_ = "starting";
  bool fired_ = false;
  bool stop_ = false;
  std::thread thread_;
};

// Test hook of the watchdog's process tests: when SRLM_TEST_STALL_RANK names `rank`, logs that this
// rank's `what` hangs on purpose and sleeps for ever (as on a hung file system), else returns.
void HangIfTestStallRank(int rank, const char* what);

}  // namespace srlm
