// Randomized robustness of the tokenizers (fixed seeds, so every run checks the same cases):
//  - Encode on random byte strings (valid UTF-8 and every kind of ill-formed sequence) gives ids, or
//    InvalidArgument naming the offset of the first ill-formed sequence, as an independent decoder finds
//    it; valid text decodes back to itself (byte-level BPE without a normalizer is lossless).
//  - Decode of random ids gives valid UTF-8, or InvalidArgument for ids outside the vocabulary.
//  - LoadTokenizer on damaged copies of a small tokenizer.json (and tokenizer_config.json) gives an
//    error naming the folder, or a tokenizer that encodes and decodes without crashing.
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "common/testing/mutants.h"
#include "common/testing/temp_dir.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/tokenizer_test_data.h"
#include "nlohmann/json.hpp"

namespace srlm {
namespace {

using testing_util::CheckMutants;
using testing_util::MutantCounts;
using testing_util::TempDir;
using testing_util::TokenizerTestDataDir;

// ---------------------------------------------------------------------------------------------
// UTF-8 written apart from utf8.cc: sequences are decoded from their lead byte first and judged after.

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
    return;
  }
  const int len = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  static constexpr unsigned char kLeadMarks[5] = {0, 0, 0xC0, 0xE0, 0xF0};
  char bytes[4];
  for (int k = len - 1; k > 0; --k) {
    bytes[k] = static_cast<char>(0x80 | (cp & 0x3F));
    cp >>= 6;
  }
  bytes[0] = static_cast<char>(kLeadMarks[len] | cp);
  out->append(bytes, len);
}

// Offset of the first ill-formed sequence in `bytes`, or npos when it is all valid UTF-8: a
// continuation or 0xF8-0xFF lead, a sequence cut short, an overlong form, a surrogate, or a code point
// past U+10FFFF.
size_t FirstInvalidUtf8Offset(std::string_view bytes) {
  static constexpr char32_t kSmallestOfLength[5] = {0, 0, 0x80, 0x800, 0x10000};
  size_t pos = 0;
  while (pos < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[pos]);
    int len;
    char32_t cp;
    if (lead < 0x80) {
      ++pos;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      len = 2;
      cp = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      len = 3;
      cp = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      len = 4;
      cp = lead & 0x07;
    } else {
      return pos;
    }
    if (pos + len > bytes.size()) return pos;
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(bytes[pos + k]);
      if ((b & 0xC0) != 0x80) return pos;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < kSmallestOfLength[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return pos;
    pos += len;
  }
  return std::string_view::npos;
}

// Random byte strings of 0-64 bytes: half of them made of well-formed pieces only, the others mixing
// in lone continuation bytes, overlong forms, surrogates, code points past U+10FFFF, leads 0xF5-0xFF,
// sequences cut short and random bytes.
class RandomText {
 public:
  explicit RandomText(uint64_t seed) : rng_(seed) {}

  std::string Next() {
    const bool valid_only = Below(2) == 0;
    const size_t target = Below(65);
    std::string text;
    while (text.size() < target) {
      const std::string piece = valid_only ? ValidPiece() : AnyPiece();
      if (text.size() + piece.size() > 64) break;
      text += piece;
    }
    return text;
  }

 private:
  uint64_t Below(uint64_t n) { return rng_() % n; }

  std::string ValidPiece() {
    // Code points at the edges of each encoded length and of the surrogate gap, white space and
    // letters or digits of several scripts, combining marks.
    static constexpr char32_t kEdges[] = {0x00,    0x09,    0x0A,   0x0D,     0x20,   0x27,   0x7F,   0x80,
                                          0xA0,    0xE9,    0xFF,   0x301,    0x660,  0x7FF,  0x800,  0x2003,
                                          0x3000,  0x4E2D,  0xD7FF, 0xE000,   0xFEFF, 0xFFFD, 0xFFFF, 0x10000,
                                          0x1F600, 0x1F44D, 0x200D, 0x10FFFF, 0x17F,  0xB2,   0xFF11, 0xAC00};
    std::string out;
    switch (Below(4)) {
      case 0: {  // ASCII, control characters included
        out.push_back(static_cast<char>(Below(128)));
        break;
      }
      case 1:
        out.append(Below(2) == 0 ? " " : Below(2) == 0 ? "'s" : "12");
        break;
      case 2:
        AppendUtf8(kEdges[Below(sizeof(kEdges) / sizeof(kEdges[0]))], &out);
        break;
      default: {
        char32_t cp;
        do {
          cp = static_cast<char32_t>(0x80 + Below(0x110000 - 0x80));
        } while (cp >= 0xD800 && cp <= 0xDFFF);
        AppendUtf8(cp, &out);
        break;
      }
    }
    return out;
  }

  std::string AnyPiece() {
    std::string out;
    switch (Below(8)) {
      case 0:
        out.push_back(static_cast<char>(0x80 + Below(0x40)));  // lone continuation byte
        break;
      case 1: {
        static const std::vector<std::string> kOverlong = {"\xC0\x80",         "\xC0\xAF",     "\xC1\xBF",
                                                           "\xE0\x80\x80",     "\xE0\x9F\xBF", "\xF0\x80\x80\x80",
                                                           "\xF0\x8F\xBF\xBF", "\xE0\x80\xAF"};
        out = kOverlong[Below(kOverlong.size())];
        break;
      }
      case 2:  // surrogate U+D800-U+DFFF
        out = {'\xED', static_cast<char>(0xA0 + Below(0x20)), static_cast<char>(0x80 + Below(0x40))};
        break;
      case 3:  // past U+10FFFF, or a lead byte 0xF5-0xFF with continuation bytes after it
        if (Below(2) == 0) {
          out = {'\xF4', static_cast<char>(0x90 + Below(0x30)), '\x80', '\x80'};
        } else {
          out.push_back(static_cast<char>(0xF5 + Below(11)));
          for (uint64_t n = Below(4); n > 0; --n) out.push_back(static_cast<char>(0x80 + Below(0x40)));
        }
        break;
      case 4: {  // a multi-byte sequence cut short
        std::string full;
        AppendUtf8(static_cast<char32_t>(Below(2) == 0 ? 0x20AC : 0x1F600), &full);
        out = full.substr(0, 1 + Below(full.size() - 1));
        break;
      }
      case 5:
        out.push_back(static_cast<char>(Below(256)));
        break;
      default:
        out = ValidPiece();
        break;
    }
    return out;
  }

  std::mt19937_64 rng_;
};

std::unique_ptr<Tokenizer> LoadFromTestData(const std::string& name) {
  auto tok = LoadTokenizer(TokenizerTestDataDir() + "/" + name);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

TEST(TokenizerRobustness, RandomBytesEncodeOrGiveAUtf8Error) {
  struct Case {
    const char* name;
    bool lossless;  // byte-level BPE without a normalizer: Decode(Encode(text)) == text
  };
  for (const Case& c : {Case{"gpt2", true}, Case{"llama3", true}, Case{"sp_bpe", false}}) {
    std::unique_ptr<Tokenizer> tok = LoadFromTestData(c.name);
    ASSERT_NE(tok, nullptr);
    RandomText random(/*seed=*/0x5EED0001);
    constexpr int kTexts = 5000;
    int valid = 0, invalid = 0, failures = 0;
    for (int i = 0; i < kTexts && failures < 10; ++i) {
      const std::string text = random.Next();
      const size_t bad_offset = FirstInvalidUtf8Offset(text);
      const std::string where = absl::StrCat(c.name, " text ", i, " (hex ", absl::BytesToHexString(text), ")");
      absl::StatusOr<std::vector<int32_t>> ids = tok->Encode(text);
      if (bad_offset != std::string_view::npos) {
        ++invalid;
        const bool clear_error = !ids.ok() && ids.status().code() == absl::StatusCode::kInvalidArgument &&
                                 absl::StrContains(ids.status().message(), "not valid UTF-8") &&
                                 absl::StrContains(ids.status().message(), absl::StrCat("byte offset ", bad_offset));
        if (!clear_error) {
          ++failures;
          ADD_FAILURE() << where << ": ill-formed at byte " << bad_offset << " but Encode gave "
                        << (ids.ok() ? "ids" : ids.status().ToString());
        }
        continue;
      }
      ++valid;
      if (!ids.ok()) {
        ++failures;
        ADD_FAILURE() << where << ": valid UTF-8 but " << ids.status();
        continue;
      }
      for (int32_t id : *ids) {
        if (id < 0 || id >= tok->vocab_size()) {
          ++failures;
          ADD_FAILURE() << where << ": id " << id << " outside the vocabulary of " << tok->vocab_size();
          break;
        }
      }
      absl::StatusOr<std::string> back = tok->Decode(*ids);
      if (!back.ok()) {
        ++failures;
        ADD_FAILURE() << where << ": Decode of its own ids: " << back.status();
      } else if (c.lossless && text.find("<|") == std::string::npos && text.find("<mask>") == std::string::npos &&
                 *back != text) {
        ++failures;
        ADD_FAILURE() << where << ": decodes to hex " << absl::BytesToHexString(*back);
      }
    }
    EXPECT_EQ(failures, 0) << c.name;
    EXPECT_GT(valid, kTexts / 3) << c.name;
    EXPECT_GT(invalid, kTexts / 3) << c.name;
  }
}

TEST(TokenizerRobustness, RandomIdsDecodeToValidUtf8OrGiveAnError) {
  for (const char* name : {"gpt2", "qwen2", "sp_bpe"}) {
    std::unique_ptr<Tokenizer> tok = LoadFromTestData(name);
    ASSERT_NE(tok, nullptr);
    const int64_t vocab = tok->vocab_size();
    std::mt19937_64 rng(0x5EED0002);
    int failures = 0;
    for (int i = 0; i < 2000 && failures < 10; ++i) {
      std::vector<int32_t> ids(rng() % 17);
      bool in_range = true;
      for (int32_t& id : ids) {
        id = static_cast<int32_t>(static_cast<int64_t>(rng() % (vocab + 4)) - 2);  // a few past each end
        in_range = in_range && id >= 0 && id < vocab;
      }
      absl::StatusOr<std::string> text = tok->Decode(ids);
      if (in_range ? !text.ok() || FirstInvalidUtf8Offset(*text) != std::string_view::npos
                   : text.ok() || text.status().code() != absl::StatusCode::kInvalidArgument) {
        ++failures;
        ADD_FAILURE() << name << " ids #" << i << (in_range ? " (in range)" : " (some outside)") << ": "
                      << (text.ok() ? "hex " + absl::BytesToHexString(*text) : text.status().ToString());
      }
    }
    EXPECT_EQ(failures, 0) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// Damaged tokenizer.json files.

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 onwards.
std::array<std::string, 256> ByteLevelAlphabet() {
  std::array<std::string, 256> alphabet;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    AppendUtf8(printable ? static_cast<char32_t>(b) : next++, &alphabet[b]);
  }
  return alphabet;
}

// A byte-level BPE tokenizer.json of a few kilobytes with the parts of the published ones: the 256
// byte tokens, merges in both the string and the pair form, special and added tokens (one lstrip), an
// NFC normalizer, the Llama 3 split regex followed by ByteLevel.
nlohmann::json SmallTokenizerJson() {
  const std::array<std::string, 256> alphabet = ByteLevelAlphabet();
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet[b]] = b;
  const std::string space = alphabet[' '];
  const std::vector<std::pair<std::string, std::string>> merges = {
      {space, "t"}, {"h", "e"}, {space + "t", "he"}, {"i", "n"},
      {space, "a"}, {"e", "r"}, {"1", "2"},          {alphabet[0xC3], alphabet[0xA9]}};
  nlohmann::json merge_list = nlohmann::json::array();
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [left, right] = merges[i];
    vocab[left + right] = 256 + static_cast<int>(i);
    merge_list.push_back(i % 2 == 0 ? nlohmann::json(left + " " + right) : nlohmann::json::array({left, right}));
  }
  const int first_added = 256 + static_cast<int>(merges.size());
  auto added = [](int id, const std::string& content, bool special, bool lstrip) {
    return nlohmann::json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", lstrip},
                          {"rstrip", false}, {"normalized", false}, {"special", special}};
  };
  const std::string llama3_regex =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens",
           {added(first_added, "<|endoftext|>", true, false), added(first_added + 1, "<mask>", true, true),
            added(first_added + 2, "<custom_added>", false, false)}},
          {"normalizer", {{"type", "NFC"}}},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", llama3_regex}}}, {"behavior", "Isolated"}, {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merge_list}}}};
}

constexpr char kSmallTokenizerConfig[] = R"({"bos_token": null, "eos_token": "<|endoftext|>"})";

// Damaged copies of the small tokenizer.json (and now and then of its tokenizer_config.json).
class TokenizerJsonMutator {
 public:
  explicit TokenizerJsonMutator(uint64_t seed) : rng_(seed), original_(SmallTokenizerJson()), text_(original_.dump()) {
    CollectPointers(original_, nlohmann::json::json_pointer());
  }

  const std::string& original_text() const { return text_; }

  // Fills `json_text` and `config_text` (the config is usually the original) and says what was done.
  void Next(std::string* json_text, std::string* config_text, std::string* kind) {
    *json_text = text_;
    *config_text = kSmallTokenizerConfig;
    switch (Below(10)) {
      case 0:
        *kind = "flip bytes";
        for (uint64_t n = 1 + Below(4); n > 0; --n)
          (*json_text)[Below(text_.size())] ^= static_cast<char>(1 + Below(255));
        return;
      case 1:
        *kind = "truncate";
        json_text->resize(Below(text_.size()));
        return;
      case 2:
        *kind = "overwrite with printable characters";
        for (uint64_t n = 1 + Below(8); n > 0; --n)
          (*json_text)[Below(text_.size())] = static_cast<char>(' ' + Below(95));
        return;
      case 3: {
        // A number (an id) replaced: past int32, negative, fractional, huge.
        static const std::vector<std::string> kNumbers = {"0",
                                                          "-1",
                                                          "255",
                                                          "256",
                                                          "65535",
                                                          "2147483646",
                                                          "2147483647",
                                                          "2147483648",
                                                          "4294967295",
                                                          "4294967296",
                                                          "9223372036854775807",
                                                          "18446744073709551615",
                                                          "18446744073709551616",
                                                          "-2147483648",
                                                          "-2147483649",
                                                          "1e30",
                                                          "-1e30",
                                                          "1.5",
                                                          "1e400",
                                                          "00"};
        std::vector<std::pair<size_t, size_t>> runs;
        for (size_t i = 0; i < text_.size();) {
          // Numbers outside strings: after ':' ',' '[' (ids, and nothing inside the regex or the tokens).
          if (std::isdigit(static_cast<unsigned char>(text_[i])) && i > 0 &&
              (text_[i - 1] == ':' || text_[i - 1] == ',' || text_[i - 1] == '[')) {
            size_t end = i;
            while (end < text_.size() && std::isdigit(static_cast<unsigned char>(text_[end]))) ++end;
            runs.emplace_back(i, end);
            i = end;
          } else {
            ++i;
          }
        }
        const auto [start, end] = runs[Below(runs.size())];
        const std::string& number = kNumbers[Below(kNumbers.size())];
        *kind = absl::StrCat("replace number ", text_.substr(start, end - start), " at ", start, " with ", number);
        json_text->replace(start, end - start, number);
        return;
      }
      case 4:
      case 5: {
        nlohmann::json damaged = original_;
        const nlohmann::json::json_pointer& at = PickPointer();
        static const std::vector<nlohmann::json> kValues = {nullptr,
                                                            true,
                                                            0,
                                                            -1,
                                                            2147483647,
                                                            4294967296ull,
                                                            1e30,
                                                            1.5,
                                                            "",
                                                            "x",
                                                            "ByteLevel",
                                                            nlohmann::json::array(),
                                                            nlohmann::json::object(),
                                                            nlohmann::json::array({1, 2}),
                                                            nlohmann::json{{"type", "ByteLevel"}},
                                                            nlohmann::json{{"type", "Sequence"}},
                                                            nlohmann::json{{"type", "Split"}, {"pattern", "x"}}};
        const nlohmann::json& value = kValues[Below(kValues.size())];
        *kind = absl::StrCat("set ", at.to_string(), " to ", value.dump());
        damaged[at] = value;
        *json_text = damaged.dump();
        return;
      }
      case 6: {
        nlohmann::json damaged = original_;
        const nlohmann::json::json_pointer at = PickPointer();
        *kind = absl::StrCat("remove ", at.to_string());
        nlohmann::json& parent = damaged[at.parent_pointer()];
        if (parent.is_object()) {
          parent.erase(at.back());
        } else {
          parent.erase(static_cast<size_t>(std::stoul(at.back())));
        }
        *json_text = damaged.dump();
        return;
      }
      case 7: {
        // Another type name where one is expected: model, normalizer, pre-tokenizers, decoder.
        nlohmann::json damaged = original_;
        static const std::vector<std::string> kTypeFields = {"/model/type",
                                                             "/normalizer/type",
                                                             "/pre_tokenizer/type",
                                                             "/pre_tokenizer/pretokenizers/0/type",
                                                             "/pre_tokenizer/pretokenizers/1/type",
                                                             "/decoder/type"};
        static const std::vector<std::string> kTypes = {
            "BPE", "WordPiece", "Unigram", "ByteLevel", "Sequence", "Split", "Digits", "NFC", "NFKC", "Metaspace", ""};
        const std::string& field = kTypeFields[Below(kTypeFields.size())];
        const std::string& type = kTypes[Below(kTypes.size())];
        *kind = absl::StrCat("set ", field, " to ", type);
        damaged[nlohmann::json::json_pointer(field)] = type;
        *json_text = damaged.dump();
        return;
      }
      case 8: {
        // One character of the split regex changed or removed.
        nlohmann::json damaged = original_;
        const nlohmann::json::json_pointer at("/pre_tokenizer/pretokenizers/0/pattern/Regex");
        std::string regex = damaged[at].get<std::string>();
        const size_t pos = Below(regex.size());
        static constexpr char kChars[] = "()[]{}|?*+\\^$.,sNLp0123456789";
        if (Below(3) == 0) {
          regex.erase(pos, 1);
        } else {
          regex[pos] = kChars[Below(sizeof(kChars) - 1)];
        }
        *kind = "split regex " + regex;
        damaged[at] = regex;
        *json_text = damaged.dump();
        return;
      }
      default: {
        static const std::vector<std::string> kConfigs = {
            "",
            "{",
            "[]",
            "null",
            "5",
            R"({"bos_token": "<|endoftext|>", "eos_token": "<mask>"})",
            R"({"bos_token": "no such token", "eos_token": "<|endoftext|>"})",
            R"({"bos_token": {"content": "<|endoftext|>"}, "eos_token": {"content": 7}})",
            R"({"bos_token": 3, "eos_token": ["<|endoftext|>"]})",
            R"({"bos_token": "", "eos_token": "Ġthe"})"};
        *config_text = kConfigs[Below(kConfigs.size())];
        *kind = "tokenizer_config.json " + *config_text;
        return;
      }
    }
  }

 private:
  uint64_t Below(uint64_t n) { return rng_() % n; }

  // Every node but the root, in two lists: inside the vocab (many, alike) and elsewhere.
  void CollectPointers(const nlohmann::json& node, const nlohmann::json::json_pointer& at) {
    if (!at.empty()) (absl::StartsWith(at.to_string(), "/model/vocab/") ? vocab_nodes_ : other_nodes_).push_back(at);
    if (node.is_object()) {
      for (auto it = node.begin(); it != node.end(); ++it) CollectPointers(it.value(), at / it.key());
    } else if (node.is_array()) {
      for (size_t i = 0; i < node.size(); ++i) CollectPointers(node[i], at / i);
    }
  }
  const nlohmann::json::json_pointer& PickPointer() {
    const auto& nodes = Below(4) == 0 ? vocab_nodes_ : other_nodes_;
    return nodes[Below(nodes.size())];
  }

  std::mt19937_64 rng_;
  const nlohmann::json original_;
  const std::string text_;
  std::vector<nlohmann::json::json_pointer> vocab_nodes_, other_nodes_;
};

// The promise for one damaged folder: LoadTokenizer gives an error that names the folder, or a
// tokenizer whose Encode and Decode keep their contracts.
::testing::AssertionResult LoadsOrNamesTheFolder(const std::string& dir, bool* loaded) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(dir);
  *loaded = tok.ok();
  if (!tok.ok()) {
    if (!absl::StrContains(tok.status().message(), dir)) {
      return ::testing::AssertionFailure() << "the error does not name the folder: " << tok.status();
    }
    return ::testing::AssertionSuccess();
  }
  const Tokenizer& t = **tok;
  for (const std::string text : {"the 12 in th\xC3\xA9 cafe\xCC\x81 x <mask> y<|endoftext|>z <custom_added>", " ", "",
                                 "\xF0\x9F\x98\x80 1234567 \r\n\t 'S 'll"}) {
    absl::StatusOr<std::vector<int32_t>> ids = t.Encode(text);
    if (!ids.ok()) return ::testing::AssertionFailure() << "Encode of valid text: " << ids.status();
    for (int32_t id : *ids) {
      if (id < 0 || id >= t.vocab_size()) {
        return ::testing::AssertionFailure()
               << "Encode gave id " << id << " outside the vocabulary of " << t.vocab_size();
      }
    }
    absl::StatusOr<std::string> back = t.Decode(*ids);
    if (!back.ok()) return ::testing::AssertionFailure() << "Decode of its own ids: " << back.status();
  }
  absl::StatusOr<std::vector<int32_t>> bad = t.Encode("ok \xC3\x28");
  if (bad.ok() || bad.status().code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "invalid UTF-8 was not InvalidArgument";
  }
  std::vector<int32_t> every_id;
  for (int32_t id = 0; id < t.vocab_size() && id < 400; ++id) every_id.push_back(id);
  if (!t.Decode(every_id).ok()) return ::testing::AssertionFailure() << "Decode of ids 0..399 failed";
  if (t.Decode({-1}).ok() || t.Decode({static_cast<int32_t>(t.vocab_size())}).ok()) {
    return ::testing::AssertionFailure() << "Decode accepted an id outside the vocabulary";
  }
  return ::testing::AssertionSuccess();
}

TEST(TokenizerRobustness, DamagedTokenizerJsonLoadsOrGivesAnError) {
  const TempDir dir("srlm_damaged_tokenizer_");
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << text;
  };
  TokenizerJsonMutator mutator(/*seed=*/0x5EED0003);

  // The undamaged file loads, and its merges and added tokens work.
  write("tokenizer.json", mutator.original_text());
  write("tokenizer_config.json", kSmallTokenizerConfig);
  {
    auto tok = LoadTokenizer(dir.path());
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto ids = (*tok)->Encode(" the12<mask>");
    ASSERT_TRUE(ids.ok()) << ids.status();
    const Tokenizer& t = **tok;
    EXPECT_EQ(*ids, (std::vector<int32_t>{*t.TokenToId("\xC4\xA0the"), *t.TokenToId("12"), *t.TokenToId("<mask>")}));
    EXPECT_EQ(*t.Decode(*ids), " the12");
    EXPECT_EQ((*tok)->eos_id(), *(*tok)->TokenToId("<|endoftext|>"));
  }

  constexpr int kMutants = 500;
  const MutantCounts counts = CheckMutants(kMutants, [&](int, bool* loaded, std::string* kind) {
    std::string json_text, config_text;
    mutator.Next(&json_text, &config_text, kind);
    write("tokenizer.json", json_text);
    write("tokenizer_config.json", config_text);
    return LoadsOrNamesTheFolder(dir.path(), loaded);
  });
  EXPECT_EQ(counts.broken, 0);
  EXPECT_GT(counts.accepted, kMutants / 20);
  EXPECT_GT(counts.rejected, kMutants / 3);
  RecordProperty("mutants_loaded", counts.accepted);
  RecordProperty("mutants_rejected", counts.rejected);
}

}  // namespace
}  // namespace srlm
