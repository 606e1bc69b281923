#include "worker/model/llama_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

using nlohmann::json;

// Reads an integer field when present and not null.
void ReadInt(const json& j, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number()) *out = it->get<int64_t>();
}
void ReadDouble(const json& j, const char* key, double* out) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number()) *out = it->get<double>();
}
void ReadBool(const json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it != j.end() && it->is_boolean()) *out = it->get<bool>();
}

// Reads rope_theta / llama3 scaling from either rope_scaling (4.x) or rope_parameters (5.x).
absl::Status ReadRope(const json& j, LlamaConfig* c) {
  ReadDouble(j, "rope_theta", &c->rope_theta);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_object()) return absl::InvalidArgumentError(absl::StrCat(key, " is not an object"));
    ReadDouble(*it, "rope_theta", &c->rope_theta);
    std::string type = it->value("rope_type", it->value("type", std::string("default")));
    if (type == "default") continue;
    if (type != "llama3") {
      return absl::UnimplementedError(absl::StrCat("unsupported rope_type '", type, "' in ", key));
    }
    Llama3RopeScaling s;
    ReadDouble(*it, "factor", &s.factor);
    ReadDouble(*it, "low_freq_factor", &s.low_freq_factor);
    ReadDouble(*it, "high_freq_factor", &s.high_freq_factor);
    ReadInt(*it, "original_max_position_embeddings", &s.original_max_position_embeddings);
    if (s.high_freq_factor <= s.low_freq_factor || s.factor <= 0) {
      return absl::InvalidArgumentError("llama3 rope scaling needs high_freq_factor > low_freq_factor and factor > 0");
    }
    c->rope_scaling = s;
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<std::string>& SupportedModelTypes() {
  static const std::vector<std::string> kTypes = {"llama", "mistral", "qwen2"};
  return kTypes;
}

namespace {

bool IsSupportedModelType(const std::string& model_type) {
  return absl::c_linear_search(SupportedModelTypes(), model_type);
}

std::string UnsupportedModelType(const std::string& model_type) {
  return absl::StrCat("unsupported model_type '", model_type, "' (expected ", absl::StrJoin(SupportedModelTypes(), ", "),
                      ")");
}

}  // namespace

absl::Status ValidateLlamaConfig(const LlamaConfig& c) {
  if (!IsSupportedModelType(c.model_type)) return absl::InvalidArgumentError(UnsupportedModelType(c.model_type));
  if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.num_hidden_layers <= 0 ||
      c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 || c.max_position_embeddings <= 0) {
    return absl::InvalidArgumentError("config sizes must be positive");
  }
  if (c.head_dim <= 0 && c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
                                                   c.num_attention_heads));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_attention_heads ", c.num_attention_heads,
                                                   " is not a multiple of num_key_value_heads ", c.num_key_value_heads));
  }
  if (c.resolved_head_dim() % 2 != 0) return absl::InvalidArgumentError("head_dim must be even for rotary embeddings");
  if (c.rms_norm_eps <= 0 || c.rope_theta <= 0) return absl::InvalidArgumentError("rms_norm_eps and rope_theta must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<LlamaConfig> ParseLlamaConfigJson(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("config.json is not a JSON object");
  LlamaConfig c;
  c.model_type = j.value("model_type", std::string("llama"));
  if (!IsSupportedModelType(c.model_type)) return absl::UnimplementedError(UnsupportedModelType(c.model_type));
  if (j.value("hidden_act", std::string("silu")) != "silu") return absl::UnimplementedError("hidden_act must be silu");
  ReadInt(j, "vocab_size", &c.vocab_size);
  ReadInt(j, "hidden_size", &c.hidden_size);
  ReadInt(j, "intermediate_size", &c.intermediate_size);
  ReadInt(j, "num_hidden_layers", &c.num_hidden_layers);
  ReadInt(j, "num_attention_heads", &c.num_attention_heads);
  c.num_key_value_heads = c.num_attention_heads;
  ReadInt(j, "num_key_value_heads", &c.num_key_value_heads);
  ReadInt(j, "head_dim", &c.head_dim);
  ReadInt(j, "max_position_embeddings", &c.max_position_embeddings);
  ReadDouble(j, "rms_norm_eps", &c.rms_norm_eps);
  ReadBool(j, "tie_word_embeddings", &c.tie_word_embeddings);
  ReadBool(j, "attention_bias", &c.attention_bias);
  ReadBool(j, "mlp_bias", &c.mlp_bias);
  ReadDouble(j, "attention_dropout", &c.attention_dropout);
  ReadInt(j, "bos_token_id", &c.bos_token_id);
  auto eos = j.find("eos_token_id");
  if (eos != j.end()) {
    if (eos->is_number()) c.eos_token_ids.push_back(eos->get<int64_t>());
    if (eos->is_array()) {
      for (const auto& e : *eos) {
        if (e.is_number()) c.eos_token_ids.push_back(e.get<int64_t>());
      }
    }
  }
  if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) c.torch_dtype = it->get<std::string>();
  }
  SRLM_RETURN_IF_ERROR(ReadRope(j, &c));
  SRLM_RETURN_IF_ERROR(ValidateLlamaConfig(c));
  return c;
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ParseLlamaConfigJson(ss.str());
  if (!config.ok()) return srlm::internal::Annotate(config.status(), path);
  return config;
}

std::string LlamaConfigToJson(const LlamaConfig& c) {
  json j;
  j["architectures"] = {c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                        : c.model_type == "mistral" ? "MistralForCausalLM"
                                                    : "LlamaForCausalLM"};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.resolved_head_dim();
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type != "qwen2") {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  j["attention_dropout"] = c.attention_dropout;
  j["hidden_act"] = "silu";
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id; else j["bos_token_id"] = nullptr;
  if (c.eos_token_ids.size() > 1) {
    j["eos_token_id"] = c.eos_token_ids;
  } else if (c.eos_token_id >= 0) {
    j["eos_token_id"] = c.eos_token_id;
  } else {
    j["eos_token_id"] = nullptr;
  }
  j["torch_dtype"] = c.torch_dtype;
  j["use_cache"] = true;
  return j.dump(2);
}

absl::Status SaveLlamaConfig(const LlamaConfig& config, const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  out << LlamaConfigToJson(config) << "\n";
  if (!out.good()) return absl::InternalError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
}

}  // namespace srlm
