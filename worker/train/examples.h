// Training examples in token ids and their JSONL readers. SFT lines: prompt, response (text) or
// prompt_ids, response_ids. DPO lines: prompt, chosen, rejected (text) or prompt_ids, chosen_ids,
// rejected_ids, optionally with ref_chosen_logprob and ref_rejected_logprob (sums of log-probabilities:
// numbers in [-FLT_MAX, 0]). Bad lines (a missing key, an empty response, a sequence over the length
// limit, a reference log-probability out of range) are reported with their line number.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

using TokenIds = std::vector<int32_t>;

struct SftExample {
  TokenIds prompt_ids;    // the whole prompt, BOS and chat template included
  TokenIds response_ids;  // the response the loss is on, EOS included
};

struct PreferenceExample {
  TokenIds prompt_ids;
  TokenIds chosen_ids;
  TokenIds rejected_ids;
  // Summed log-probabilities of chosen/rejected under the frozen reference model, when known.
  std::optional<double> ref_chosen_logprob;
  std::optional<double> ref_rejected_logprob;
};

// Turns the text of a line into token ids (a tokenizer with the run's chat template). Text lines
// fail with a message naming the line when no encoder is given.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual absl::StatusOr<TokenIds> EncodePrompt(const std::string& prompt) const = 0;      // template, BOS
  virtual absl::StatusOr<TokenIds> EncodeResponse(const std::string& response) const = 0;  // EOS appended
};

struct ExampleLimits {
  int64_t max_seq_len = 0;   // prompt + response tokens; 0: no limit
  int64_t vocab_size = 0;    // ids must be in [0, vocab_size); 0: unchecked
};

// "<what> is N tokens, over the limit of L" (with " (the model's KEY)" when `limit_key` is set): the
// one wording of a sequence longer than the model allows, in sft, dpo, logprobs and the loop's DPO.
absl::Status SequenceTooLongError(const std::string& what, int64_t tokens, int64_t limit,
                                  const std::string& limit_key = "");

// The limits for a model of context `context_length` (LlamaConfig::context_length()) and
// `vocab_size` under the run's model.max_seq_len (0: the model's context; never above it). The loop
// samples, scores and trains within these, and the offline commands read their data against them.
inline ExampleLimits LimitsForModel(int64_t max_seq_len, int64_t context_length, int64_t vocab_size) {
  return ExampleLimits{max_seq_len > 0 && max_seq_len < context_length ? max_seq_len : context_length, vocab_size};
}

// Reads every line (common/jsonl.h); on any bad line returns INVALID_ARGUMENT listing the first bad
// lines as "<path>:<line>: <problem>". Blank lines are skipped. A file with no examples, a folder, or
// a file that cannot be read is an error.
absl::StatusOr<std::vector<SftExample>> ReadSftJsonl(const std::string& path, const TextEncoder* encoder,
                                                     const ExampleLimits& limits);
absl::StatusOr<std::vector<PreferenceExample>> ReadPreferenceJsonl(const std::string& path,
                                                                   const TextEncoder* encoder,
                                                                   const ExampleLimits& limits);

}  // namespace srlm
