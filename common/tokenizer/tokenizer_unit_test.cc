// Unit tests of the tokenizer pieces: Unicode tables against Python's unicodedata, UTF-8 validation and
// lossy repair against Python's decoder, the pre-tokenizer on hand-checked strings, special and added
// tokens, loading errors (damaged tokenizer.json too), and the chat templates against the published
// model-family formats.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"
#include "common/tokenizer/byte_level_bpe.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_test_data.h"
#include "common/tokenizer/unicode_tables.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace srlm {
namespace {

using testing_util::RunPython;
using testing_util::TokenizerTestDataDir;

std::string nlohmann_like_json_string(const std::string& s) { return nlohmann::json(s).dump(); }

std::unique_ptr<Tokenizer> Load(const std::string& name) {
  auto tok = LoadTokenizer(TokenizerTestDataDir() + "/" + name);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

TEST(UnicodeTables, LettersNumbersAndSpacesMatchPythonUnicodedata) {
  // Ranges recomputed by Python now, independent of the committed table.
  const std::string out = RunPython(
      "import unicodedata\n"
      "for cls in 'LN':\n"
      "    start = None\n"
      "    for cp in range(0x110001):\n"
      "        inside = cp < 0x110000 and unicodedata.category(chr(cp)).startswith(cls)\n"
      "        if inside and start is None: start = cp\n"
      "        elif not inside and start is not None: print(cls, start, cp - 1); start = None\n"
      "print('S', *[cp for cp in range(0x110000) if chr(cp).isspace() and not 0x1C <= cp <= 0x1F])\n");
  ASSERT_FALSE(out.empty());
  std::vector<bool> letter(0x110000), number(0x110000), space(0x110000);
  std::istringstream lines(out);
  std::string kind;
  while (lines >> kind) {
    if (kind == "S") {
      std::string rest;
      std::getline(lines, rest);
      std::istringstream cps(rest);
      long cp;
      while (cps >> cp) space[cp] = true;
      continue;
    }
    long first, last;
    lines >> first >> last;
    for (long cp = first; cp <= last; ++cp) (kind == "L" ? letter : number)[cp] = true;
  }
  int letters = 0, wrong = 0;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    letters += letter[cp];
    if (IsUnicodeLetter(cp) != letter[cp] || IsUnicodeNumber(cp) != number[cp] || IsUnicodeWhitespace(cp) != space[cp]) {
      if (++wrong <= 5) ADD_FAILURE() << "code point " << static_cast<long>(cp);
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(letters, 100000);  // the dump really held the letter ranges
}

TEST(Utf8, ValidateRejectsMalformedSequencesWithOffset) {
  EXPECT_TRUE(utf8::Validate("plain ascii, café, 日本, 😀").ok());
  const std::vector<std::pair<std::string, int>> bad = {
      {"\xff", 0}, {"ab\xc3", 2}, {"ab\xc0\xaf", 2}, {"x\xed\xa0\x80", 1}, {"\xf4\x90\x80\x80", 0},
      {"ok \x80", 3}, {"\xe2\x82", 0}, {"😀\xf0\x9f\x98", 4}};
  for (const auto& [text, offset] : bad) {
    const absl::Status status = utf8::Validate(text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(absl::StrCat("byte offset ", offset)), std::string::npos) << status;
  }
}

TEST(Utf8, RepairLossyMatchesPythonReplaceDecoder) {
  std::mt19937 rng(7);
  std::vector<std::string> inputs = {"\xf0\x9f\x98", "\xff\xfe", "a\xe2\x82z", "\xed\xa0\x80", "\xc0\xaf", "ok"};
  const std::string pool = "\x80\xbf\xc2\xc3\xe0\xe2\xed\xf0\xf4\xf5\xff\x9f\x98\x80" "aZ ";
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int k = rng() % 8; k >= 0; --k) s.push_back(pool[rng() % pool.size()]);
    inputs.push_back(s);
  }
  std::string hex_list;
  for (const std::string& s : inputs) {
    hex_list += "'";
    for (unsigned char c : s) hex_list += absl::StrCat(absl::Hex(c, absl::kZeroPad2));
    hex_list += "',";
  }
  const std::string out = RunPython(
      "import sys\nfor h in [" + hex_list + "]:\n"
      "    sys.stdout.write(bytes.fromhex(h).decode('utf-8', 'replace').encode('utf-8').hex() + '\\n')\n");
  std::istringstream lines(out);
  for (const std::string& s : inputs) {
    std::string want_hex, got_hex;
    ASSERT_TRUE(std::getline(lines, want_hex));
    for (unsigned char c : utf8::RepairLossy(s)) got_hex += absl::StrCat(absl::Hex(c, absl::kZeroPad2));
    EXPECT_EQ(got_hex, want_hex);
  }
}

TEST(Tokenizers, InvalidUtf8InputIsAClearError) {
  for (const char* name : {"gpt2", "qwen2", "sp_bpe"}) {
    auto tok = Load(name);
    ASSERT_NE(tok, nullptr);
    auto ids = tok->Encode("valid start \xc3\x28 then junk");
    ASSERT_FALSE(ids.ok()) << name;
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(ids.status().message().find("not valid UTF-8"), std::string::npos) << ids.status();
    EXPECT_NE(ids.status().message().find("byte offset 12"), std::string::npos) << ids.status();
  }
}

std::vector<std::string> Split(const std::string& pattern, const std::string& text) {
  auto regex = ParseSplitRegex(pattern);
  EXPECT_TRUE(regex.ok()) << regex.status();
  std::vector<std::string> words;
  SplitWithRegex(*regex, text, &words);
  return words;
}

TEST(PreTokenizer, HandCheckedSplits) {
  const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  EXPECT_EQ(Split(llama3, "Hello  world\n\n  123456 don'T!!\n"),
            (std::vector<std::string>{"Hello", " ", " world", "\n\n", " ", " ", "123", "456", " don", "'T", "!!\n"}));
  EXPECT_EQ(Split(GptTwoSplitPattern(), "Hello  world  \t12 don'T café"),
            (std::vector<std::string>{"Hello", " ", " world", "  ", "\t", "12", " don", "'", "T", " café"}));
  EXPECT_EQ(ParseSplitRegex("\\w+").status().code(), absl::StatusCode::kUnimplemented);
}

TEST(Tokenizers, SpecialAndAddedTokensInsideText) {
  auto qwen = Load("qwen2");
  ASSERT_NE(qwen, nullptr);
  const int32_t im_start = *qwen->TokenToId("<|im_start|>"), im_end = *qwen->TokenToId("<|im_end|>");
  auto ids = qwen->Encode("<|im_start|>user\nhi<|im_end|>");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), im_start);
  EXPECT_EQ(ids->back(), im_end);
  EXPECT_EQ(*qwen->Decode(*ids), "user\nhi");  // special tokens skipped
  EXPECT_EQ(qwen->eos_id(), im_end);
  EXPECT_EQ(qwen->bos_id(), -1);

  // A non-special added token survives decoding; "<mask>" (lstrip) takes the space on its left.
  auto added = qwen->Encode("a<custom_added>b");
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(*qwen->Decode(*added), "a<custom_added>b");
  auto masked = qwen->Encode("x <mask>"), plain_x = qwen->Encode("x");
  ASSERT_TRUE(masked.ok() && plain_x.ok());
  std::vector<int32_t> want = *plain_x;
  want.push_back(*qwen->TokenToId("<mask>"));
  EXPECT_EQ(*masked, want);

  auto bad = qwen->Decode({static_cast<int32_t>(qwen->vocab_size())});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(qwen->TokenToId("no such token").has_value());
}

TEST(Tokenizers, VocabSizeAndSpecialIdsMatchReference) {
  const std::string root = TokenizerTestDataDir();
  const std::string out = RunPython(
      "from tokenizers import Tokenizer\nimport sentencepiece as spm\n"
      "t = Tokenizer.from_file('" + root + "/llama3/tokenizer.json')\n"
      "sp = spm.SentencePieceProcessor(model_file='" + root + "/sp_bpe/tokenizer.model')\n"
      "print(t.get_vocab_size(True), t.token_to_id('<|begin_of_text|>'), t.token_to_id('<|eot_id|>'),"
      " sp.get_piece_size(), sp.bos_id(), sp.eos_id(), sp.piece_to_id('\u2581the'))\n");
  std::istringstream in(out);
  int64_t vocab, bos, eot, sp_vocab, sp_bos, sp_eos, sp_the;
  ASSERT_TRUE(in >> vocab >> bos >> eot >> sp_vocab >> sp_bos >> sp_eos >> sp_the) << out;
  auto llama3 = Load("llama3");
  auto sp = Load("sp_bpe");
  ASSERT_NE(llama3, nullptr);
  ASSERT_NE(sp, nullptr);
  EXPECT_EQ(llama3->vocab_size(), vocab);
  EXPECT_EQ(llama3->bos_id(), bos);
  EXPECT_EQ(llama3->eos_id(), eot);
  EXPECT_EQ(sp->vocab_size(), sp_vocab);
  EXPECT_EQ(sp->bos_id(), sp_bos);
  EXPECT_EQ(sp->eos_id(), sp_eos);
  EXPECT_EQ(sp->TokenToId("\u2581the"), sp_the);
  EXPECT_FALSE(sp->TokenToId("not-a-piece-at-all").has_value());
}

TEST(LoadTokenizer, ErrorsNameTheProblem) {
  const auto dir = std::filesystem::path(TokenizerTestDataDir()) / "broken";
  std::filesystem::create_directories(dir);
  auto missing = LoadTokenizer(dir.string());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("no tokenizer.json or tokenizer.model in"));
  auto no_dir = LoadTokenizer((dir / "absent").string());
  EXPECT_EQ(no_dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(no_dir.status().message()),
              ::testing::HasSubstr("model directory " + (dir / "absent").string() + " does not exist"));

  // A byte-level tokenizer.json whose split regex the scanner does not implement.
  std::string json = testing_util::ReadFileText(TokenizerTestDataDir() + "/llama3/tokenizer.json");
  const std::string digits = R"(\\p{N}{1,3})";
  ASSERT_NE(json.find(digits), std::string::npos);
  json.replace(json.find(digits), digits.size(), R"(\\d{2})");
  std::ofstream(dir / "tokenizer.json") << json;
  auto unsupported = LoadTokenizer(dir.string());
  EXPECT_EQ(unsupported.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(unsupported.status().message().find("tokenizer.json"), std::string::npos) << unsupported.status();
}

// Damage found by TokenizerRobustness.DamagedTokenizerJsonLoadsOrGivesAnError: a "type" that is not a
// string threw from LoadTokenizer (json type_error out of LooksByteLevel), and an id past int32 overflowed
// the id table's size; both are errors naming tokenizer.json now.
TEST(LoadTokenizer, WrongTypesAndIdsAreErrorsNotCrashes) {
  const testing_util::TempDir temp_dir("srlm_bad_tokenizer_");
  const std::string& dir = temp_dir.path();
  const std::string byte_level = R"("pre_tokenizer":{"type":"ByteLevel"})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model":[],)" + byte_level + "}", "cannot use value() with array"},
      {R"({"model":{"type":"BPE","vocab":{},"merges":[]},"pre_tokenizer":{"type":true}})", "type must be string"},
      {R"({"model":{"type":"BPE","vocab":{"a":2147483647},"merges":[]},)" + byte_level + "}",
       "vocab token 'a' has id 2147483647: ids must be integers in [0, 16777215]"},
      {R"({"model":{"type":"BPE","vocab":{"a":-1},"merges":[]},)" + byte_level + "}", "vocab token 'a' has id -1"},
      {R"({"model":{"type":"BPE","vocab":{"a":1e30},"merges":[]},)" + byte_level + "}", "vocab token 'a' has id 1e+30"},
      {R"({"added_tokens":[{"id":4294967296,"content":"<x>"}],"model":{"type":"BPE","vocab":{},"merges":[]},)" +
           byte_level + "}",
       "added token '<x>' has id 4294967296"}};
  for (const auto& [json_text, message] : cases) {
    std::ofstream(temp_dir / "tokenizer.json", std::ios::trunc) << json_text;
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(dir);
    if (tok.ok()) {
      ADD_FAILURE() << "loaded: " << json_text;
      continue;
    }
    EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << tok.status();
    EXPECT_NE(tok.status().message().find(dir + "/tokenizer.json: "), std::string::npos) << tok.status();
    EXPECT_NE(tok.status().message().find(message), std::string::npos) << tok.status();
  }
}

TEST(ChatTemplate, PublishedFormats) {
  // Llama-2-chat: {{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }} (BOS added as an id).
  EXPECT_EQ(*FormatChatPrompt("llama2", "  What is 2+2?\n"), "[INST] What is 2+2? [/INST]");
  // Llama 3 Instruct: header, "\n\n", trimmed content, <|eot_id|>, then the assistant header.
  EXPECT_EQ(*FormatChatPrompt("llama3", "What is 2+2?"),
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // ChatML (Qwen2, SmolLM2): content kept as is.
  EXPECT_EQ(*FormatChatPrompt("chatml", "What is 2+2?"),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(*FormatChatPrompt("plain", "What is 2+2?"), "What is 2+2?");
  EXPECT_EQ(FormatChatPrompt("vicuna", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChatTurnEnd("llama3"), "<|eot_id|>");
  EXPECT_EQ(ChatTurnEnd("chatml"), "<|im_end|>");
  EXPECT_EQ(ChatTurnEnd("llama2"), "</s>");
  EXPECT_EQ(ChatTurnEnd("plain"), "");
}

// The published Jinja chat templates (Llama-2-chat, Meta-Llama-3-Instruct, ChatML), rendered by jinja2 for
// one user turn with the generation prompt, with the BOS text removed (srlm adds BOS as an id).
TEST(ChatTemplate, MatchesPublishedJinjaTemplatesRenderedByJinja2) {
  const std::vector<std::string> messages = {"What is 2+2?", "  padded\n\t", "\u00a0nbsp edges\u3000",
                                             "multi\nline\n\nmessage", "émoji 😀 and 中文", ""};
  std::string py_messages;
  for (const std::string& m : messages) py_messages += nlohmann_like_json_string(m) + ",";
  const std::string out = RunPython(
      "import json, jinja2\n"
      "LLAMA2 = \"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
      "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
      "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
      "'<<SYS>>\\\\n' + system_message + '\\\\n<</SYS>>\\\\n\\\\n' + message['content'] %}{% else %}{% set content = "
      "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
      "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
      "{% endfor %}\"\n"
      "LLAMA3 = \"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\\\n\\\\n'+ message['content'] | trim + '<|eot_id|>' %}"
      "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\\\n\\\\n' }}{% endif %}\"\n"
      "CHATML = \"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\\\n' + message['content'] + "
      "'<|im_end|>' + '\\\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\\\n' }}{% endif %}\"\n"
      "env = jinja2.Environment()\n"
      "out = []\n"
      "for m in [" + py_messages + "]:\n"
      "    for name, t, bos in (('llama2', LLAMA2, '<s>'), ('llama3', LLAMA3, '<|begin_of_text|>'), ('chatml', CHATML, '')):\n"
      "        text = env.from_string(t).render(messages=[{'role': 'user', 'content': m}], bos_token=bos,"
      " eos_token='</s>', add_generation_prompt=True)\n"
      "        out.append([name, m, text[len(bos):]])\n"
      "print(json.dumps(out))\n");
  ASSERT_FALSE(out.empty());
  size_t checked = 0;
  for (const auto& row : nlohmann::json::parse(out)) {
    const std::string name = row[0], message = row[1], want = row[2];
    auto got = FormatChatPrompt(name, message);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, want) << name << " " << nlohmann::json(message).dump();
    ++checked;
  }
  EXPECT_EQ(checked, messages.size() * 3);
}

TEST(ChatTemplate, EncodeChatPromptPrependsBosAndKeepsSpecialTokensWhole) {
  auto llama3 = Load("llama3");
  ASSERT_NE(llama3, nullptr);
  auto ids = EncodeChatPrompt(*llama3, "llama3", "Hi there");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->front(), llama3->bos_id());
  int eot_count = 0;
  for (int32_t id : *ids) eot_count += id == *llama3->TokenToId("<|eot_id|>");
  EXPECT_EQ(eot_count, 1);
  // The same ids as HF tokenizers on the text with "<|begin_of_text|>" written in front.
  const std::string out = RunPython(
      "from tokenizers import Tokenizer\n"
      "t = Tokenizer.from_file('" + TokenizerTestDataDir() + "/llama3/tokenizer.json')\n"
      "print(*t.encode('<|begin_of_text|>' + '<|start_header_id|>user<|end_header_id|>\\n\\nHi there<|eot_id|>"
      "<|start_header_id|>assistant<|end_header_id|>\\n\\n', add_special_tokens=False).ids)\n");
  std::istringstream in(out);
  std::vector<int32_t> want;
  int32_t id;
  while (in >> id) want.push_back(id);
  EXPECT_EQ(*ids, want);
}

// A ChatML tokenizer whose bos_token is "<|im_start|>" (SmolLM2-Instruct's): the prompt opens with
// it once, as without a BOS; it began "<|im_start|><|im_start|>user", which transformers'
// apply_chat_template never gives. Another BOS ("<|endoftext|>" here) is still prepended.
TEST(ChatTemplate, ChatmlDoesNotRepeatABosThatIsItsOpeningToken) {
  auto plain_qwen = Load("qwen2");
  ASSERT_NE(plain_qwen, nullptr);
  ASSERT_LT(plain_qwen->bos_id(), 0);
  const testing_util::TempDir temp_dir("srlm_chatml_bos_");
  std::filesystem::copy_file(TokenizerTestDataDir() + "/qwen2/tokenizer.json", temp_dir / "tokenizer.json");
  std::ofstream(temp_dir / "tokenizer_config.json") << R"({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})";
  auto with_bos = LoadTokenizer(temp_dir.path());
  ASSERT_TRUE(with_bos.ok()) << with_bos.status();
  ASSERT_EQ((*with_bos)->bos_id(), *plain_qwen->TokenToId("<|im_start|>"));
  auto ids = EncodeChatPrompt(**with_bos, "chatml", "Hi there");
  auto want = EncodeChatPrompt(*plain_qwen, "chatml", "Hi there");
  ASSERT_TRUE(ids.ok() && want.ok());
  EXPECT_EQ(*ids, *want);
  EXPECT_NE((*ids)[1], (*with_bos)->bos_id());
  // plain keeps its BOS.
  auto plain = EncodeChatPrompt(**with_bos, "plain", "Hi there");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->front(), (*with_bos)->bos_id());
  // A ChatML model whose BOS is another token keeps it in front.
  std::ofstream(temp_dir / "tokenizer_config.json", std::ios::trunc) << R"({"bos_token": "<|endoftext|>"})";
  auto other_bos = LoadTokenizer(temp_dir.path());
  ASSERT_TRUE(other_bos.ok()) << other_bos.status();
  auto kept = EncodeChatPrompt(**other_bos, "chatml", "Hi there");
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), want->size() + 1);
  EXPECT_EQ(kept->front(), *plain_qwen->TokenToId("<|endoftext|>"));
}

TEST(ChatTemplate, StopTokenIds) {
  auto llama3 = Load("llama3");
  auto qwen = Load("qwen2");
  auto gpt2 = Load("gpt2");
  auto sp = Load("sp_bpe");
  ASSERT_TRUE(llama3 && qwen && gpt2 && sp);
  // llama3's eos (from tokenizer_config.json) is <|eot_id|> itself: listed once.
  EXPECT_EQ(ChatStopTokenIds(*llama3, "llama3"), std::vector<int32_t>{*llama3->TokenToId("<|eot_id|>")});
  EXPECT_EQ(ChatStopTokenIds(*gpt2, "chatml"), std::vector<int32_t>{*gpt2->TokenToId("<|endoftext|>")});
  EXPECT_EQ(ChatStopTokenIds(*sp, "llama2"), std::vector<int32_t>{2});  // "</s>" is the eos piece
  const auto qwen_ids = ChatStopTokenIds(*qwen, "chatml");
  EXPECT_EQ(qwen_ids, std::vector<int32_t>{*qwen->TokenToId("<|im_end|>")});
}

// A template whose scaffolding tokens the tokenizer lacks would be encoded as ordinary text pieces
// (and turns never end on a token): refused, naming the missing tokens.
TEST(ChatTemplate, ATokenizerWithoutTheTemplatesTokensIsRefused) {
  auto llama3 = Load("llama3");
  auto qwen = Load("qwen2");
  auto gpt2 = Load("gpt2");
  auto sp = Load("sp_bpe");
  ASSERT_TRUE(llama3 && qwen && gpt2 && sp);
  EXPECT_TRUE(CheckTokenizerFitsChatTemplate(*llama3, "llama3").ok());
  EXPECT_TRUE(CheckTokenizerFitsChatTemplate(*qwen, "chatml").ok());
  EXPECT_TRUE(CheckTokenizerFitsChatTemplate(*sp, "llama2").ok());
  for (const auto* tokenizer : {gpt2.get(), sp.get()}) EXPECT_TRUE(CheckTokenizerFitsChatTemplate(*tokenizer, "plain").ok());
  const absl::Status chatml = CheckTokenizerFitsChatTemplate(*gpt2, "chatml");
  EXPECT_EQ(chatml.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(chatml.message().find("chat template 'chatml' needs <|im_start|>, <|im_end|> in the tokenizer"),
            std::string::npos)
      << chatml;
  const absl::Status llama3_on_qwen = CheckTokenizerFitsChatTemplate(*qwen, "llama3");
  EXPECT_NE(llama3_on_qwen.message().find("needs <|start_header_id|>, <|end_header_id|>, <|eot_id|>"),
            std::string::npos)
      << llama3_on_qwen;
}

}  // namespace
}  // namespace srlm
