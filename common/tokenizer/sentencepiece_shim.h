// A thin wrapper over sentencepiece::SentencePieceProcessor with std types only. libsentencepiece's
// header declares its own `absl::string_view`, which collides with abseil's, so it is included only
// in sentencepiece_shim.cc, which includes no abseil header.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace srlm {

class SentencePieceShim {
 public:
  SentencePieceShim();
  ~SentencePieceShim();
  // Each returns "" on success, otherwise libsentencepiece's error message.
  std::string Load(const std::string& model_path);
  std::string Encode(std::string_view text, std::vector<int>* ids) const;
  std::string Decode(const std::vector<int>& ids, std::string* text) const;
  int PieceSize() const;
  int PieceToId(std::string_view piece) const;
  std::string IdToPiece(int id) const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace srlm
