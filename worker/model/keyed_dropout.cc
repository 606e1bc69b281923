// Implementation of worker/model/keyed_dropout.h.
#include "worker/model/keyed_dropout.h"

#include <mutex>

#include <ATen/Context.h>

namespace srlm {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A fresh generator of the device's kind, seeded: a copy of the device's default generator (so it
// is of the right implementation) reseeded, which leaves the default generator's stream untouched.
at::Generator SeededGenerator(const torch::Device& device, uint64_t seed) {
  at::Generator base = at::globalContext().defaultGenerator(device);
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(base.mutex());
    gen = base.clone();
  }
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

}  // namespace

torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutRows& rows, uint64_t site) {
  TORCH_CHECK(p >= 0 && p < 1, "dropout probability ", p, " is not in [0, 1)");
  if (p == 0) return x;
  TORCH_CHECK(x.dim() == 3, "keyed dropout wants (B,T,C), got ", x.sizes());
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  TORCH_CHECK(static_cast<int64_t>(rows.keys.size()) == B && static_cast<int64_t>(rows.lengths.size()) == B,
              "keyed dropout has ", rows.keys.size(), " keys and ", rows.lengths.size(), " lengths for ", B,
              " rows");
  // One float32 buffer, each row's real positions filled in place from its own generator (the
  // same values as a (length, C) draw: the view is contiguous), padding left at 0; one compare.
  torch::Tensor uniform = torch::zeros({B, T, C}, x.options().dtype(torch::kFloat32));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = rows.lengths[static_cast<size_t>(b)];
    TORCH_CHECK(length >= 0 && length <= T, "row ", b, " has length ", length, " in a batch of ", T, " positions");
    if (length == 0) continue;
    const uint64_t seed = Mix(Mix(rows.keys[static_cast<size_t>(b)]) ^ Mix(site)) >> 1;
    uniform[b].narrow(0, 0, length).uniform_(0, 1, SeededGenerator(x.device(), seed));
  }
  const torch::Tensor keep = uniform.ge(p);  // padding (0) is dropped: p > 0
  return (x * (1.0 / (1.0 - p))).masked_fill(keep.logical_not(), 0);
}

}  // namespace srlm
