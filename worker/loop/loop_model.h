// What one round of the loop needs from the current model M_t, as text in and text out, so that the
// round logic (shard_work.h) is independent of libtorch and testable with a scripted model.
// Implementations need not be thread-safe: one round uses the model from one thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_config.h"

namespace srlm {

struct GeneratedText {
  std::string text;
  int64_t num_tokens = 0;
  // eos | stop | length (max_new_tokens or the model's context) | context: the prompt itself
  // leaves no room in the model's context, and nothing was generated
  std::string finish_reason;
};

struct ScoredResponse {
  double logprob = 0;      // sum of log p(response tokens | prompt), end-of-turn token included
  int64_t num_tokens = 0;  // tokens summed over
  // False when prompt + response (as the trainer tokenizes them) do not fit the model's context;
  // logprob is then 0: such a response cannot be trained on.
  bool fits_context = true;
};

// How a request's text becomes the model's input. Either way the text is literal: special-token text
// written in it (model-written prompts, candidates inside a judge prompt) never becomes a special token.
enum class PromptFormat {
  kChat,  // a user message: BOS + the run's chat template around it (the trainer's EncodePrompt)
  kRaw,   // used as is after BOS (the self-instruct request)
};

class LoopModel {
 public:
  virtual ~LoopModel() = default;
  // One continuation per request text, formatted as `format` says (the model applies the chat template
  // itself, so that only the template's own text can hold special tokens). seeds[i] seeds the sampling
  // of texts[i], so a result does not depend on batching or on which worker runs it.
  // Text the model writes never makes it fail: a prompt too long for the context gets finish_reason
  // "context"; a continuation stops where the context ends (leaving room for a response's
  // end-of-turn token, so that every continuation can be scored and trained on).
  virtual absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts,
                                                             PromptFormat format, const SamplingConfig& sampling,
                                                             const std::vector<uint64_t>& seeds) = 0;
  // log p(response | prompt) for each response after the same user message (chat-formatted, tokenized
  // as the trainer does), with no gradient; a response that does not fit the context is marked
  // (fits_context), not an error.
  virtual absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string& user_message, const std::vector<std::string>& responses) = 0;
};

}  // namespace srlm
