// SentencePiece tokenizer (tokenizer.model of Llama 2, Mistral) through libsentencepiece.
// Encode does not parse control symbols such as "<s>" written in the text (SentencePiece's own rule);
// callers add bos_id() themselves. Thread-safety: SentencePieceProcessor is safe for concurrent use.
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
