// Implementation of worker/loop/stop_signal.h.
#include "worker/loop/stop_signal.h"

#include <pthread.h>

#include <csignal>
#include <thread>

namespace srlm {
namespace {

std::atomic<bool> g_stop_requested{false};

// The stop signals are never delivered asynchronously: a handler that interrupts a thread runs on
// that thread's stack, and some JIT kernels point rsp into the heap while they run (oneDNN's AVX-512
// f32 GEMM, jit_avx512_common_gemm_f32, which PackedLinear reaches through mkldnn::_linear_pointwise;
// oneDNN issue 4845, fixed after v3.10). A SIGUSR1 that landed in one wrote its signal frame into the
// heap: `free(): invalid pointer` or `corrupted size vs. prev_size` a moment later, in the middle of a
// GENERATE shard. Instead every thread blocks them (threads inherit the mask of the thread that
// starts them) and one thread takes them synchronously with sigwait.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  return set;
}

void WaitForStopSignals() {
  const sigset_t set = StopSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) == 0) g_stop_requested = true;
  }
}

void OnStopSignal(int) { g_stop_requested = true; }

// A forked child (an exec'd helper, or MPI's singleton daemon) starts with the signals unblocked,
// as it would have without this module, instead of inheriting a block no thread of it waits on.
void UnblockStopSignalsInChild() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

}  // namespace

std::atomic<bool>* InstallStopSignalHandlers() {
  static const bool installed = [] {
    // A thread that already ran before this call keeps its mask; should the kernel pick it, the
    // handler still sets the flag (the old behaviour). Callers install first, before any thread starts.
    std::signal(SIGTERM, OnStopSignal);
    std::signal(SIGUSR1, OnStopSignal);
    const sigset_t set = StopSignals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    pthread_atfork(nullptr, nullptr, UnblockStopSignalsInChild);
    std::thread(WaitForStopSignals).detach();  // started after the block: inherits it, as sigwait needs
    return true;
  }();
  (void)installed;
  return &g_stop_requested;
}

}  // namespace srlm
