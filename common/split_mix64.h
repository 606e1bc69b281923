// SplitMix64 (Steele, Lea and Flood, 2014): the 64-bit mixer behind every seed derivation and small
// reproducible stream in srlm (data order and dropout keys in the trainer, keyed dropout's generator
// seeds, self-instruct's shots and seeds, the coordinator's pair positions). Its output is the same
// on every platform and standard library, which std::mt19937's distributions are not. Pure.
#pragma once

#include <cstdint>

namespace srlm {

// The output of the stream whose state is x: x advanced by the golden gamma, then mixed.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The next output of the stream at *state, which advances.
inline uint64_t NextSplitMix64(uint64_t* state) {
  const uint64_t out = SplitMix64(*state);
  *state += 0x9E3779B97F4A7C15ULL;
  return out;
}

}  // namespace srlm
