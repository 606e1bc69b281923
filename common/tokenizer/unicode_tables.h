// Unicode character classes used by the pre-tokenizer: letters (\p{L}), numbers (\p{N}) and white
// space (\s, the White_Space property), as Oniguruma / the Rust regex crate define them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace srlm {
namespace unicode_tables {

struct CodePointRange {
  char32_t first;
  char32_t last;  // inclusive
};

// Sorted, disjoint ranges; generated into unicode_tables.cc by testdata/gen_unicode_tables.py.
extern const CodePointRange kLetterRanges[];
extern const size_t kLetterRangesSize;
extern const CodePointRange kNumberRanges[];
extern const size_t kNumberRangesSize;

}  // namespace unicode_tables

bool IsUnicodeLetter(char32_t cp);      // general category L*
bool IsUnicodeNumber(char32_t cp);      // general category N*
bool IsUnicodeWhitespace(char32_t cp);  // White_Space property

}  // namespace srlm
