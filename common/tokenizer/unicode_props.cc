// Lookups into the generated Unicode range tables (binary search, with an ASCII fast path).
#include <algorithm>

#include "common/tokenizer/unicode_tables.h"

namespace srlm {
namespace {

bool InRanges(const unicode_tables::CodePointRange* ranges, size_t size, char32_t cp) {
  const auto* end = ranges + size;
  const auto* it = std::upper_bound(ranges, end, cp, [](char32_t value, const unicode_tables::CodePointRange& r) {
    return value < r.first;
  });
  if (it == ranges) return false;
  --it;
  return cp >= it->first && cp <= it->last;
}

}  // namespace

bool IsUnicodeLetter(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return InRanges(unicode_tables::kLetterRanges, unicode_tables::kLetterRangesSize, cp);
}

bool IsUnicodeNumber(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return InRanges(unicode_tables::kNumberRanges, unicode_tables::kNumberRangesSize, cp);
}

bool IsUnicodeWhitespace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace srlm
