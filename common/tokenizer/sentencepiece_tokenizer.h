// SentencePiece tokenizer (tokenizer.model of Llama 2, Mistral) through libsentencepiece.
// Encode does not parse control symbols such as "<s>" written in the text (SentencePiece's own rule);
// callers add bos_id() themselves. User-defined symbols written in text do become their ids.
// Thread-safety: SentencePieceProcessor is safe for concurrent use.
#pragma once

#include <memory>
#include <string>

#include "common/tokenizer/sentencepiece_shim.h"
#include "common/tokenizer/tokenizer.h"

namespace srlm {

class SentencePieceTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromFile(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override;
  // The same ids as Encode(text): SentencePiece never turns control symbols ("<s>", "</s>") written in
  // text into their ids, so there is nothing for literal spans to leave out. User-defined symbols are
  // matched in text by libsentencepiece, inside spans too, as Hugging Face matches non-special added
  // tokens with encode_special_tokens (Hugging Face's conversion makes them non-special).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              const std::vector<TextSpan>& literal) const override;
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override;
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  int64_t vocab_size() const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;

 private:
  SentencePieceTokenizer();
  std::unique_ptr<SentencePieceShim> processor_;
};

}  // namespace srlm
