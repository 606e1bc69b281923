// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2, Llama 3, Qwen2 style):
// added/special tokens are split out first, the rest is normalized (none or NFC), pre-tokenized
// (pre_tokenizer.h), mapped byte -> printable character and merged by rank, with a per-word cache.
// Thread-safety: Encode/Decode may run concurrently (the cache has its own mutex).
#pragma once

#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/tokenizer.h"

namespace srlm {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;       // the match takes the white space on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // matches only when not inside a word
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  // Parses the JSON text of tokenizer.json. bos/eos are names of tokens (empty: none).
  static absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> FromJson(const std::string& json_text,
                                                                         const std::string& bos_token,
                                                                         const std::string& eos_token);
  // True when the tokenizer.json text describes a byte-level BPE (a ByteLevel pre-tokenizer).
  static bool LooksByteLevel(const std::string& json_text);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override;
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              const std::vector<TextSpan>& literal) const override;
  absl::StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override;
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  std::optional<int32_t> TokenToId(std::string_view token) const override;

  const std::vector<AddedToken>& added_tokens() const { return added_tokens_; }

 private:
  ByteLevelBpeTokenizer() = default;
  absl::Status EncodeSegment(std::string_view segment, std::vector<int32_t>* ids) const;
  void EncodeWord(const std::string& word, std::vector<int32_t>* ids) const;
  std::vector<int32_t> MergeWord(const std::string& word) const;
  // Finds the leftmost(-longest) added token in text[from:], leaving out special tokens whose text
  // overlaps a `literal` span; returns false when none.
  bool FindAddedToken(std::string_view text, size_t from, const std::vector<TextSpan>& literal, size_t* start,
                      size_t* end, int32_t* id) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> is_special_;  // per id
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  absl::flat_hash_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, result
  std::array<int32_t, 256> byte_token_id_{};      // id of each byte's one-character token, -1 if none
  std::array<std::string, 256> byte_to_char_;     // byte -> its printable character (UTF-8)
  absl::flat_hash_map<char32_t, uint8_t> char_to_byte_;
  std::vector<AddedToken> added_tokens_;
  std::array<std::vector<size_t>, 256> added_by_first_byte_;  // indexes into added_tokens_
  std::vector<PreTokenizerStep> pre_tokenizer_;
  bool normalize_nfc_ = false;
  bool ignore_merges_ = false;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> word_cache_;
};

// NFC normalization of valid UTF-8 (through ICU).
absl::StatusOr<std::string> NormalizeNfc(std::string_view text);

}  // namespace srlm
