// libsentencepiece behind an interface with std types only, in its own shared module.
// Why a module: Debian's libsentencepiece carries its own copy of protobuf-lite and exports its
// symbols. In a process that also loads the system libprotobuf (gRPC: srlm-worker run), the two
// copies bind to each other's symbols and the process crashes while loading. The module
// (libsrlm_sentencepiece.so, sentencepiece_module.cc) is opened with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND): its symbols stay out of the global scope and it binds to its own copy first.
// (Not in sanitized builds, whose runtimes refuse RTLD_DEEPBIND: see sentencepiece_shim.cc.)
// Also, libsentencepiece's header declares its own `absl::string_view`, which collides with
// abseil's, so only the module includes it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace srlm {

class SentencePieceShim {
 public:
  virtual ~SentencePieceShim() = default;
  // Each returns "" on success, otherwise libsentencepiece's error message.
  virtual std::string Load(const std::string& model_path) = 0;
  virtual std::string Encode(std::string_view text, std::vector<int>* ids) const = 0;
  virtual std::string Decode(const std::vector<int>& ids, std::string* text) const = 0;
  virtual int PieceSize() const = 0;
  virtual int PieceToId(std::string_view piece) const = 0;
  virtual std::string IdToPiece(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;
};

// A new processor from the module: $SRLM_SENTENCEPIECE_MODULE, else the path the build recorded.
// On failure returns null and sets *error.
std::unique_ptr<SentencePieceShim> MakeSentencePieceShim(std::string* error);

}  // namespace srlm

// The module's one exported symbol (C linkage, found with dlsym).
extern "C" srlm::SentencePieceShim* srlm_sentencepiece_create();
