// The four chat formats, written from the published Jinja templates of each model family.
#include "common/tokenizer/chat_template.h"

#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/unicode_tables.h"
#include "common/tokenizer/utf8.h"

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

absl::StatusOr<std::string> FormatChatPrompt(const std::string& template_name, const std::string& user_message) {
  if (template_name == "plain") return user_message;
  if (template_name == "llama2") {
    // {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}
    return absl::StrCat("[INST] ", PythonStrip(user_message), " [/INST]");
  }
  if (template_name == "llama3") {
    // '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>', then the
    // generation prompt '<|start_header_id|>assistant<|end_header_id|>\n\n'.
    return absl::StrCat("<|start_header_id|>user<|end_header_id|>\n\n", PythonStrip(user_message),
                        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  }
  if (template_name == "chatml") {
    return absl::StrCat("<|im_start|>user\n", user_message, "<|im_end|>\n<|im_start|>assistant\n");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown chat template '", template_name, "' (expected plain, llama2, llama3 or chatml)"));
}

std::string ChatTurnEnd(const std::string& template_name) {
  if (template_name == "llama2") return "</s>";
  if (template_name == "llama3") return "<|eot_id|>";
  if (template_name == "chatml") return "<|im_end|>";
  return "";
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
  SRLM_ASSIGN_OR_RETURN(std::string prompt, FormatChatPrompt(template_name, user_message));
  SRLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenizer.Encode(prompt));
  if (tokenizer.bos_id() >= 0) ids.insert(ids.begin(), tokenizer.bos_id());
  return ids;
}

}  // namespace srlm
