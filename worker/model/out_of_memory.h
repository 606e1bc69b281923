// Whether a libtorch error is an allocation that ran out of memory: CUDA's caching allocator throws
// c10::OutOfMemoryError; the CPU allocator an enforce failure that names itself (libtorch 2.x).
// Callers turn it into ResourceExhausted and say what to lower, or retry with less.
#pragma once

#include <string>

#include <c10/util/Exception.h>

namespace srlm {

inline bool IsOutOfMemory(const c10::Error& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr) return true;
  const std::string& what = e.msg();
  return what.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos ||
         what.find("DefaultCPUAllocator: not enough memory") != std::string::npos;
}

}  // namespace srlm
