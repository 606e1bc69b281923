#include "worker/model/sampler.h"

#include <cmath>
#include <limits>

namespace srlm {

TokenSampler::TokenSampler(const SamplingParams& params, const std::vector<uint64_t>& seeds) : params_(params) {
  for (uint64_t seed : seeds) rngs_.emplace_back(seed);
}

std::vector<int64_t> TokenSampler::Sample(const torch::Tensor& logits) {
  const int64_t B = logits.size(0), V = logits.size(1);
  std::vector<int64_t> out(B);
  if (params_.temperature <= 0 || params_.top_k == 1) {
    auto ids = logits.argmax(-1).to(torch::kCPU).to(torch::kInt64).contiguous();
    std::copy(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + B, out.begin());
    return out;
  }
  auto scaled = logits.to(torch::kFloat32) / params_.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (params_.top_k > 0 && params_.top_k < V) {
    auto kth = std::get<0>(scaled.topk(params_.top_k, -1)).narrow(1, params_.top_k - 1, 1);  // (B,1)
    scaled = scaled.masked_fill(scaled < kth, neg_inf);
  }
  auto probs = torch::softmax(scaled, -1);
  if (params_.top_p < 1.0) {
    auto [sorted, order] = probs.sort(-1, /*descending=*/true);
    // Drop a token when the tokens ranked above it already reach top_p (the first always stays).
    auto drop_sorted = (sorted.cumsum(-1) - sorted) >= params_.top_p;
    auto drop = torch::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    probs = probs.masked_fill(drop, 0.0);
  }
  auto cdf = probs.cumsum(-1).to(torch::kCPU).to(torch::kFloat64).contiguous();
  const double* data = cdf.data_ptr<double>();
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t b = 0; b < B; ++b) {
    const double* row = data + b * V;
    const double total = row[V - 1];
    if (!std::isfinite(total) || total <= 0) {
      // No finite probabilities (NaN or infinite logits: a numerically broken model). The binary
      // search would return the last id, often an undecodable padding id; take the largest finite
      // logit instead (still drawing from the generator, so the other sequences are unaffected).
      uniform(rngs_[b]);
      out[b] = torch::nan_to_num(scaled[b], neg_inf, std::numeric_limits<float>::max(), neg_inf).argmax().item<int64_t>();
      continue;
    }
    const double target = uniform(rngs_[b]) * total;
    int64_t lo = 0, hi = V - 1;  // first index with cdf > target
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (row[mid] > target) hi = mid; else lo = mid + 1;
    }
    while (lo > 0 && row[lo] == row[lo - 1]) --lo;  // never land on a zero-probability token
    out[b] = lo;
  }
  return out;
}

}  // namespace srlm
