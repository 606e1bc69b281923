// The four chat formats, written from the published Jinja templates of each model family.
#include "common/tokenizer/chat_template.h"

#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/tokenizer/unicode_tables.h"
#include "common/utf8.h"

namespace srlm {
namespace {

// Python's str.strip(), which the Jinja templates use: Unicode white space plus U+001C..U+001F.
bool IsPythonSpace(char32_t c) { return IsUnicodeWhitespace(c) || (c >= 0x1C && c <= 0x1F); }

std::string PythonStrip(std::string_view text) {
  if (!utf8::Validate(text).ok()) return std::string(text);  // Encode reports invalid UTF-8 later
  size_t begin = 0, end = text.size();
  while (begin < end) {
    char32_t c;
    const int len = utf8::DecodeAt(text, begin, &c);
    if (!IsPythonSpace(c)) break;
    begin += len;
  }
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    char32_t c;
    utf8::DecodeAt(text, start, &c);
    if (!IsPythonSpace(c)) break;
    end = start;
  }
  return std::string(text.substr(begin, end - begin));
}

}  // namespace

const std::vector<std::string>& ChatTemplateNames() {
  static const std::vector<std::string> kNames = {"plain", "llama2", "llama3", "chatml"};
  return kNames;
}

bool IsKnownChatTemplate(const std::string& name) {
  return absl::c_linear_search(ChatTemplateNames(), name);
}

absl::StatusOr<FormattedChatPrompt> FormatChatPromptWithSpan(const std::string& template_name,
                                                             const std::string& user_message) {
  std::string prefix, message, suffix;
  if (template_name == "plain") {
    message = user_message;
  } else if (template_name == "llama2") {
    // {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}
    prefix = "[INST] ";
    message = PythonStrip(user_message);
    suffix = " [/INST]";
  } else if (template_name == "llama3") {
    // '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>', then the
    // generation prompt '<|start_header_id|>assistant<|end_header_id|>\n\n'.
    prefix = "<|start_header_id|>user<|end_header_id|>\n\n";
    message = PythonStrip(user_message);
    suffix = "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  } else if (template_name == "chatml") {
    prefix = "<|im_start|>user\n";
    message = user_message;
    suffix = "<|im_end|>\n<|im_start|>assistant\n";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown chat template '", template_name, "' (expected plain, llama2, llama3 or chatml)"));
  }
  FormattedChatPrompt out;
  out.message = {prefix.size(), prefix.size() + message.size()};
  out.text = absl::StrCat(prefix, message, suffix);
  return out;
}

absl::StatusOr<std::string> FormatChatPrompt(const std::string& template_name, const std::string& user_message) {
  SRLM_ASSIGN_OR_RETURN(FormattedChatPrompt prompt, FormatChatPromptWithSpan(template_name, user_message));
  return std::move(prompt.text);
}

std::string ChatTurnEnd(const std::string& template_name) {
  if (template_name == "llama2") return "</s>";
  if (template_name == "llama3") return "<|eot_id|>";
  if (template_name == "chatml") return "<|im_end|>";
  return "";
}

absl::Status CheckTokenizerFitsChatTemplate(const Tokenizer& tokenizer, const std::string& template_name) {
  std::vector<std::string> needed;
  if (template_name == "llama3") needed = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  if (template_name == "chatml") needed = {"<|im_start|>", "<|im_end|>"};
  std::vector<std::string> missing;
  for (const std::string& token : needed) {
    if (!tokenizer.TokenToId(token)) missing.push_back(token);
  }
  if (template_name == "llama2" && tokenizer.eos_id() < 0) missing.push_back("an EOS token (</s>)");
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "chat template '", template_name, "' needs ", absl::StrJoin(missing, ", "),
      " in the tokenizer, which has no such token: choose the template the model was trained with "
      "(model.chat_template, --chat-template), or plain"));
}

std::vector<int32_t> ChatStopTokenIds(const Tokenizer& tokenizer, const std::string& template_name) {
  std::vector<int32_t> ids;
  if (tokenizer.eos_id() >= 0) ids.push_back(tokenizer.eos_id());
  const std::string turn_end = ChatTurnEnd(template_name);
  if (!turn_end.empty()) {
    const std::optional<int32_t> id = tokenizer.TokenToId(turn_end);
    if (id && std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  }
  return ids;
}

absl::StatusOr<std::vector<int32_t>> EncodeChatPrompt(const Tokenizer& tokenizer, const std::string& template_name,
                                                      const std::string& user_message) {
  SRLM_ASSIGN_OR_RETURN(FormattedChatPrompt prompt, FormatChatPromptWithSpan(template_name, user_message));
  SRLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(prompt.text, {prompt.message}));
  // A ChatML tokenizer may name "<|im_start|>" itself as its bos_token (SmolLM2-Instruct): the prompt
  // already opens with it, and a second one is off the template.
  const bool bos_opens_template = template_name == "chatml" && tokenizer.TokenToId("<|im_start|>") == tokenizer.bos_id();
  if (tokenizer.bos_id() >= 0 && !bos_opens_template) ids.insert(ids.begin(), tokenizer.bos_id());
  return ids;
}

}  // namespace srlm
