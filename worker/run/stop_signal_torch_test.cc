// The stop signal during inference (the GENERATE crash): with the stop handlers installed as
// `srlm-worker run` installs them, SIGUSR1 sent to the process again and again while PackedLinear
// runs oneDNN's packed f32 matmul must leave the heap and the results intact. Before the signals were
// blocked (worker/loop/stop_signal.cc), the handler ran on the working thread, and oneDNN's AVX-512
// GEMM kernel (rsp pointed into its heap workspace; oneDNN issue 4845, in libtorch's oneDNN 3.10)
// had the signal frame written into the heap: glibc aborted within a second ("corrupted size vs.
// prev_size", "free(): invalid pointer"). On a CPU without AVX-512 the test passes either way.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <torch/torch.h>

#include "worker/loop/stop_signal.h"
#include "worker/model/packed_linear.h"

namespace srlm {
namespace {

// Exit codes of the child: 0 ok, 2 a wrong result, 3 the flag stayed down, 4 no packed path,
// 5 an exception.
[[noreturn]] void PackedMatmulsUnderSignals() {
  std::atomic<bool>* stop = InstallStopSignalHandlers();
  torch::manual_seed(0);
  const auto w = torch::randn({384, 128});  // an ordinary tensor, as a model's weight (it has a version)
  c10::InferenceMode inference;  // as generation runs
  PackedLinear packed;
  std::atomic<bool> done{false};
  std::thread sender([&] {
    while (!done.load()) {
      ::kill(::getpid(), SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  });
  int code = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  try {
    while (code == 0 && std::chrono::steady_clock::now() < until) {
      for (int64_t rows : {1, 3, 16, 48, 130}) {
        const auto x = torch::randn({rows, 128});
        const auto got = packed.Forward(x, w, std::nullopt);
        if (!packed.last_was_packed()) code = 4;
        if (!torch::allclose(got, at::linear(x, w), 1e-4, 1e-4)) code = 2;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    code = 5;
  }
  done = true;
  sender.join();
  if (code == 0 && !stop->load()) code = 3;
  std::_Exit(code);
}

TEST(StopSignalTorchDeathTest, SignalsDuringPackedMatmulsLeaveTheHeapIntact) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(PackedMatmulsUnderSignals(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace srlm
