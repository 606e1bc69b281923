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

// A byte range [begin, end) of a text.
struct TextSpan {
  size_t begin = 0;
  size_t end = 0;
};

class Tokenizer {
 public:
  virtual ~Tokenizer();

  // Token ids of `text`; adds no BOS/EOS. Special and added tokens written in the text (e.g.
  // "<|im_start|>") become their ids. Text that is not valid UTF-8 gives InvalidArgument.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const = 0;

  // Encode, except that special tokens written inside the `literal` byte ranges stay text: a special
  // token's text is turned into its id only where it overlaps no literal span, as Hugging Face does with
  // `encode_special_tokens = True` inside the spans. Non-special added tokens still become their ids
  // everywhere (Hugging Face matches them in that mode too; Decode writes them back as their text).
  // Outside the special tokens found, text is tokenized exactly as Encode(text) does: the spans decide
  // only which special tokens are matched. Spans must lie inside the text (else InvalidArgument); they
  // may overlap and come in any order. Use it for text a model or a user wrote, so that writing
  // "<|im_end|>" cannot end a turn. The base implementation is Unimplemented.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                                      const std::vector<TextSpan>& literal) const;
  // Encode(text, {the whole text}): no special token is matched.
  absl::StatusOr<std::vector<int32_t>> EncodeLiteral(std::string_view text) const;

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

// OK when every span lies inside a text of `size` bytes (begin <= end <= size).
absl::Status CheckTextSpans(size_t size, const std::vector<TextSpan>& spans);

// True when [begin, end) shares a byte with one of `spans`.
bool OverlapsTextSpans(size_t begin, size_t end, const std::vector<TextSpan>& spans);

}  // namespace srlm
