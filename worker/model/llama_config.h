// LlamaConfig: the Hugging Face config.json of a Llama-family decoder (Llama 2/3, Mistral, Qwen2,
// SmolLM), read and written as JSON. No libtorch. Reads both the transformers 4 keys (rope_theta,
// rope_scaling) and the transformers 5 key rope_parameters; writes the 4.x keys, which 5.x accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace srlm {

// Llama 3 frequency-dependent rope scaling ("rope_type": "llama3").
struct Llama3RopeScaling {
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  std::string model_type = "llama";  // "llama", "mistral", "qwen2" (q/k/v bias) ...
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // < num_attention_heads: grouped-query attention
  int64_t head_dim = 0;              // 0: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<Llama3RopeScaling> rope_scaling;  // Llama 3 only; none: plain rope
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // bias on q/k/v (and on o_proj for model_type llama)
  bool mlp_bias = false;        // bias on gate/up/down (Llama only)
  double attention_dropout = 0.0;
  int64_t bos_token_id = -1;                // -1 when none
  int64_t eos_token_id = -1;                // the first EOS id, -1 when none
  std::vector<int64_t> eos_token_ids;       // all EOS ids (Llama 3 lists several)
  std::string torch_dtype = "float32";      // the dtype the weights are stored in
  // Sliding-window attention (Mistral; Qwen2 when use_sliding_window): each token attends to this
  // many tokens at most. srlm attends to all earlier tokens, which is the same computation while a
  // sequence fits in the window, so it keeps every sequence within it (attention_window()).
  std::optional<int64_t> sliding_window;
  bool use_sliding_window = false;          // Qwen2's switch for sliding_window
  std::optional<int64_t> max_window_layers;  // Qwen2: kept to write back as read

  int64_t resolved_head_dim() const {
    return head_dim > 0 ? head_dim : hidden_size / num_attention_heads;
  }
  // q/k/v projections carry a bias (Qwen2 always, Llama when attention_bias).
  bool qkv_bias() const { return attention_bias || model_type == "qwen2"; }
  // o_proj carries a bias (Llama's attention_bias; Qwen2 never).
  bool o_bias() const { return attention_bias && model_type != "qwen2"; }
  // The sliding window in force, if any (Mistral's sliding_window; Qwen2's with use_sliding_window).
  std::optional<int64_t> attention_window() const {
    if (model_type == "mistral" || (model_type == "qwen2" && use_sliding_window)) return sliding_window;
    return std::nullopt;
  }
  // The longest sequence srlm trains on, samples or scores by default: max_position_embeddings, or
  // the attention window when smaller (past it srlm would not compute what the model does).
  int64_t context_length() const {
    const std::optional<int64_t> window = attention_window();
    return window && *window < max_position_embeddings ? *window : max_position_embeddings;
  }
  // The config.json key context_length() comes from, for messages.
  const char* context_length_key() const {
    const std::optional<int64_t> window = attention_window();
    return window && *window < max_position_embeddings ? "sliding_window" : "max_position_embeddings";
  }
};

// The model_type values this decoder implements: "llama", "mistral", "qwen2".
const std::vector<std::string>& SupportedModelTypes();

// Checks model_type is supported, the sizes are positive and consistent (heads divide, kv heads
// divide heads), vocab_size fits int32, bos_token_id (unless -1, none) and every eos_token_id are in
// [0, vocab_size), rms_norm_eps and rope_theta are finite and > 0, attention_dropout is in [0, 1).
// Errors name the key.
absl::Status ValidateLlamaConfig(const LlamaConfig& config);
// Every field it reads is type-checked: a key absent or null keeps its default; a value of another
// type ("hidden_size": 64.9, "eos_token_id": "1", "model_type": 5) is an error naming the key.
// Keys it does not read are ignored. Text that is not valid JSON is InvalidArgument with the
// parser's line, column and reason (common/json_text.h); valid JSON that is not an object says what
// it holds. The result passes ValidateLlamaConfig.
absl::StatusOr<LlamaConfig> ParseLlamaConfigJson(const std::string& json_text);
// As ParseLlamaConfigJson; errors are prefixed with the path.
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& config_json_path);
std::string LlamaConfigToJson(const LlamaConfig& config);
absl::Status SaveLlamaConfig(const LlamaConfig& config, const std::string& config_json_path);

}  // namespace srlm
