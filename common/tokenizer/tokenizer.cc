// Tokenizer defaults and LoadTokenizer: picks tokenizer.json (byte-level BPE) or tokenizer.model.
#include "common/tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tokenizer/byte_level_bpe.h"
#include "common/tokenizer/sentencepiece_tokenizer.h"
#include "nlohmann/json.hpp"

namespace srlm {
namespace {

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// "bos_token" of tokenizer_config.json: a string or {"content": ...}.
std::string ConfigToken(const nlohmann::json& config, const char* key) {
  if (!config.contains(key)) return "";
  const nlohmann::json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer::~Tokenizer() = default;
int32_t Tokenizer::bos_id() const { return -1; }
int32_t Tokenizer::eos_id() const { return -1; }
int64_t Tokenizer::vocab_size() const { return 0; }
std::optional<int32_t> Tokenizer::TokenToId(std::string_view) const { return std::nullopt; }

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view, const std::vector<TextSpan>&) const {
  return absl::UnimplementedError("this tokenizer cannot encode text with literal spans");
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::EncodeLiteral(std::string_view text) const {
  return Encode(text, std::vector<TextSpan>{{0, text.size()}});
}

absl::Status CheckTextSpans(size_t size, const std::vector<TextSpan>& spans) {
  for (const TextSpan& span : spans) {
    if (span.begin > span.end || span.end > size) {
      return absl::InvalidArgumentError(absl::StrCat("literal span [", span.begin, ", ", span.end,
                                                     ") does not lie inside a text of ", size, " bytes"));
    }
  }
  return absl::OkStatus();
}

bool OverlapsTextSpans(size_t begin, size_t end, const std::vector<TextSpan>& spans) {
  for (const TextSpan& span : spans) {
    if (begin < span.end && span.begin < end) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  const std::filesystem::path json_path = dir / "tokenizer.json";
  const std::filesystem::path sp_path = dir / "tokenizer.model";
  if (std::filesystem::exists(json_path)) {
    SRLM_ASSIGN_OR_RETURN(std::string json_text, ReadFile(json_path));
    if (ByteLevelBpeTokenizer::LooksByteLevel(json_text) || !std::filesystem::exists(sp_path)) {
      std::string bos, eos;
      if (std::filesystem::exists(dir / "tokenizer_config.json")) {
        SRLM_ASSIGN_OR_RETURN(std::string config_text, ReadFile(dir / "tokenizer_config.json"));
        const nlohmann::json config = nlohmann::json::parse(config_text, nullptr, /*allow_exceptions=*/false);
        if (config.is_discarded()) {
          return absl::InvalidArgumentError(absl::StrCat((dir / "tokenizer_config.json").string(), " is not valid JSON"));
        }
        bos = ConfigToken(config, "bos_token");
        eos = ConfigToken(config, "eos_token");
      }
      auto tok = ByteLevelBpeTokenizer::FromJson(json_text, bos, eos);
      if (!tok.ok()) return absl::Status(tok.status().code(), absl::StrCat(json_path.string(), ": ", tok.status().message()));
      return std::unique_ptr<Tokenizer>(std::move(tok).value());
    }
  }
  if (std::filesystem::exists(sp_path)) {
    SRLM_ASSIGN_OR_RETURN(auto tok, SentencePieceTokenizer::FromFile(sp_path.string()));
    return std::unique_ptr<Tokenizer>(std::move(tok));
  }
  if (!std::filesystem::is_directory(model_dir)) {
    return absl::NotFoundError(absl::StrCat("model directory ", model_dir, " does not exist"));
  }
  return absl::NotFoundError(absl::StrCat("no tokenizer.json or tokenizer.model in ", model_dir));
}

}  // namespace srlm
