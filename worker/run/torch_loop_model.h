// M_t as the loop sees it (worker/loop/loop_model.h), backed by the libtorch Llama model and the
// model's tokenizer: batched sampling for self-instruct, candidates and judgements, and reference
// log-probabilities tokenized exactly as the trainer tokenizes DPO pairs (text_encoder.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/loop/loop_model.h"
#include "worker/model/llama.h"
#include "worker/train/text_encoder.h"

namespace srlm {

class TorchLoopModel : public LoopModel {
 public:
  // `max_batch` bounds the sequences decoded together (memory); results do not depend on it.
  TorchLoopModel(LlamaModel model, std::shared_ptr<const TokenizerTextEncoder> encoder, int64_t max_batch = 64);

  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& prompts,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override;
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(const std::string& prompt,
                                                             const std::vector<std::string>& responses) override;

 private:
  LlamaModel model_;
  std::shared_ptr<const TokenizerTextEncoder> encoder_;
  int64_t max_batch_;
};

}  // namespace srlm
