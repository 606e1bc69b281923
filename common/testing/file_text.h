// Test helpers for any test in the tree: a whole file's bytes as a string, and a file written from
// one. Header-only (standard library only).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace srlm::testing_util {

// The contents of `path` ("" when it cannot be read).
inline std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Replaces the contents of `path` with `text`.
inline void WriteFileText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace srlm::testing_util
