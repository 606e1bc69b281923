// The libsrlm_sentencepiece.so module (see sentencepiece_shim.h): SentencePieceShim over
// sentencepiece::SentencePieceProcessor. Keep this file free of abseil headers.
#include <sentencepiece_processor.h>

#include "common/tokenizer/sentencepiece_shim.h"

namespace srlm {
namespace {

class SentencePieceProcessorShim : public SentencePieceShim {
 public:
  std::string Load(const std::string& model_path) override {
    const auto status = processor_.Load(model_path);
    return status.ok() ? "" : status.ToString();
  }
  std::string Encode(std::string_view text, std::vector<int>* ids) const override {
    const auto status = processor_.Encode(text, ids);
    return status.ok() ? "" : status.ToString();
  }
  std::string Decode(const std::vector<int>& ids, std::string* text) const override {
    const auto status = processor_.Decode(ids, text);
    return status.ok() ? "" : status.ToString();
  }
  int PieceSize() const override { return processor_.GetPieceSize(); }
  int PieceToId(std::string_view piece) const override { return processor_.PieceToId(piece); }
  std::string IdToPiece(int id) const override { return processor_.IdToPiece(id); }
  int bos_id() const override { return processor_.bos_id(); }
  int eos_id() const override { return processor_.eos_id(); }
  int unk_id() const override { return processor_.unk_id(); }

 private:
  sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace
}  // namespace srlm

extern "C" __attribute__((visibility("default"))) srlm::SentencePieceShim* srlm_sentencepiece_create() {
  return new srlm::SentencePieceProcessorShim();
}
