// Implementation of worker/loop/stop_signal.h.
#include "worker/loop/stop_signal.h"

#include <csignal>

namespace srlm {
namespace {

std::atomic<bool> g_stop_requested{false};
void OnStopSignal(int) { g_stop_requested = true; }

}  // namespace

std::atomic<bool>* InstallStopSignalHandlers() {
  static const bool installed = [] {
    std::signal(SIGTERM, OnStopSignal);
    std::signal(SIGUSR1, OnStopSignal);
    return true;
  }();
  (void)installed;
  return &g_stop_requested;
}

}  // namespace srlm
