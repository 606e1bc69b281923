// M_t as the loop sees it (worker/loop/loop_model.h), backed by the libtorch Llama model and the
// model's tokenizer: batched sampling for self-instruct, candidates and judgements, and reference
// log-probabilities tokenized exactly as the trainer tokenizes DPO pairs (text_encoder.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/loop/loop_model.h"
#include "worker/model/batched_generation.h"
#include "worker/model/llama.h"
#include "worker/train/text_encoder.h"

namespace srlm {

class TorchLoopModel : public LoopModel {
 public:
  // `context` is the longest sequence (prompt and response) it samples or scores: the trainer's limit
  // (model.max_seq_len, or the model's context_length()), so that whatever it produces can be
  // trained on; 0 means context_length(). `max_batch` bounds the sequences decoded together
  // (memory; lowered for good when a batch runs out of memory); results do not depend on it.
  TorchLoopModel(LlamaModel model, std::shared_ptr<const TokenizerTextEncoder> encoder, int64_t context = 0,
                 int64_t max_batch = 64);

  // kChat texts are encoded by the encoder's EncodePrompt (the trainer's rule, chat template applied
  // here), kRaw texts by EncodeRawPrompt; in both the text is literal (no special tokens from it).
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override;
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(const std::string& user_message,
                                                             const std::vector<std::string>& responses) override;

 private:
  LlamaModel model_;
  std::shared_ptr<const TokenizerTextEncoder> encoder_;
  int64_t context_;
  BatchedGenerator generator_;
  int64_t response_suffix_tokens_ = 0;  // what EncodeResponse appends (end-of-turn or EOS)
};

}  // namespace srlm
