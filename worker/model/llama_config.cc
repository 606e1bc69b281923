#include "worker/model/llama_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_text.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

using nlohmann::json;

// An integer JSON number that fits in int64 (nlohmann keeps large non-negative ones unsigned).
bool IsInt64(const json& v) {
  return v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t{INT64_MAX});
}

absl::Status WrongType(const std::string& key, const json& value, const char* expected) {
  std::string shown = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
  return absl::InvalidArgumentError(absl::StrCat("key '", key, "': expected ", expected, ", got ", shown));
}

// Typed fields of one JSON object. A field absent or null leaves *out as it is; a value of another
// type (a string where a number goes, 64.9 for an integer) is an error naming the key, prefixed
// with `prefix` for a nested object ("rope_scaling.").
class FieldReader {
 public:
  explicit FieldReader(const json& object, std::string prefix = "") : object_(object), prefix_(std::move(prefix)) {}

  absl::Status Int(const std::string& key, int64_t* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!IsInt64(*v)) return WrongType(prefix_ + key, *v, "an integer");
    *out = v->get<int64_t>();
    return absl::OkStatus();
  }
  absl::Status Double(const std::string& key, double* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number() || !std::isfinite(v->get<double>())) return WrongType(prefix_ + key, *v, "a finite number");
    *out = v->get<double>();
    return absl::OkStatus();
  }
  absl::Status Bool(const std::string& key, bool* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_boolean()) return WrongType(prefix_ + key, *v, "true or false");
    *out = v->get<bool>();
    return absl::OkStatus();
  }
  absl::Status String(const std::string& key, std::string* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return WrongType(prefix_ + key, *v, "a string");
    *out = v->get<std::string>();
    return absl::OkStatus();
  }
  // One integer or a list of integers (eos_token_id of Llama 3).
  absl::Status IntList(const std::string& key, std::vector<int64_t>* out) const {
    const json* v = Find(key);
    if (v == nullptr) return absl::OkStatus();
    const bool ok = v->is_array() ? std::all_of(v->begin(), v->end(), IsInt64) : IsInt64(*v);
    if (!ok) return WrongType(prefix_ + key, *v, "an integer or a list of integers");
    if (v->is_array()) {
      for (const json& e : *v) out->push_back(e.get<int64_t>());
    } else {
      out->push_back(v->get<int64_t>());
    }
    return absl::OkStatus();
  }
  // The nested object `key`, or nullptr when absent or null.
  absl::StatusOr<const json*> Object(const std::string& key) const {
    const json* v = Find(key);
    if (v != nullptr && !v->is_object()) return WrongType(prefix_ + key, *v, "an object");
    return v;
  }

 private:
  const json* Find(const std::string& key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& object_;
  const std::string prefix_;
};

// Reads rope_theta / llama3 scaling from either rope_scaling (4.x) or rope_parameters (5.x).
absl::Status ReadRope(const FieldReader& top, LlamaConfig* c) {
  SRLM_RETURN_IF_ERROR(top.Double("rope_theta", &c->rope_theta));
  for (const std::string key : {"rope_scaling", "rope_parameters"}) {
    SRLM_ASSIGN_OR_RETURN(const json* object, top.Object(key));
    if (object == nullptr) continue;
    const FieldReader rope(*object, key + ".");
    SRLM_RETURN_IF_ERROR(rope.Double("rope_theta", &c->rope_theta));
    std::string type = "default";
    SRLM_RETURN_IF_ERROR(rope.String("type", &type));
    SRLM_RETURN_IF_ERROR(rope.String("rope_type", &type));  // the newer name wins
    if (type == "default") continue;
    if (type != "llama3") {
      return absl::UnimplementedError(absl::StrCat("unsupported rope_type '", type, "' in ", key));
    }
    Llama3RopeScaling s;
    SRLM_RETURN_IF_ERROR(rope.Double("factor", &s.factor));
    SRLM_RETURN_IF_ERROR(rope.Double("low_freq_factor", &s.low_freq_factor));
    SRLM_RETURN_IF_ERROR(rope.Double("high_freq_factor", &s.high_freq_factor));
    SRLM_RETURN_IF_ERROR(rope.Int("original_max_position_embeddings", &s.original_max_position_embeddings));
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

// Mistral's sliding_window (an integer, or null for none) and Qwen2's, with use_sliding_window and
// max_window_layers. Llama has none: the keys are not read for it.
absl::Status ReadSlidingWindow(const FieldReader& f, LlamaConfig* c) {
  if (c->model_type != "mistral" && c->model_type != "qwen2") return absl::OkStatus();
  int64_t window = 0;  // absent or null: none
  SRLM_RETURN_IF_ERROR(f.Int("sliding_window", &window));
  if (window < 0) return absl::InvalidArgumentError(absl::StrCat("sliding_window ", window, " is negative"));
  if (window > 0) c->sliding_window = window;
  if (c->model_type == "qwen2") {
    SRLM_RETURN_IF_ERROR(f.Bool("use_sliding_window", &c->use_sliding_window));
    int64_t layers = -1;
    SRLM_RETURN_IF_ERROR(f.Int("max_window_layers", &layers));
    if (layers >= 0) c->max_window_layers = layers;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateLlamaConfig(const LlamaConfig& c) {
  if (!IsSupportedModelType(c.model_type)) return absl::InvalidArgumentError(UnsupportedModelType(c.model_type));
  const std::pair<const char*, int64_t> sizes[] = {
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"max_position_embeddings", c.max_position_embeddings}};
  for (const auto& [key, value] : sizes) {
    if (value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("config sizes must be positive: ", key, " is ", value));
    }
  }
  if (c.vocab_size > INT32_MAX) {  // token ids are int32 everywhere
    return absl::InvalidArgumentError(absl::StrCat("vocab_size ", c.vocab_size, " is over 2^31 - 1 (token ids are int32)"));
  }
  // Special token ids must be rows of the embedding (bos_token_id -1 is none, as null).
  const auto outside = [&](int64_t id) { return id < 0 || id >= c.vocab_size; };
  if (c.bos_token_id != -1 && outside(c.bos_token_id)) {
    return absl::InvalidArgumentError(absl::StrCat("bos_token_id ", c.bos_token_id, " is outside the vocabulary [0, ",
                                                   c.vocab_size, ") of vocab_size"));
  }
  for (const int64_t id : c.eos_token_ids) {
    if (outside(id)) {
      return absl::InvalidArgumentError(absl::StrCat("eos_token_id ", id, " is outside the vocabulary [0, ", c.vocab_size,
                                                     ") of vocab_size"));
    }
  }
  if (c.eos_token_id != -1 && outside(c.eos_token_id)) {
    return absl::InvalidArgumentError(absl::StrCat("eos_token_id ", c.eos_token_id, " is outside the vocabulary [0, ",
                                                   c.vocab_size, ") of vocab_size"));
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
  // !(x > 0) also refuses nan.
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0) || !std::isfinite(c.rms_norm_eps) || !std::isfinite(c.rope_theta)) {
    return absl::InvalidArgumentError(absl::StrCat("rms_norm_eps (", c.rms_norm_eps, ") and rope_theta (", c.rope_theta,
                                                   ") must be finite numbers > 0"));
  }
  if (!(c.attention_dropout >= 0 && c.attention_dropout < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("attention_dropout ", c.attention_dropout, " is not in [0, 1)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LlamaConfig> ParseLlamaConfigJson(const std::string& json_text) {
  absl::StatusOr<json> parsed = ParseJsonText(json_text);
  if (!parsed.ok()) return parsed.status();
  const json& j = *parsed;
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat("not a JSON object: it holds ", JsonKindName(j)));
  const FieldReader f(j);
  LlamaConfig c;
  SRLM_RETURN_IF_ERROR(f.String("model_type", &c.model_type));
  if (!IsSupportedModelType(c.model_type)) return absl::UnimplementedError(UnsupportedModelType(c.model_type));
  std::string hidden_act = "silu";
  SRLM_RETURN_IF_ERROR(f.String("hidden_act", &hidden_act));
  if (hidden_act != "silu") {
    return absl::UnimplementedError(absl::StrCat("hidden_act '", hidden_act, "': must be silu"));
  }
  SRLM_RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
  SRLM_RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
  SRLM_RETURN_IF_ERROR(f.Int("intermediate_size", &c.intermediate_size));
  SRLM_RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_hidden_layers));
  SRLM_RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_attention_heads));
  c.num_key_value_heads = c.num_attention_heads;
  SRLM_RETURN_IF_ERROR(f.Int("num_key_value_heads", &c.num_key_value_heads));
  SRLM_RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim));
  SRLM_RETURN_IF_ERROR(f.Int("max_position_embeddings", &c.max_position_embeddings));
  SRLM_RETURN_IF_ERROR(f.Double("rms_norm_eps", &c.rms_norm_eps));
  SRLM_RETURN_IF_ERROR(f.Bool("tie_word_embeddings", &c.tie_word_embeddings));
  SRLM_RETURN_IF_ERROR(f.Bool("attention_bias", &c.attention_bias));
  SRLM_RETURN_IF_ERROR(f.Bool("mlp_bias", &c.mlp_bias));
  SRLM_RETURN_IF_ERROR(f.Double("attention_dropout", &c.attention_dropout));
  SRLM_RETURN_IF_ERROR(f.Int("bos_token_id", &c.bos_token_id));
  SRLM_RETURN_IF_ERROR(f.IntList("eos_token_id", &c.eos_token_ids));
  if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  SRLM_RETURN_IF_ERROR(f.String("torch_dtype", &c.torch_dtype));
  SRLM_RETURN_IF_ERROR(f.String("dtype", &c.torch_dtype));  // transformers 5
  SRLM_RETURN_IF_ERROR(ReadRope(f, &c));
  SRLM_RETURN_IF_ERROR(ReadSlidingWindow(f, &c));
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
  // Mistral always names its window: transformers' MistralConfig would otherwise give one of 4096
  // to a model that has none.
  if (c.model_type == "mistral") {
    j["sliding_window"] = c.sliding_window ? json(*c.sliding_window) : json(nullptr);
  } else if (c.model_type == "qwen2") {
    if (c.sliding_window) j["sliding_window"] = *c.sliding_window;
    j["use_sliding_window"] = c.use_sliding_window;
    if (c.max_window_layers) j["max_window_layers"] = *c.max_window_layers;
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
