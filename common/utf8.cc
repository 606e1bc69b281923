// UTF-8 validation and repair following Unicode Table 3-7 (well-formed byte sequences).
#include "common/utf8.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace srlm::utf8 {
namespace {

// Length of the well-formed sequence at `pos`, or 0 when invalid. `*valid_prefix` gets how many bytes
// form the maximal prefix of a well-formed sequence (at least 1), which lossy repair replaces as one unit.
int WellFormedLength(std::string_view s, size_t pos, int* valid_prefix) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  *valid_prefix = 1;
  if (b0 < 0x80) return 1;
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return 0;
  }
  for (int k = 1; k < need; ++k) {
    if (pos + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[pos + k]);
    const unsigned char low = (k == 1) ? lo : 0x80, high = (k == 1) ? hi : 0xBF;
    if (b < low || b > high) return 0;
    *valid_prefix = k + 1;
  }
  return need;
}

}  // namespace

size_t FirstInvalidOffset(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    int prefix;
    const int len = WellFormedLength(text, pos, &prefix);
    if (len == 0) return pos;
    pos += len;
  }
  return std::string_view::npos;
}

absl::Status Validate(std::string_view text) {
  const size_t pos = FirstInvalidOffset(text);
  if (pos == std::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("text is not valid UTF-8: invalid byte sequence at byte offset %d (byte 0x%02X)", pos,
                      static_cast<unsigned char>(text[pos])));
}

int DecodeAt(std::string_view text, size_t pos, char32_t* cp) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  int len = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t value = b0 & (0x7F >> len);
  for (int k = 1; k < len; ++k) value = (value << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3F);
  *cp = value;
  return len;
}

void Append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string RepairLossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    int prefix;
    const int len = WellFormedLength(bytes, pos, &prefix);
    if (len > 0) {
      out.append(bytes.substr(pos, len));
      pos += len;
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      pos += prefix;
    }
  }
  return out;
}

}  // namespace srlm::utf8
