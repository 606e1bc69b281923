// Next-token sampling from a batch of logits: greedy (temperature 0), temperature, top-k, top-p.
// Each row draws from its own random stream, so a sequence's sample depends only on its seed and
// its logits. Not thread-safe per TokenSampler.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <torch/torch.h>

namespace srlm {

struct SamplingParams {
  double temperature = 1.0;  // <= 0: greedy (argmax)
  double top_p = 1.0;        // keep the smallest set of tokens whose probability reaches top_p
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
};

class TokenSampler {
 public:
  TokenSampler(const SamplingParams& params, const std::vector<uint64_t>& seeds);
  // logits (B,V) on any device, any float dtype -> B token ids.
  std::vector<int64_t> Sample(const torch::Tensor& logits);

 private:
  SamplingParams params_;
  std::vector<std::mt19937_64> rngs_;
};

}  // namespace srlm
