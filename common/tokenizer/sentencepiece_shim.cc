// See sentencepiece_shim.h: keep this file free of abseil headers.
#include "common/tokenizer/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

namespace srlm {

struct SentencePieceShim::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SentencePieceShim::SentencePieceShim() : impl_(std::make_unique<Impl>()) {}
SentencePieceShim::~SentencePieceShim() = default;

std::string SentencePieceShim::Load(const std::string& model_path) {
  const auto status = impl_->processor.Load(model_path);
  return status.ok() ? "" : status.ToString();
}

std::string SentencePieceShim::Encode(std::string_view text, std::vector<int>* ids) const {
  const auto status = impl_->processor.Encode(text, ids);
  return status.ok() ? "" : status.ToString();
}

std::string SentencePieceShim::Decode(const std::vector<int>& ids, std::string* text) const {
  const auto status = impl_->processor.Decode(ids, text);
  return status.ok() ? "" : status.ToString();
}

int SentencePieceShim::PieceSize() const { return impl_->processor.GetPieceSize(); }
int SentencePieceShim::PieceToId(std::string_view piece) const { return impl_->processor.PieceToId(piece); }
std::string SentencePieceShim::IdToPiece(int id) const { return impl_->processor.IdToPiece(id); }
int SentencePieceShim::bos_id() const { return impl_->processor.bos_id(); }
int SentencePieceShim::eos_id() const { return impl_->processor.eos_id(); }
int SentencePieceShim::unk_id() const { return impl_->processor.unk_id(); }

}  // namespace srlm
