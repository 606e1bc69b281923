// Opens the SentencePiece module in isolation (see sentencepiece_shim.h) and makes processors.
#include "common/tokenizer/sentencepiece_shim.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace srlm {
namespace {

// The sanitizers' runtimes stop a process that opens a library with RTLD_DEEPBIND
// (google/sanitizers#611), so a sanitized build opens the module without it. That is safe where no
// other protobuf is loaded (the tokenizer tests); a sanitized process that also has gRPC's
// libprotobuf (srlm-worker) loses the isolation and may crash loading a SentencePiece model.
#if defined(SRLM_SANITIZED)  // -DSRLM_SANITIZE=... (CMakeLists.txt)
constexpr int kIsolation = 0;
#else
constexpr int kIsolation = RTLD_DEEPBIND;
#endif

}  // namespace

std::unique_ptr<SentencePieceShim> MakeSentencePieceShim(std::string* error) {
  using Factory = SentencePieceShim* (*)();
  static std::once_flag once;
  static Factory factory = nullptr;
  static std::string open_error;
  std::call_once(once, [] {
    const char* env = std::getenv("SRLM_SENTENCEPIECE_MODULE");
    const std::string path = env != nullptr && *env != '\0' ? env : SRLM_SENTENCEPIECE_MODULE_PATH;
    // Never closed: processors made from it may live until exit.
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kIsolation);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      open_error = "cannot open the SentencePiece module " + path + ": " + (why ? why : "unknown error");
      return;
    }
    factory = reinterpret_cast<Factory>(::dlsym(handle, "srlm_sentencepiece_create"));
    if (factory == nullptr) open_error = path + " has no srlm_sentencepiece_create";
  });
  if (factory == nullptr) {
    *error = open_error;
    return nullptr;
  }
  return std::unique_ptr<SentencePieceShim>(factory());
}

}  // namespace srlm
