// Benchmark: keyed dropout (worker/model/keyed_dropout.h: one seeded generator and draw per row)
// against torch::dropout (one draw for the whole tensor from the global generator), forward and
// backward, side by side in turns on the same tensors, at the shapes of a training forward of the
// bench model (d_model 256) and of a larger one. Prints the time of each and the ratio.
//   dropout_bench [--threads 1 --rounds 5 --iterations 50 --p 0.1 --dtype float32|bfloat16]
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <limits>

#include "worker/model/keyed_dropout.h"

namespace {

// Mean seconds of one forward+backward of `dropout` on x over `iterations` passes.
double SecondsPerPass(const std::function<torch::Tensor(const torch::Tensor&)>& dropout, const torch::Tensor& x,
                   int iterations) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    torch::Tensor input = x.detach().requires_grad_(true);
    dropout(input).sum().backward();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyed dropout vs torch::dropout"};
  int threads = 1, rounds = 5, iterations = 50;
  double p = 0.1;
  std::string dtype_name = "float32";
  app.add_option("--threads", threads, "intra-op threads");
  app.add_option("--rounds", rounds, "alternating rounds; the best of each is reported");
  app.add_option("--iterations", iterations, "forward+backward passes per round");
  app.add_option("--p", p, "dropout probability");
  app.add_option("--dtype", dtype_name, "float32 | bfloat16");
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(threads);
  const torch::ScalarType dtype = dtype_name == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  std::printf("rows  positions  channels  keyed ms  torch::dropout ms  keyed/torch\n");
  struct Shape { int64_t rows, positions, channels; };
  for (const Shape& s : {Shape{16, 128, 256}, Shape{4, 512, 896}, Shape{32, 64, 256}}) {
    torch::manual_seed(1);
    const torch::Tensor x = torch::randn({s.rows, s.positions, s.channels}).to(dtype);
    srlm::DropoutRows rows;
    for (int64_t b = 0; b < s.rows; ++b) {
      rows.keys.push_back(static_cast<uint64_t>(1000 + b));
      rows.lengths.push_back(s.positions - (b % 4) * s.positions / 8);  // right padding, as batches have
    }
    double keyed = std::numeric_limits<double>::infinity(), plain = keyed;
    for (int round = 0; round < rounds; ++round) {
      keyed = std::min(keyed, SecondsPerPass([&](const torch::Tensor& t) { return srlm::KeyedDropout(t, p, rows, 3); },
                                          x, iterations));
      plain = std::min(plain, SecondsPerPass([&](const torch::Tensor& t) { return torch::dropout(t, p, true); }, x,
                                          iterations));
    }
    std::printf("%4lld  %9lld  %8lld  %8.3f  %17.3f  %11.2f\n", static_cast<long long>(s.rows),
                static_cast<long long>(s.positions), static_cast<long long>(s.channels), keyed * 1e3, plain * 1e3,
                keyed / plain);
  }
  return 0;
}
