// Tests worker/loop/stop_signal.h: SIGTERM and SIGUSR1 set the flag, taken by the one sigwait thread;
// every thread started after the install has them blocked, so no handler ever runs on a working
// thread (worker/run/stop_signal_torch_test.cc: why that matters). Each case runs in a child process
// of its own: the install is process-wide and once per process.
#include "worker/loop/stop_signal.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

namespace srlm {
namespace {

bool WaitForFlag(const std::atomic<bool>& flag) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!flag.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return flag.load();
}

bool BlocksStopSignals() {
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, SIGTERM) == 1 && sigismember(&mask, SIGUSR1) == 1;
}

// Exit codes of the child: 0 ok, 2 a thread left them unblocked, 3 the flag stayed down.
[[noreturn]] void InstallThenSignal(int sig) {
  std::atomic<bool>* flag = InstallStopSignalHandlers();
  if (flag->load()) std::_Exit(4);
  bool blocked_in_new_thread = false;
  std::thread([&] { blocked_in_new_thread = BlocksStopSignals(); }).join();
  if (!BlocksStopSignals() || !blocked_in_new_thread) std::_Exit(2);
  if (InstallStopSignalHandlers() != flag) std::_Exit(5);  // once per process
  ::kill(::getpid(), sig);  // process-directed, as mpirun and srun send it
  std::_Exit(WaitForFlag(*flag) ? 0 : 3);
}

TEST(StopSignalDeathTest, SigusrOneSetsTheFlagAndNoThreadTakesItAsynchronously) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(InstallThenSignal(SIGUSR1), ::testing::ExitedWithCode(0), "");
}

TEST(StopSignalDeathTest, SigtermSetsTheFlag) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(InstallThenSignal(SIGTERM), ::testing::ExitedWithCode(0), "");
}

// Exit codes: 0 ok, 2 the forked child still had them blocked, 6 fork failed.
[[noreturn]] void InstallThenFork() {
  InstallStopSignalHandlers();
  const pid_t child = ::fork();
  if (child < 0) std::_Exit(6);
  if (child == 0) std::_Exit(BlocksStopSignals() ? 2 : 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::_Exit(WIFEXITED(status) ? WEXITSTATUS(status) : 7);
}

// A forked child (and what it execs) gets the signals back, instead of a block no thread of its own
// waits on (a process it started could not be stopped with SIGTERM).
TEST(StopSignalDeathTest, AForkedChildHasTheSignalsUnblocked) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(InstallThenFork(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace srlm
