// Training losses on sequence log-probabilities: DPO (sigmoid with optional label smoothing, or
// IPO) and the masked SFT cross-entropy. Pure functions of tensors; differentiable.
#pragma once

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace srlm {

enum class DpoLossKind { kSigmoid, kIpo };
absl::StatusOr<DpoLossKind> ParseDpoLossKind(const std::string& name);

struct DpoLossOptions {
  DpoLossKind kind = DpoLossKind::kSigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // sigmoid only: conservative DPO, assumed label-flip rate in [0, 0.5)
};

struct DpoLossOutput {
  torch::Tensor losses;            // (B) per-pair loss
  torch::Tensor chosen_rewards;    // (B) beta * (policy_chosen - ref_chosen), detached
  torch::Tensor rejected_rewards;  // (B) beta * (policy_rejected - ref_rejected), detached
};

// All inputs (B). Sigmoid: with h = (pc - pr) - (rc - rr),
//   loss = -(1 - ls) * log sigmoid(beta h) - ls * log sigmoid(-beta h)          (Rafailov et al. 2023)
// IPO: loss = (h - 1 / (2 beta))^2                                              (Azar et al. 2023)
DpoLossOutput DpoLoss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                      const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected,
                      const DpoLossOptions& options);

// Sum over the batch of the response tokens' cross-entropy, from per-sequence summed log-probs
// (SequenceLogprobs): -sum(logprobs). The caller divides by the global number of response tokens.
torch::Tensor SftLossSum(const torch::Tensor& sequence_logprobs);

}  // namespace srlm
