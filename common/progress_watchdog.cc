// Implementation of common/progress_watchdog.h.
#include "common/progress_watchdog.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace srlm {

ProgressWatchdog::Clock::duration ProgressWatchdog::ToDuration(double seconds) {
  // Saturates at kLongestWindow: the clock counts int64 nanoseconds, and 1e10 s (past about 292
  // years) converted to a negative window that fired at once; NaN is no window either.
  constexpr double kLongest = std::chrono::duration<double>(kLongestWindow).count();
  if (!(seconds < kLongest)) return std::chrono::duration_cast<Clock::duration>(kLongestWindow);
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, seconds)));
}

ProgressWatchdog::ProgressWatchdog(double stall_seconds, StallHandler on_stall)
    : stall_seconds_(stall_seconds), on_stall_(std::move(on_stall)), last_progress_(Clock::now()) {
  if (stall_seconds_ > 0 && on_stall_) thread_ = std::thread([this] { Watch(); });
}

ProgressWatchdog::~ProgressWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressWatchdog::Progress(std::string activity) { Mark(std::move(activity), 0); }

void ProgressWatchdog::WaitForOthers(std::string activity) {
  Mark(std::move(activity), std::min(0.5 * stall_seconds_, 60.0));
}

void ProgressWatchdog::Mark(std::string activity, double grace_seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  last_progress_ = Clock::now();
  grace_ = ToDuration(grace_seconds);
  activity_ = std::move(activity);
}

bool ProgressWatchdog::fired() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fired_;
}

ProgressWatchdog::Snapshot ProgressWatchdog::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {activity_, std::chrono::duration<double>(Clock::now() - last_progress_).count()};
}

void ProgressWatchdog::Watch() {
  const Clock::duration window = ToDuration(stall_seconds_);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto deadline = last_progress_ + window + grace_;
    if (Clock::now() < deadline) {
      cv_.wait_until(lock, deadline, [this] { return stop_; });
      // Woken long after the deadline: the whole process was stopped (SIGSTOP, a suspended Slurm
      // job), its work with it; that is no stall. Start the window again from now.
      if (Clock::now() - deadline > kSuspendedSlack) last_progress_ = Clock::now();
      continue;  // progress may have moved the deadline meanwhile
    }
    fired_ = true;
    const double silent = std::chrono::duration<double>(Clock::now() - last_progress_).count();
    const std::string description =
        absl::StrCat("no progress for ", absl::StrFormat("%.1f", silent), " s (limit ", stall_seconds_,
                     grace_.count() > 0 ? " s and the grace of a wait for the other ranks" : " s", ") while ",
                     activity_);
    lock.unlock();
    on_stall_(description);  // in production this does not return
    return;
  }
}

void HangIfTestStallRank(int rank, const char* what) {
  const char* stall_rank = std::getenv("SRLM_TEST_STALL_RANK");
  if (stall_rank == nullptr || std::atoi(stall_rank) != rank) return;
  SRLM_LOG(WARNING) << "SRLM_TEST_STALL_RANK: this rank's " << what << " hangs on purpose";
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace srlm
