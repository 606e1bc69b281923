// Sequence log-probabilities under a LlamaModel: the quantity DPO and the judge use. Batched,
// differentiable (no no_grad inside; wrap calls in torch::NoGradGuard for reference values).
#pragma once

#include <torch/torch.h>

#include "worker/model/llama.h"

namespace srlm {

// (B) float32: the sum over positions t >= 1 where response_mask[b,t] is 1 of
// log p(input_ids[b,t] | input_ids[b,<t]). input_ids (B,T) int64; attention_mask (B,T) 1 = real
// token; response_mask (B,T) 1 on response tokens (position 0 never counts: it has no context).
torch::Tensor SequenceLogprobs(LlamaModel& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& response_mask);

}  // namespace srlm
