// tokenizer.json loading and the byte-level BPE encode/decode paths.
#include "common/tokenizer/byte_level_bpe.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <limits>
#include <queue>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/unicode_tables.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace srlm {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxCachedWords = 200000;
// Token ids index a dense table (id_to_token_), so one damaged id must not size it: ids stay below
// 2^24, 64 times the largest published vocabularies (~262k tokens).
constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards.
std::array<char32_t, 256> ByteToCodePoint() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

absl::Status ParseNormalizer(const json& normalizer, bool* nfc) {
  if (normalizer.is_null()) return absl::OkStatus();
  const std::string type = normalizer.value("type", "");
  if (type == "NFC") {
    *nfc = true;
    return absl::OkStatus();
  }
  if (type == "Sequence") {
    for (const json& n : normalizer.at("normalizers")) SRLM_RETURN_IF_ERROR(ParseNormalizer(n, nfc));
    return absl::OkStatus();
  }
  return absl::UnimplementedError(absl::StrCat("tokenizer.json normalizer '", type, "' is not supported (only NFC)"));
}

absl::Status ParsePreTokenizer(const json& pre, std::vector<PreTokenizerStep>* steps) {
  if (pre.is_null()) return absl::OkStatus();
  const std::string type = pre.value("type", "");
  PreTokenizerStep step;
  if (type == "Sequence") {
    for (const json& p : pre.at("pretokenizers")) SRLM_RETURN_IF_ERROR(ParsePreTokenizer(p, steps));
    return absl::OkStatus();
  } else if (type == "ByteLevel") {
    step.type = PreTokenizerStep::Type::kByteLevel;
    step.add_prefix_space = pre.value("add_prefix_space", false);
    step.use_regex = pre.value("use_regex", true);
    SRLM_ASSIGN_OR_RETURN(step.regex, ParseSplitRegex(GptTwoSplitPattern()));
  } else if (type == "Split") {
    step.type = PreTokenizerStep::Type::kSplit;
    const json& pattern = pre.at("pattern");
    if (!pattern.contains("Regex")) {
      return absl::UnimplementedError("tokenizer.json Split pre-tokenizer with a String pattern is not supported");
    }
    if (pre.value("behavior", "") != "Isolated" || pre.value("invert", false)) {
      return absl::UnimplementedError("tokenizer.json Split pre-tokenizer: only behavior Isolated, invert false");
    }
    SRLM_ASSIGN_OR_RETURN(step.regex, ParseSplitRegex(pattern.at("Regex").get<std::string>()));
  } else if (type == "Digits") {
    step.type = PreTokenizerStep::Type::kDigits;
    step.individual_digits = pre.value("individual_digits", false);
  } else {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json pre-tokenizer '", type, "' is not supported"));
  }
  steps->push_back(step);
  return absl::OkStatus();
}

// The "type" of a tokenizer.json component; empty when it is not an object or has no string "type".
// Never throws: LooksByteLevel runs on files not yet known to be well-formed.
std::string TypeOf(const json& node) {
  if (!node.is_object()) return "";
  const auto type = node.find("type");
  return type != node.end() && type->is_string() ? type->get<std::string>() : "";
}

// A token id of tokenizer.json (`what` names the token for the error): an integer in [0, kMaxTokenId].
absl::StatusOr<int32_t> TokenId(const json& value, const std::string& what) {
  const bool in_range = value.is_number_unsigned()  ? value.get<uint64_t>() <= static_cast<uint64_t>(kMaxTokenId)
                        : value.is_number_integer() ? value.get<int64_t>() >= 0 && value.get<int64_t>() <= kMaxTokenId
                                                    : false;
  if (!in_range) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json ", what, " has id ", value.dump(),
                                                   ": ids must be integers in [0, ", kMaxTokenId, "]"));
  }
  return static_cast<int32_t>(value.get<int64_t>());
}

bool HasByteLevel(const json& node) {
  if (node.is_object()) {
    if (TypeOf(node) == "ByteLevel") return true;
    for (const auto& item : node.items()) {
      if (HasByteLevel(item.value())) return true;
    }
  } else if (node.is_array()) {
    for (const json& item : node) {
      if (HasByteLevel(item)) return true;
    }
  }
  return false;
}

// Byte offset where the code point that ends at `pos` starts.
size_t PreviousCharStart(std::string_view text, size_t pos) {
  do {
    --pos;
  } while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80);
  return pos;
}

bool IsWordChar(char32_t c) { return IsUnicodeLetter(c) || IsUnicodeNumber(c) || c == '_'; }

}  // namespace

absl::StatusOr<std::string> NormalizeNfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; })) {
    return std::string(text);
  }
  UErrorCode error = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(error);
  if (U_FAILURE(error)) return absl::InternalError(absl::StrCat("ICU NFC normalizer: ", u_errorName(error)));
  const icu::UnicodeString source =
      icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  const icu::UnicodeString normalized = nfc->normalize(source, error);
  if (U_FAILURE(error)) return absl::InternalError(absl::StrCat("ICU NFC normalization failed: ", u_errorName(error)));
  std::string out;
  normalized.toUTF8String(out);
  return out;
}

bool ByteLevelBpeTokenizer::LooksByteLevel(const std::string& json_text) {
  const json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return false;
  const auto model = root.find("model"), pre_tokenizer = root.find("pre_tokenizer");
  return model != root.end() && TypeOf(*model) == "BPE" && pre_tokenizer != root.end() && HasByteLevel(*pre_tokenizer);
}

absl::StatusOr<std::unique_ptr<ByteLevelBpeTokenizer>> ByteLevelBpeTokenizer::FromJson(
    const std::string& json_text, const std::string& bos_token, const std::string& eos_token) {
  const json root = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return absl::InvalidArgumentError("tokenizer.json is not valid JSON");
  std::unique_ptr<ByteLevelBpeTokenizer> tok(new ByteLevelBpeTokenizer());
  try {
    const json& model = root.at("model");
    if (model.value("type", "") != "BPE") {
      return absl::UnimplementedError(absl::StrCat("tokenizer.json model type '", model.value("type", ""),
                                                   "' is not supported (only BPE)"));
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
        return absl::UnimplementedError(absl::StrCat("tokenizer.json BPE option ", key, " is not supported"));
      }
    }
    if (model.contains("byte_fallback") && model["byte_fallback"].is_boolean() && model["byte_fallback"].get<bool>()) {
      return absl::UnimplementedError("tokenizer.json BPE byte_fallback is not supported (use tokenizer.model)");
    }
    tok->ignore_merges_ = model.contains("ignore_merges") && model["ignore_merges"].is_boolean() &&
                          model["ignore_merges"].get<bool>();
    int32_t max_id = -1;
    for (const auto& item : model.at("vocab").items()) {
      SRLM_ASSIGN_OR_RETURN(const int32_t id, TokenId(item.value(), absl::StrCat("vocab token '", item.key(), "'")));
      tok->vocab_[item.key()] = id;
      max_id = std::max(max_id, id);
    }
    std::vector<AddedToken> added;
    if (root.contains("added_tokens")) {
      for (const json& a : root["added_tokens"]) {
        AddedToken t;
        t.content = a.at("content").get<std::string>();
        SRLM_ASSIGN_OR_RETURN(t.id, TokenId(a.at("id"), absl::StrCat("added token '", t.content, "'")));
        t.special = a.value("special", false);
        t.lstrip = a.value("lstrip", false);
        t.rstrip = a.value("rstrip", false);
        t.single_word = a.value("single_word", false);
        if (t.content.empty()) return absl::InvalidArgumentError("tokenizer.json has an empty added token");
        max_id = std::max(max_id, t.id);
        added.push_back(std::move(t));
      }
    }
    tok->id_to_token_.assign(max_id + 1, "");
    tok->is_special_.assign(max_id + 1, false);
    for (const auto& [token, id] : tok->vocab_) tok->id_to_token_[id] = token;
    for (size_t i = 0; i < added.size(); ++i) {
      tok->id_to_token_[added[i].id] = added[i].content;
      tok->is_special_[added[i].id] = added[i].special;
      tok->added_by_first_byte_[static_cast<unsigned char>(added[i].content[0])].push_back(i);
    }
    tok->added_tokens_ = std::move(added);

    int32_t rank = 0;
    for (const json& m : model.at("merges")) {
      std::string left, right;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("bad merge '", s, "'"));
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else {
        left = m.at(0).get<std::string>();
        right = m.at(1).get<std::string>();
      }
      const auto l = tok->vocab_.find(left), r = tok->vocab_.find(right), lr = tok->vocab_.find(left + right);
      if (l == tok->vocab_.end() || r == tok->vocab_.end() || lr == tok->vocab_.end()) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer.json merge '", left, " ", right,
                                                       "' names a token missing from the vocab"));
      }
      tok->merges_.try_emplace(PairKey(l->second, r->second), Merge{rank, lr->second});
      ++rank;
    }

    SRLM_RETURN_IF_ERROR(ParseNormalizer(root.value("normalizer", json()), &tok->normalize_nfc_));
    SRLM_RETURN_IF_ERROR(ParsePreTokenizer(root.value("pre_tokenizer", json()), &tok->pre_tokenizer_));
    if (!HasByteLevel(root.value("pre_tokenizer", json()))) {
      return absl::UnimplementedError("tokenizer.json has no ByteLevel pre-tokenizer: not a byte-level BPE");
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }

  const std::array<char32_t, 256> byte_cp = ByteToCodePoint();
  for (int b = 0; b < 256; ++b) {
    utf8::Append(byte_cp[b], &tok->byte_to_char_[b]);
    tok->char_to_byte_[byte_cp[b]] = static_cast<uint8_t>(b);
    const auto it = tok->vocab_.find(tok->byte_to_char_[b]);
    tok->byte_token_id_[b] = it == tok->vocab_.end() ? -1 : it->second;
  }
  for (const auto& [name, id] : {std::pair{&bos_token, &tok->bos_id_}, std::pair{&eos_token, &tok->eos_id_}}) {
    if (name->empty()) continue;
    const std::optional<int32_t> found = tok->TokenToId(*name);
    if (!found) return absl::InvalidArgumentError(absl::StrCat("special token '", *name, "' is not in tokenizer.json"));
    *id = *found;
  }
  return tok;
}

std::optional<int32_t> ByteLevelBpeTokenizer::TokenToId(std::string_view token) const {
  for (const AddedToken& t : added_tokens_) {
    if (t.content == token) return t.id;
  }
  const auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

bool ByteLevelBpeTokenizer::FindAddedToken(std::string_view text, size_t from, const std::vector<TextSpan>& literal,
                                           size_t* start, size_t* end, int32_t* id) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    const std::vector<size_t>& candidates = added_by_first_byte_[static_cast<unsigned char>(text[pos])];
    const AddedToken* best = nullptr;
    for (size_t index : candidates) {
      const AddedToken& t = added_tokens_[index];
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      if (t.special && OverlapsTextSpans(pos, pos + t.content.size(), literal)) continue;
      if (t.single_word) {
        char32_t c;
        if (pos > 0 && (utf8::DecodeAt(text, PreviousCharStart(text, pos), &c), IsWordChar(c))) continue;
        if (pos + t.content.size() < text.size() &&
            (utf8::DecodeAt(text, pos + t.content.size(), &c), IsWordChar(c))) continue;
      }
      if (best == nullptr || t.content.size() > best->content.size()) best = &t;
    }
    if (best == nullptr) continue;
    *start = pos;
    *end = pos + best->content.size();
    *id = best->id;
    if (best->lstrip) {
      while (*start > from) {
        const size_t prev = PreviousCharStart(text, *start);
        char32_t c;
        utf8::DecodeAt(text, prev, &c);
        if (!IsUnicodeWhitespace(c)) break;
        *start = prev;
      }
    }
    if (best->rstrip) {
      while (*end < text.size()) {
        char32_t c;
        const int len = utf8::DecodeAt(text, *end, &c);
        if (!IsUnicodeWhitespace(c)) break;
        *end += len;
      }
    }
    return true;
  }
  return false;
}

absl::StatusOr<std::vector<int32_t>> ByteLevelBpeTokenizer::Encode(std::string_view text) const {
  return Encode(text, {});
}

// The text is split at the added tokens found (special ones only outside the literal spans); each run
// between them is encoded alone, exactly as when no spans are given.
absl::StatusOr<std::vector<int32_t>> ByteLevelBpeTokenizer::Encode(std::string_view text,
                                                                   const std::vector<TextSpan>& literal) const {
  SRLM_RETURN_IF_ERROR(utf8::Validate(text));
  SRLM_RETURN_IF_ERROR(CheckTextSpans(text.size(), literal));
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start, end;
    int32_t id;
    if (!FindAddedToken(text, pos, literal, &start, &end, &id)) {
      SRLM_RETURN_IF_ERROR(EncodeSegment(text.substr(pos), &ids));
      break;
    }
    if (start > pos) SRLM_RETURN_IF_ERROR(EncodeSegment(text.substr(pos, start - pos), &ids));
    ids.push_back(id);
    pos = end;
  }
  return ids;
}

absl::Status ByteLevelBpeTokenizer::EncodeSegment(std::string_view segment, std::vector<int32_t>* ids) const {
  std::string normalized;
  if (normalize_nfc_) {
    SRLM_ASSIGN_OR_RETURN(normalized, NormalizeNfc(segment));
    segment = normalized;
  }
  std::vector<std::string> words;
  PreTokenize(pre_tokenizer_, segment, &words);
  for (const std::string& word : words) EncodeWord(word, ids);
  return absl::OkStatus();
}

void ByteLevelBpeTokenizer::EncodeWord(const std::string& word, std::vector<int32_t>* ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = word_cache_.find(word);
    if (it != word_cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = MergeWord(word);
  ids->insert(ids->end(), merged.begin(), merged.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (word_cache_.size() >= kMaxCachedWords) word_cache_.clear();
  word_cache_.emplace(word, std::move(merged));
}

std::vector<int32_t> ByteLevelBpeTokenizer::MergeWord(const std::string& word) const {
  if (ignore_merges_) {
    std::string mapped;
    for (unsigned char b : word) mapped += byte_to_char_[b];
    const auto it = vocab_.find(mapped);
    if (it != vocab_.end()) return {it->second};
  }
  // Symbols in a linked list; a min-heap of candidate merges ordered by (rank, position) so that the
  // lowest-ranked pair is merged first and ties go to the leftmost, as Hugging Face does. O(n log n).
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;  // index of the left symbol
    int32_t left_id;
    int32_t right_id;
    int32_t merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (unsigned char b : word) {
    // Bytes missing from the vocab are dropped, as Hugging Face does for a BPE without unk_token.
    if (byte_token_id_[b] < 0) continue;
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({byte_token_id_[b], index - 1, index + 1});
  }
  if (symbols.empty()) return {};
  symbols.back().next = -1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[l.next];
    const auto it = merges_.find(PairKey(l.id, r.id));
    if (it != merges_.end()) queue.push({it->second.rank, left, l.id, r.id, it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);
  std::vector<bool> removed(symbols.size(), false);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (removed[top.pos] || left.next < 0 || left.id != top.left_id || symbols[left.next].id != top.right_id) {
      continue;  // stale: one side has been merged since this candidate was pushed
    }
    const int32_t right_index = left.next;
    left.id = top.merged_id;
    left.next = symbols[right_index].next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    removed[right_index] = true;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
}

absl::StatusOr<std::string> ByteLevelBpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(id_to_token_.size())) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside the vocabulary of ",
                                                     id_to_token_.size()));
    }
    if (is_special_[id]) continue;
    // Each character maps back to one byte; a token with a character outside the byte alphabet (an
    // added token such as "<|x|> y") contributes its text as is, as the Hugging Face ByteLevel decoder does.
    const std::string& token = id_to_token_[id];
    std::string token_bytes;
    bool all_mapped = true;
    for (size_t pos = 0; pos < token.size();) {
      char32_t c;
      pos += utf8::DecodeAt(token, pos, &c);
      const auto it = char_to_byte_.find(c);
      if (it == char_to_byte_.end()) {
        all_mapped = false;
        break;
      }
      token_bytes.push_back(static_cast<char>(it->second));
    }
    bytes += all_mapped ? token_bytes : token;
  }
  return utf8::RepairLossy(bytes);
}

}  // namespace srlm
