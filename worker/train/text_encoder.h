// The trainer's text -> token ids rule, shared by the offline commands, the loop's DPO data and the
// loop's reference log-probabilities (they must tokenize alike, or DPO's reference terms are off):
//   prompt   = BOS + the run's chat template around the user message (EncodeChatPrompt)
//   response = the text's tokens + the template's end-of-turn token (or EOS when it has none)
// The user message and the response are literal text (Tokenizer::EncodeLiteral): special-token text
// written in them (by a model, in the loop) stays text, so it never becomes a turn boundary.
#pragma once

#include <memory>
#include <string>

#include "common/tokenizer/tokenizer.h"
#include "worker/train/examples.h"

namespace srlm {

class TokenizerTextEncoder : public TextEncoder {
 public:
  TokenizerTextEncoder(std::shared_ptr<const Tokenizer> tokenizer, std::string chat_template);
  absl::StatusOr<TokenIds> EncodePrompt(const std::string& user_message) const override;
  absl::StatusOr<TokenIds> EncodeResponse(const std::string& response) const override;
  // A prompt used with no chat template (the loop's self-instruct request): BOS + its tokens, all literal.
  absl::StatusOr<TokenIds> EncodeRawPrompt(const std::string& prompt_text) const;

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::string& chat_template() const { return template_; }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::string template_;
};

}  // namespace srlm
