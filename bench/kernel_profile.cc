// Kineto profile of a benchmark region, summarised by kernel (bench/kernel_profile.h).
#include "bench/kernel_profile.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace srlm::bench {
namespace {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;

long long NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::set<ActivityType> Activities(bool cuda) {
  std::set<ActivityType> activities = {ActivityType::CPU};
  if (cuda) activities.insert(ActivityType::CUDA);
  return activities;
}

torch::profiler::impl::ProfilerConfig Config() {
  return torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::KINETO);
}

// A kernel's kind, from the names that cuBLAS, FlashAttention and ATen give their kernels.
std::string KindOf(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  for (const char* s : {"gemm", "nvjet", "cutlass", "xmma", "cublas"})
    if (absl::StrContains(n, s)) return "matrix products";
  for (const char* s : {"flash", "fmha", "attention"})
    if (absl::StrContains(n, s)) return "attention";
  if (absl::StartsWith(n, "memcpy") || absl::StartsWith(n, "memset")) return "copies and fills";
  if (absl::StrContains(n, "multi_tensor") || absl::StrContains(n, "foreach")) return "multi-tensor (optimizer)";
  if (absl::StrContains(n, "reduce")) return "reductions";
  return "elementwise and other";
}

struct Total {
  double ns = 0;
  long long calls = 0;
};

void Count(std::map<std::string, Total>& totals, const std::string& key, double ns) {
  Total& t = totals[key];
  t.ns += ns;
  t.calls++;
}

// Longest first; names cut to fit a line.
void PrintTable(const char* title, const std::map<std::string, Total>& totals, double denominator_ns, int rows,
                int steps) {
  std::vector<std::pair<std::string, Total>> sorted(totals.begin(), totals.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
  std::printf("%-90s %10s %7s %9s\n", title, "ms/step", "share", "calls/step");
  for (int i = 0; i < rows && i < static_cast<int>(sorted.size()); ++i) {
    const auto& [name, t] = sorted[i];
    std::printf("%-90.90s %10.2f %6.1f%% %9.0f\n", name.c_str(), t.ns / 1e6 / steps, 100 * t.ns / denominator_ns,
                static_cast<double>(t.calls) / steps);
  }
}

}  // namespace

KernelProfile::KernelProfile(bool cuda) {
  profiler::prepareProfiler(Config(), Activities(cuda));
  profiler::enableProfiler(Config(), Activities(cuda));
  start_ns_ = NowNs();
}

void KernelProfile::StopAndPrint(int top, int steps) {
  steps = std::max(steps, 1);
  std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  const double wall_ns = static_cast<double>(NowNs() - start_ns_);
  std::map<std::string, Total> kernels, kinds, cpu_ops;
  std::vector<std::pair<uint64_t, uint64_t>> busy;  // GPU intervals, merged below
  double kernel_ns = 0;
  for (const profiler::KinetoEvent& e : result->events()) {
    if (e.deviceType() == c10::DeviceType::CUDA) {
      Count(kernels, e.name(), e.durationNs());
      Count(kinds, KindOf(e.name()), e.durationNs());
      kernel_ns += e.durationNs();
      busy.emplace_back(e.startNs(), e.endNs());
    } else if (e.deviceType() == c10::DeviceType::CPU && absl::StartsWith(e.name(), "aten::")) {
      Count(cpu_ops, e.name(), e.durationNs());
    }
  }
  if (kernels.empty()) {
    std::printf("profile: no GPU kernels recorded; ATen operators by inclusive time (nested operators count in "
                "their callers too), %.1f ms per step of wall time\n",
                wall_ns / 1e6 / steps);
    PrintTable("ATen operator", cpu_ops, wall_ns, top, steps);
    return;
  }
  std::sort(busy.begin(), busy.end());
  double busy_ns = 0;
  uint64_t open_start = busy[0].first, open_end = busy[0].second;
  for (const auto& [start, end] : busy) {
    if (start > open_end) {
      busy_ns += static_cast<double>(open_end - open_start);
      open_start = start;
    }
    open_end = std::max(open_end, end);
  }
  busy_ns += static_cast<double>(open_end - open_start);
  std::printf("profile: %.1f ms per step of wall time; the GPU busy %.1f ms (%.0f%%), kernels and copies %.1f ms, "
              "%.0f of them per step\n",
              wall_ns / 1e6 / steps, busy_ns / 1e6 / steps, 100 * busy_ns / wall_ns, kernel_ns / 1e6 / steps,
              static_cast<double>(busy.size()) / steps);
  PrintTable("kind (shares of the kernels' time)", kinds, kernel_ns, top, steps);
  PrintTable("kernel", kernels, kernel_ns, top, steps);
}

}  // namespace srlm::bench
