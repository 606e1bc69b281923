// LlamaModel: a Llama-family decoder (RMSNorm, rotary embeddings with optional Llama 3 scaling,
// grouped-query attention through scaled_dot_product_attention, SwiGLU, optional q/k/v bias as in
// Qwen2, tied or untied embeddings) in libtorch. Parameter names match Hugging Face's
// LlamaForCausalLM ("model.layers.0.self_attn.q_proj.weight", "lm_head.weight"), so checkpoints
// map one to one. Not thread-safe: one caller at a time per model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "worker/model/fused_projection.h"
#include "worker/model/keyed_dropout.h"
#include "worker/model/llama_config.h"

namespace srlm {

// Preallocated key/value cache for incremental decoding: one (B, kv_heads, capacity, head_dim)
// tensor per layer for keys and for values; slots [0, length) are filled.
struct KVCache {
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  int64_t length = 0;
  int64_t capacity() const { return keys.empty() ? 0 : keys[0].size(2); }
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // normalises in float32, scales in x's dtype
  torch::Tensor weight;  // (dim)
  double eps;
};
TORCH_MODULE(RMSNorm);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& config);
  // x (B,T,C); cos/signed sin (B,1,T,D) from RotaryTables; attn_mask (B,1,T,S) bool or undefined
  // (then causal when is_causal); when cache_k/cache_v are defined, k/v are written at slots
  // [offset, offset+T) and attention runs over slots [0, offset+T).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& attn_mask, bool is_causal, torch::Tensor cache_k,
                        torch::Tensor cache_v, int64_t offset);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;

 private:
  std::unique_ptr<FusedProjection> qkv_;  // q, k and v (one matmul in inference)
  PackedLinear o_matmul_;                 // o_proj (prepacked in inference on CPU)
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const LlamaConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  std::unique_ptr<FusedProjection> gate_up_;  // gate and up (one matmul in inference)
  PackedLinear down_matmul_;                  // down_proj (prepacked in inference on CPU)
};
TORCH_MODULE(LlamaMlp);

class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const LlamaConfig& config);
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaDecoderLayer);

// The "model." prefix of Hugging Face names: embeddings, layers, final norm.
class LlamaBackboneImpl : public torch::nn::Module {
 public:
  explicit LlamaBackboneImpl(const LlamaConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  std::vector<LlamaDecoderLayer> layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBackbone);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const LlamaConfig& config);

  // input_ids (B,T) int64, attention_mask (B,T) 1 = real token (right or left padding); returns
  // logits (B,T,V) float32. Positions count real tokens only, so padding does not shift them;
  // the values at padding positions are unspecified.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});

  // The same pass up to the final norm: hidden states (B,T,hidden) in the model dtype, for callers
  // that need logits at a few positions only (sequence log-probabilities: response tokens).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});
  // The output projection of hidden states (..., hidden) -> logits (..., V) float32.
  torch::Tensor logits(const torch::Tensor& hidden);

  // Incremental step: runs input_ids (B,T) with position_ids (B,T) at cache slots
  // [cache->length, cache->length + T) and advances cache->length by T. attn_mask (B,1,T,length+T)
  // bool (true = attend) or undefined for plain causal attention over all slots. Returns logits in
  // float32: (B,T,V), or (B,1,V) for the last position only when last_only.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& attn_mask, KVCache* cache, bool last_only);

  // A zeroed cache for `batch` sequences of up to `capacity` tokens, on the model's device/dtype.
  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // Dropout in training mode on the attention and MLP outputs before each residual add (0 by
  // default; no effect in eval mode). It is keyed (keyed_dropout.h): with p > 0, a training-mode
  // forward needs the rows of its batch set first, one key and real length per row. The next
  // forward uses them and clears them, so a forward with no rows set is an error, not a reuse.
  void set_dropout(double p) { dropout_ = p; }
  double dropout() const { return dropout_; }
  void set_dropout_rows(DropoutRows rows) { dropout_rows_ = std::move(rows); }

  torch::Device device() const { return model->embed_tokens->weight.device(); }
  torch::ScalarType dtype() const { return model->embed_tokens->weight.scalar_type(); }
  // The output projection: lm_head.weight, or the embedding matrix when tied.
  const torch::Tensor& output_weight() const;

  LlamaConfig config;
  LlamaBackbone model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  // cos and signed sin (B,1,T,D) in the model dtype for integer positions (B,T): cos = [c, c] and
  // sin = [-s, s] over the two halves of the head dimension (llama.cc Rotate).
  std::pair<torch::Tensor, torch::Tensor> RotaryTables(const torch::Tensor& position_ids);
  torch::Tensor RunLayers(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                          const torch::Tensor& attn_mask, bool is_causal, KVCache* cache);

  PackedLinear output_matmul_;  // lm_head or the tied embedding (prepacked in inference on CPU)
  torch::Tensor inv_freq_;  // (D/2) float32, kept off the module's buffers so .to(bf16) keeps it
  double dropout_ = 0.0;
  DropoutRows dropout_rows_;
};
TORCH_MODULE(LlamaModel);

// The parameters a LlamaModel of `config` has, by Hugging Face name with their shapes, in the
// order the model registers them (its named_parameters()), computed from the config alone: nothing
// is allocated. LoadModel checks a checkpoint's safetensors headers against it before it builds the
// model, so weights that disagree with config.json cost nothing.
std::vector<std::pair<std::string, std::vector<int64_t>>> LlamaParameterShapes(const LlamaConfig& config);

// The bytes of those parameters at `element_size` bytes per element; InvalidArgument when the count
// overflows int64 (sizes no machine could hold).
absl::StatusOr<int64_t> LlamaParameterBytes(const LlamaConfig& config, int64_t element_size);

// A new LlamaModel of `config` with parameters in `dtype` (libtorch's initialisation). The model is
// built in float32 on the CPU, then converted, so it needs LlamaParameterBytes(config, 4) bytes of
// host memory: more than the machine's RAM and swap together is ResourceExhausted before anything is
// allocated, and so is an allocation that fails; the message gives the bytes and the sizes of the
// config, never the allocator's text.
absl::StatusOr<LlamaModel> NewLlamaModel(const LlamaConfig& config, torch::ScalarType dtype);

// The rotary inverse frequencies (head_dim/2) in float32, with Llama 3 scaling when configured;
// the same formula as transformers' _compute_default/llama3_rope_parameters.
torch::Tensor RotaryInverseFrequencies(const LlamaConfig& config);

}  // namespace srlm
