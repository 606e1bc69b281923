// Implementation of worker/train/losses.h.
#include "worker/train/losses.h"

#include "absl/strings/str_cat.h"

namespace srlm {

absl::StatusOr<DpoLossKind> ParseDpoLossKind(const std::string& name) {
  if (name == "sigmoid") return DpoLossKind::kSigmoid;
  if (name == "ipo") return DpoLossKind::kIpo;
  return absl::InvalidArgumentError(absl::StrCat("unknown DPO loss '", name, "': expected sigmoid or ipo"));
}

DpoLossOutput DpoLoss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                      const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected,
                      const DpoLossOptions& options) {
  torch::Tensor h = (policy_chosen - policy_rejected) - (ref_chosen - ref_rejected);
  DpoLossOutput out;
  if (options.kind == DpoLossKind::kIpo) {
    out.losses = (h - 1.0 / (2.0 * options.beta)).pow(2);
  } else {
    const double ls = options.label_smoothing;
    out.losses = -torch::log_sigmoid(options.beta * h) * (1.0 - ls);
    if (ls != 0) out.losses = out.losses - torch::log_sigmoid(-options.beta * h) * ls;
  }
  out.chosen_rewards = (options.beta * (policy_chosen - ref_chosen)).detach();
  out.rejected_rewards = (options.beta * (policy_rejected - ref_rejected)).detach();
  return out;
}

torch::Tensor SftLossSum(const torch::Tensor& sequence_logprobs) { return -sequence_logprobs.sum(); }

}  // namespace srlm
