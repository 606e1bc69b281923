// Keyed dropout: a dropout whose mask for a batch row is a function of that row's key, its
// position in the sequence and the dropout site alone. The rest of the batch, how long the batch
// is padded, and where the row sits in it make no difference, so a training step drops the same
// units of each example however the global batch is split into ranks and micro-batches (plain
// dropout draws one mask for the whole micro-batch from the global generator).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace srlm {

// The rows of one training forward pass: a key per row (the trainer derives it from the seed, the
// step, the example and which of its sequences the row holds) and the row's real length; the row's
// positions past its length are right padding.
struct DropoutRows {
  std::vector<uint64_t> keys;
  std::vector<int64_t> lengths;
};

// x (B,T,C) with B == rows.keys.size() == rows.lengths.size() and each length <= T: every element
// of row b at a position below lengths[b] is kept with probability 1-p and then scaled by 1/(1-p),
// or zeroed; padding positions are zeroed. The uniform draws of row b come from a generator on x's
// device seeded by (keys[b], site), in the row's (position, channel) order. On CUDA the values of a
// draw depend on the GPU model as well (its launch grid), so masks are the same for a given device
// type; the CPU generator keeps 32 bits of the seed. p in [0, 1); p == 0
// returns x. Differentiable in x. Throws c10::Error on shapes that do not match.
torch::Tensor KeyedDropout(const torch::Tensor& x, double p, const DropoutRows& rows, uint64_t site);

}  // namespace srlm
