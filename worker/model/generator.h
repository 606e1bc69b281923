// Batched text generation with a preallocated KV cache: prompts of different lengths are
// left-padded into one batch, prefilled in one pass, then decoded one token per step for all
// sequences. Sampling per SamplingOptions; one seed per sequence, so the same seeds and batch give
// the same output. Not thread-safe per model. A batch that runs out of memory (CUDA or host) is
// ResourceExhausted; BatchedGenerator (batched_generation.h) retries it in smaller batches.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/llama.h"

namespace srlm {

struct SamplingOptions {
  double temperature = 1.0;      // <= 0: greedy
  double top_p = 1.0;            // nucleus sampling threshold; 1 = off
  int64_t top_k = 0;             // 0 = off
  int64_t max_new_tokens = 256;  // per sequence
  // 0: no limit. Otherwise a sequence also ends ("length") once its prompt and generated tokens
  // reach this many (the model's context), whatever the other prompts of the batch; a prompt that
  // already does is refused.
  int64_t max_total_tokens = 0;
  // 0: any id of the model's vocabulary. Otherwise only ids below it are sampled: a model's embedding
  // table is often padded past its tokenizer (Qwen2: 151936 rows, 151665 tokens), and a padding id
  // cannot be decoded. Generate() sets it to the tokenizer's vocabulary size.
  int64_t vocab_limit = 0;
  std::vector<std::string> stop;  // stop strings: generation ends once the text contains one
  std::vector<int32_t> extra_eos_ids;  // more ids that end a sequence (e.g. a chat turn-end token)
};

struct Generation {
  // Generated ids, without the EOS id; after a stop string, without the tokens that only the stop
  // string needed (a token that straddles the cut stays), so that they count the text's length.
  std::vector<int32_t> tokens;
  std::string text;  // decoded tokens, cut before the stop string when one matched
  std::string finish_reason;    // "eos" | "stop" | "length" (max_new_tokens or max_total_tokens)
};

absl::StatusOr<std::vector<Generation>> Generate(LlamaModel& model, const Tokenizer& tokenizer,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const SamplingOptions& options, const std::vector<uint64_t>& seeds);

// The token-level core of Generate. `eos_ids` end a sequence (reason "eos"); `should_stop(i,
// tokens)`, when given, is asked after each new token of sequence i and ends it (reason "stop").
struct TokenGeneration {
  std::vector<int32_t> tokens;
  std::string finish_reason;
};
using StopPredicate = std::function<bool(size_t sequence, const std::vector<int32_t>& tokens)>;
absl::StatusOr<std::vector<TokenGeneration>> GenerateTokens(LlamaModel& model,
                                                            const std::vector<std::vector<int32_t>>& prompts,
                                                            const SamplingOptions& options,
                                                            const std::vector<uint64_t>& seeds,
                                                            const std::vector<int64_t>& eos_ids,
                                                            const StopPredicate& should_stop = nullptr);

}  // namespace srlm
