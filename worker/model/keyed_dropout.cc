// Implementation of worker/model/keyed_dropout.h.
#include "worker/model/keyed_dropout.h"

#include <mutex>

#include <ATen/Context.h>

#include "common/split_mix64.h"

namespace srlm {
namespace {

// A generator of the device's kind of its own: a copy of the device's default generator (so it is of
// the right implementation), which the caller reseeds, leaving the default generator's stream alone.
at::Generator GeneratorLike(const torch::Device& device) {
  at::Generator base = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(base.mutex());
  return base.clone();
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
  at::Generator generator = GeneratorLike(x.device());  // reseeding resets its whole state, per row
  for (int64_t b = 0; b < B; ++b) {
    const int64_t length = rows.lengths[static_cast<size_t>(b)];
    TORCH_CHECK(length >= 0 && length <= T, "row ", b, " has length ", length, " in a batch of ", T, " positions");
    if (length == 0) continue;
    const uint64_t seed = SplitMix64(SplitMix64(rows.keys[static_cast<size_t>(b)]) ^ SplitMix64(site)) >> 1;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(seed);
    }
    uniform[b].narrow(0, 0, length).uniform_(0, 1, generator);
  }
  const torch::Tensor keep = uniform.ge(p);  // padding (0) is dropped: p > 0
  return (x * (1.0 / (1.0 - p))).masked_fill(keep.logical_not(), 0);
}

}  // namespace srlm
