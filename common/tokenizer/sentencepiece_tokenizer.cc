// Adapter from libsentencepiece's processor (through SentencePieceShim) to the Tokenizer interface.
#include "common/tokenizer/sentencepiece_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace srlm {

SentencePieceTokenizer::SentencePieceTokenizer() = default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromFile(const std::string& model_path) {
  std::unique_ptr<SentencePieceTokenizer> tok(new SentencePieceTokenizer());
  std::string error;
  tok->processor_ = MakeSentencePieceShim(&error);
  if (tok->processor_ == nullptr) return absl::FailedPreconditionError(error);
  error = tok->processor_->Load(model_path);
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load SentencePiece model ", model_path, ": ", error));
  }
  return tok;
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(std::string_view text) const {
  SRLM_RETURN_IF_ERROR(utf8::Validate(text));
  std::vector<int> ids;
  const std::string error = processor_->Encode(text, &ids);
  if (!error.empty()) return absl::InternalError(absl::StrCat("SentencePiece Encode: ", error));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(std::string_view text,
                                                                   const std::vector<TextSpan>& literal) const {
  SRLM_RETURN_IF_ERROR(CheckTextSpans(text.size(), literal));
  return Encode(text);
}

absl::StatusOr<std::string> SentencePieceTokenizer::Decode(const std::vector<int32_t>& ids) const {
  const int size = processor_->PieceSize();
  for (int32_t id : ids) {
    if (id < 0 || id >= size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is outside the vocabulary of ", size));
    }
  }
  std::string text;
  const std::string error = processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!error.empty()) return absl::InternalError(absl::StrCat("SentencePiece Decode: ", error));
  return text;
}

int32_t SentencePieceTokenizer::bos_id() const { return processor_->bos_id(); }
int32_t SentencePieceTokenizer::eos_id() const { return processor_->eos_id(); }
int64_t SentencePieceTokenizer::vocab_size() const { return processor_->PieceSize(); }

std::optional<int32_t> SentencePieceTokenizer::TokenToId(std::string_view token) const {
  const int id = processor_->PieceToId(token);
  if (id == processor_->unk_id() && processor_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

}  // namespace srlm
