// Chat formatting of one user turn for the prompt families srlm supports (RunConfig::chat_template):
//   plain   the message as is; the response follows directly and ends with EOS
//   llama2  "[INST] {message} [/INST]"                (Llama-2-chat; the response starts with " ", ends " </s>")
//   llama3  "<|start_header_id|>user<|end_header_id|>\n\n{message}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
//   chatml  "<|im_start|>user\n{message}<|im_end|>\n<|im_start|>assistant\n"   (Qwen2, SmolLM2)
// llama2 and llama3 strip white space around the message (Python's str.strip(), as their published Jinja
// templates do).
// BOS ("<s>", "<|begin_of_text|>") is NOT part of the text, because SentencePiece does not parse "<s>"
// written in text: EncodeChatPrompt prepends tokenizer.bos_id() when the tokenizer has one, unless
// that BOS is "<|im_start|>" under chatml (SmolLM2-Instruct's bos_token), which the prompt opens with.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace srlm {

// The full prompt text for one user turn, ready to be followed by the response. Unknown template names
// give InvalidArgument.
absl::StatusOr<std::string> FormatChatPrompt(const std::string& template_name, const std::string& user_message);

// FormatChatPrompt's text and where the (stripped) user message lies in it.
struct FormattedChatPrompt {
  std::string text;
  TextSpan message;
};
absl::StatusOr<FormattedChatPrompt> FormatChatPromptWithSpan(const std::string& template_name,
                                                             const std::string& user_message);

// The text that ends an assistant turn ("<|eot_id|>", "<|im_end|>", "</s>"); "" for plain (EOS ends it).
std::string ChatTurnEnd(const std::string& template_name);

// The template names, in the order help texts list them: plain, llama2, llama3, chatml.
const std::vector<std::string>& ChatTemplateNames();

// True for the names of ChatTemplateNames().
bool IsKnownChatTemplate(const std::string& template_name);

// OK when `tokenizer` has the special tokens the template's scaffolding is written in (llama3: the
// header and <|eot_id|> tokens; chatml: <|im_start|>, <|im_end|>; llama2: an EOS). Otherwise an error
// naming the missing tokens: without them the scaffolding would be split into ordinary text pieces,
// which the model never saw as turn markers, and turns would never end on a token.
absl::Status CheckTokenizerFitsChatTemplate(const Tokenizer& tokenizer, const std::string& template_name);

// Token ids that end an assistant turn: eos_id() (when >= 0) and the id of ChatTurnEnd(template_name) when
// the tokenizer has it as one token. Stop generation on these ids: Decode skips special tokens, so a
// "<|eot_id|>" never shows up in decoded text.
std::vector<int32_t> ChatStopTokenIds(const Tokenizer& tokenizer, const std::string& template_name);

// bos_id() (when >= 0, and not chatml's own "<|im_start|>") followed by the ids of
// FormatChatPrompt(template_name, user_message), where special
// tokens are matched only in the template's own text: the message is a literal span (Tokenizer::Encode
// with spans), so a message that writes "<|im_end|>" cannot end its turn or open another. A message with
// no special-token text gets the ids of Encode(FormatChatPrompt(...)).
absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer, const std::string& template_name,
                                                      const std::string& user_message);

}  // namespace srlm
