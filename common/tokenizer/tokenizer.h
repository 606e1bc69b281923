// Text <-> token ids for Hugging Face model directories: byte-level BPE from tokenizer.json (GPT-2, Llama 3,
// Qwen2 style) and SentencePiece models (tokenizer.model: Llama 2, Mistral). No libtorch.
// Thread-safety: a loaded Tokenizer is immutable apart from internal caches guarded by a mutex; Encode and
// Decode may be called concurrently from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace srlm {

class Tokenizer {
 public:
  virtual ~Tokenizer();

  // Token ids of `text`; adds no BOS/EOS. Special and added tokens written in the text (e.g.
  // "<|im_start|>") become their ids. Text that is not valid UTF-8 gives InvalidArgument.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const = 0;

  // Text of `ids`, special tokens skipped. Bytes of a character split across tokens are joined; byte
  // sequences that are still not valid UTF-8 become U+FFFD (as Hugging Face does). Ids outside the
  // vocabulary give InvalidArgument.
  virtual absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const = 0;

  virtual int32_t bos_id() const;  // -1 when none
  virtual int32_t eos_id() const;  // -1 when none
  virtual int64_t vocab_size() const;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const;
};

// Loads `model_dir`/tokenizer.json (byte-level BPE) or, when that is missing or not byte-level,
// `model_dir`/tokenizer.model (SentencePiece). bos/eos come from tokenizer_config.json when present.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir);

}  // namespace srlm
