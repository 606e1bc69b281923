// Implementation of worker/model/logprobs.h.
#include "worker/model/logprobs.h"

namespace srlm {

torch::Tensor SequenceLogprobs(LlamaModel& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& response_mask) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  // Position t-1's hidden state predicts token t; only response tokens count, so the output
  // projection and the softmax run on those rows alone (not on the prompt or the padding): in
  // training that is about half of the lm_head work and of the (rows, vocab) float32 tensors.
  auto counts = response_mask.narrow(1, 1, T - 1).to(torch::kBool);
  if (attention_mask.defined()) counts = counts.logical_and(attention_mask.narrow(1, 1, T - 1).to(torch::kBool));
  const torch::Tensor rows = counts.flatten().nonzero().squeeze(1);  // indices into (B*(T-1))
  auto hidden = model->hidden_states(input_ids, attention_mask).narrow(1, 0, T - 1);
  hidden = hidden.reshape({B * (T - 1), hidden.size(-1)}).index_select(0, rows);
  auto logits = model->logits(hidden);  // (rows, V) float32
  auto targets = input_ids.narrow(1, 1, T - 1).flatten().index_select(0, rows).unsqueeze(1);
  auto token_logprobs = logits.gather(1, targets).squeeze(1) - torch::logsumexp(logits, 1);
  auto sequence = torch::div(rows, T - 1, "floor");
  return torch::zeros({B}, logits.options()).index_add(0, sequence, token_logprobs);
}

}  // namespace srlm
