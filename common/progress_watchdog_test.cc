// Tests of common/progress_watchdog.h with real threads and short windows: the handler runs once,
// after the window without progress, naming the last activity; steady progress never trips it.
#include "common/progress_watchdog.h"

#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <thread>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace srlm {
namespace {

using Clock = std::chrono::steady_clock;

struct Calls {
  std::mutex mu;
  std::vector<std::string> descriptions;
  Clock::time_point first;
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return descriptions.size();
  }
};

ProgressWatchdog::StallHandler Record(Calls& calls) {
  return [&calls](const std::string& d) {
    std::lock_guard<std::mutex> lock(calls.mu);
    if (calls.descriptions.empty()) calls.first = Clock::now();
    calls.descriptions.push_back(d);
  };
}

TEST(ProgressWatchdogTest, FiresOnceAfterTheWindowNamingTheLastActivity) {
  Calls calls;
  const auto start = Clock::now();
  ProgressWatchdog watchdog(0.3, Record(calls));
  watchdog.Progress("loading model /m");
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // four windows
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(watchdog.fired());
  const double after = std::chrono::duration<double>(calls.first - start).count();
  EXPECT_GE(after, 0.3);
  EXPECT_LT(after, 1.0);
  EXPECT_NE(calls.descriptions[0].find("while loading model /m"), std::string::npos) << calls.descriptions[0];
  EXPECT_NE(calls.descriptions[0].find("limit 0.3 s"), std::string::npos) << calls.descriptions[0];
}

// A rank that only waits for the others gets half a window more, so a rank that is itself stuck,
// whose window began at the same time, reports first (naming what it is stuck in).
TEST(ProgressWatchdogTest, WaitingForOtherRanksGetsAGraceOfHalfTheWindow) {
  Calls stuck_calls, waiting_calls;
  const auto start = Clock::now();
  ProgressWatchdog stuck(1.0, Record(stuck_calls)), waiting(1.0, Record(waiting_calls));
  waiting.WaitForOthers("setting up the trainer (collective)");
  stuck.Progress("loading model /m");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(stuck_calls.size(), 1u);
  ASSERT_EQ(waiting_calls.size(), 1u);
  EXPECT_LT(stuck_calls.first, waiting_calls.first);  // 1.0 s against 1.5 s
  const double waited = std::chrono::duration<double>(waiting_calls.first - start).count();
  EXPECT_GE(waited, 1.5);
  EXPECT_NE(waiting_calls.descriptions[0].find("grace of a wait for the other ranks) while setting up the trainer"),
            std::string::npos)
      << waiting_calls.descriptions[0];
  // Progress ends the grace.
  Calls calls;
  ProgressWatchdog watchdog(0.3, Record(calls));
  watchdog.WaitForOthers("a collective");
  watchdog.Progress("step 1");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls.descriptions[0].find("(limit 0.3 s) while step 1"), std::string::npos) << calls.descriptions[0];
}

TEST(ProgressWatchdogTest, SteadyProgressNeverFires) {
  Calls calls;
  ProgressWatchdog watchdog(0.3, Record(calls));
  for (int i = 0; i < 30; ++i) {  // 1.5 s, five windows, progress every 50 ms
    watchdog.Progress("step " + std::to_string(i));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(calls.size(), 0u);
  EXPECT_FALSE(watchdog.fired());
  // Then silence: it fires, and names the last step.
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_NE(calls.descriptions[0].find("while step 29"), std::string::npos) << calls.descriptions[0];
}

TEST(ProgressWatchdogTest, CurrentNamesTheActivityAndItsAge) {
  ProgressWatchdog watchdog(0, nullptr);  // off: still tracks what the worker does, for heartbeats
  watchdog.Progress("loading model /m");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ProgressWatchdog::Snapshot now = watchdog.Current();
  EXPECT_EQ(now.activity, "loading model /m");
  EXPECT_GE(now.seconds_since_progress, 0.2);
  EXPECT_LT(now.seconds_since_progress, 2.0);
  watchdog.Progress("step 1");
  EXPECT_LT(watchdog.Current().seconds_since_progress, 0.1);
}

// A process stopped (SIGSTOP: a suspended Slurm job) for longer than the window is not stalled: its
// work was stopped with it. The child makes progress every 50 ms; the parent stops it for 7 windows.
// Before, the watchdog thread woke first after SIGCONT and fired.
TEST(ProgressWatchdogTest, ASuspendedProcessIsNotAStalledOne) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(fds[0]);
    ProgressWatchdog watchdog(0.5, [&](const std::string&) {
      (void)!::write(fds[1], "F", 1);
      ::_exit(1);
    });
    for (int i = 0; i < 40; ++i) {  // 2 s of its own time
      watchdog.Progress("step " + std::to_string(i));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    (void)!::write(fds[1], "O", 1);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::kill(child, SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  ASSERT_EQ(::kill(child, SIGCONT), 0);
  char verdict = 0;
  ASSERT_EQ(::read(fds[0], &verdict, 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(fds[0]);
  EXPECT_EQ(verdict, 'O') << "the watchdog fired after the process was resumed";
}

// 1e10 s is past the clock's int64 nanoseconds (about 292 years): the window wrapped negative and
// the watchdog fired at once (srlm-worker sft --stall-seconds 1e10 ended with exit code 75). A
// window that long, up to infinity, waits kLongestWindow (100 years).
TEST(ProgressWatchdogTest, AnEnormousWindowSaturatesInsteadOfFiringAtOnce) {
  for (double seconds : {1e10, 1e300, std::numeric_limits<double>::infinity()}) {
    Calls calls;
    {
      ProgressWatchdog watchdog(seconds, Record(calls));
      watchdog.Progress("training");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      watchdog.WaitForOthers("a collective");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      EXPECT_FALSE(watchdog.fired()) << seconds;
    }
    EXPECT_EQ(calls.size(), 0u) << seconds;
  }
}

TEST(ProgressWatchdogTest, ZeroSecondsOrNoHandlerIsOff) {
  Calls calls;
  {
    ProgressWatchdog off(0, Record(calls));
    ProgressWatchdog no_handler(0.05, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(off.fired());
    EXPECT_FALSE(no_handler.fired());
  }
  EXPECT_EQ(calls.size(), 0u);
}

TEST(ProgressWatchdogTest, DestroyedBeforeTheWindowEndsQuietlyAndAtOnce) {
  Calls calls;
  const auto start = Clock::now();
  { ProgressWatchdog watchdog(30, Record(calls)); }
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 1.0);
  EXPECT_EQ(calls.size(), 0u);
}

}  // namespace
}  // namespace srlm
