// Implementation of worker/train/text_encoder.h.
#include "worker/train/text_encoder.h"

#include <optional>

#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"

namespace srlm {

TokenizerTextEncoder::TokenizerTextEncoder(std::shared_ptr<const Tokenizer> tokenizer, std::string chat_template)
    : tokenizer_(std::move(tokenizer)), template_(std::move(chat_template)) {}

absl::StatusOr<TokenIds> TokenizerTextEncoder::EncodePrompt(const std::string& user_message) const {
  return EncodeChatPrompt(*tokenizer_, template_, user_message);
}

absl::StatusOr<TokenIds> TokenizerTextEncoder::EncodeRawPrompt(const std::string& prompt_text) const {
  TokenIds ids;
  if (tokenizer_->bos_id() >= 0) ids.push_back(tokenizer_->bos_id());
  SRLM_ASSIGN_OR_RETURN(TokenIds text_ids, tokenizer_->EncodeLiteral(prompt_text));
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  return ids;
}

absl::StatusOr<TokenIds> TokenizerTextEncoder::EncodeResponse(const std::string& response) const {
  SRLM_ASSIGN_OR_RETURN(TokenIds ids, tokenizer_->EncodeLiteral(response));
  std::optional<int32_t> turn_end;
  if (!ChatTurnEnd(template_).empty()) turn_end = tokenizer_->TokenToId(ChatTurnEnd(template_));
  if (turn_end.has_value()) {
    ids.push_back(*turn_end);
  } else if (tokenizer_->eos_id() >= 0) {
    ids.push_back(tokenizer_->eos_id());
  }
  return ids;
}

}  // namespace srlm
