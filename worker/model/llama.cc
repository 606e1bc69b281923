#include "worker/model/llama.h"

#include <sys/sysinfo.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/model/out_of_memory.h"
#include "worker/model/rms_norm_cpu.h"

namespace srlm {
namespace {

// Rotary embedding of x (..., D) with cos = [c, c] and signed_sin = [-s, s] over the two halves:
// x * cos + rotate_half(x) * sin, where rotate_half(x) = [-x2, x1] = roll(x, D/2) * [-1, 1]; the
// sign lives in signed_sin, so this is 4 ops instead of 7 (it runs twice per layer and token).
torch::Tensor Rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& signed_sin) {
  return x * cos + x.roll(x.size(-1) / 2, -1) * signed_sin;
}

torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// "<n> bytes (<x> GiB)", or MiB under a GiB.
std::string BytesText(int64_t bytes) {
  if (bytes < (int64_t{1} << 30)) {
    return absl::StrFormat("%d bytes (%.1f MiB)", bytes, static_cast<double>(bytes) / (int64_t{1} << 20));
  }
  return absl::StrFormat("%d bytes (%.1f GiB)", bytes, static_cast<double>(bytes) / (int64_t{1} << 30));
}

// The sizes that decide the parameter count, for messages.
std::string SizesText(const LlamaConfig& c) {
  return absl::StrCat("vocab_size ", c.vocab_size, ", hidden_size ", c.hidden_size, ", intermediate_size ",
                      c.intermediate_size, ", num_hidden_layers ", c.num_hidden_layers);
}

// RAM plus swap in bytes, or -1 when unknown.
int64_t HostMemoryBytes() {
  struct sysinfo info;
  if (::sysinfo(&info) != 0) return -1;
  const unsigned __int128 total =
      (static_cast<unsigned __int128>(info.totalram) + info.totalswap) * info.mem_unit;
  return total > static_cast<unsigned __int128>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(total);
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> LlamaParameterShapes(const LlamaConfig& c) {
  // The order of the constructors below: a Linear registers its weight, then its bias.
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  auto linear = [&](const std::string& name, int64_t in, int64_t out, bool bias) {
    shapes.emplace_back(name + ".weight", std::vector<int64_t>{out, in});
    if (bias) shapes.emplace_back(name + ".bias", std::vector<int64_t>{out});
  };
  const int64_t head_dim = c.resolved_head_dim();
  const int64_t q_out = c.num_attention_heads * head_dim, kv_out = c.num_key_value_heads * head_dim;
  shapes.emplace_back("model.embed_tokens.weight", std::vector<int64_t>{c.vocab_size, c.hidden_size});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string layer = absl::StrCat("model.layers.", i, ".");
    linear(layer + "self_attn.q_proj", c.hidden_size, q_out, c.qkv_bias());
    linear(layer + "self_attn.k_proj", c.hidden_size, kv_out, c.qkv_bias());
    linear(layer + "self_attn.v_proj", c.hidden_size, kv_out, c.qkv_bias());
    linear(layer + "self_attn.o_proj", q_out, c.hidden_size, c.o_bias());
    linear(layer + "mlp.gate_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
    linear(layer + "mlp.up_proj", c.hidden_size, c.intermediate_size, c.mlp_bias);
    linear(layer + "mlp.down_proj", c.intermediate_size, c.hidden_size, c.mlp_bias);
    shapes.emplace_back(layer + "input_layernorm.weight", std::vector<int64_t>{c.hidden_size});
    shapes.emplace_back(layer + "post_attention_layernorm.weight", std::vector<int64_t>{c.hidden_size});
  }
  shapes.emplace_back("model.norm.weight", std::vector<int64_t>{c.hidden_size});
  if (!c.tie_word_embeddings) linear("lm_head", c.hidden_size, c.vocab_size, false);
  return shapes;
}

absl::StatusOr<int64_t> LlamaParameterBytes(const LlamaConfig& config, int64_t element_size) {
  // One layer's bytes times the layers, so that a model of many layers is not listed name by name
  // just to be counted (the shapes of layer 0 stand for all).
  LlamaConfig one_layer = config;
  one_layer.num_hidden_layers = 1;
  int64_t outside = 0, layer = 0;
  for (const auto& [name, shape] : LlamaParameterShapes(one_layer)) {
    int64_t bytes = element_size;
    for (int64_t d : shape) {
      if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes)) bytes = -1;
      if (bytes < 0) break;
    }
    int64_t& sum = name.rfind("model.layers.", 0) == 0 ? layer : outside;
    if (bytes < 0 || __builtin_add_overflow(sum, bytes, &sum)) {
      return absl::InvalidArgumentError(absl::StrCat("the model's parameters overflow a 64-bit byte count (",
                                                     SizesText(config), ")"));
    }
  }
  int64_t total = 0;
  if (__builtin_mul_overflow(layer, config.num_hidden_layers, &total) || __builtin_add_overflow(total, outside, &total)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model's parameters overflow a 64-bit byte count (", SizesText(config), ")"));
  }
  return total;
}

absl::StatusOr<LlamaModel> NewLlamaModel(const LlamaConfig& config, torch::ScalarType dtype) {
  absl::StatusOr<int64_t> bytes = LlamaParameterBytes(config, /*element_size=*/4);
  if (!bytes.ok()) return bytes.status();
  const std::string need = absl::StrCat("the model's parameters need ", BytesText(*bytes), " as float32 (",
                                        SizesText(config), ")");
  const int64_t host = HostMemoryBytes();
  if (host > 0 && *bytes > host) {
    return absl::ResourceExhaustedError(
        absl::StrCat(need, ", more than this machine's memory (RAM and swap: ", BytesText(host), ")"));
  }
  try {
    LlamaModel model(config);
    model->to(dtype);
    return model;
  } catch (const c10::Error& e) {
    if (IsOutOfMemory(e)) return absl::ResourceExhaustedError(absl::StrCat(need, ": the allocation failed (out of memory)"));
    return absl::InternalError(absl::StrCat("building the model: ", e.what_without_backtrace()));
  }
}

torch::Tensor RotaryInverseFrequencies(const LlamaConfig& config) {
  const int64_t dim = config.resolved_head_dim();
  auto exponents = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / static_cast<double>(dim);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(config.rope_theta, torch::kFloat32), exponents);
  if (!config.rope_scaling) return inv_freq;
  const auto& s = *config.rope_scaling;
  const double old_len = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_len / s.low_freq_factor;
  const double high_freq_wavelen = old_len / s.high_freq_factor;
  auto wavelen = 2 * M_PI / inv_freq;
  auto inv_freq_llama = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  auto smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  auto smoothed = (1 - smooth) * inv_freq_llama / s.factor + smooth * inv_freq_llama;
  auto is_medium = torch::logical_not(wavelen < high_freq_wavelen).logical_and(torch::logical_not(wavelen > low_freq_wavelen));
  return torch::where(is_medium, smoothed, inv_freq_llama);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_in) : eps(eps_in) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // On CPU: loops over rows instead of eight kernels (worker/model/rms_norm_cpu.h says why).
  if (RmsNormCpuSupports(x, weight)) {
    return torch::GradMode::is_enabled() ? RmsNormTraining(x, weight, eps) : RmsNormInference(x, weight, eps);
  }
  auto xf = x.to(torch::kFloat32);
  auto normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

LlamaAttentionImpl::LlamaAttentionImpl(const LlamaConfig& c)
    : num_heads(c.num_attention_heads), num_kv_heads(c.num_key_value_heads), head_dim(c.resolved_head_dim()) {
  q_proj = register_module("q_proj", MakeLinear(c.hidden_size, num_heads * head_dim, c.qkv_bias()));
  k_proj = register_module("k_proj", MakeLinear(c.hidden_size, num_kv_heads * head_dim, c.qkv_bias()));
  v_proj = register_module("v_proj", MakeLinear(c.hidden_size, num_kv_heads * head_dim, c.qkv_bias()));
  o_proj = register_module("o_proj", MakeLinear(num_heads * head_dim, c.hidden_size, c.o_bias()));
  qkv_ = std::make_unique<FusedProjection>(std::vector<torch::nn::Linear>{q_proj, k_proj, v_proj});
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& attn_mask, bool is_causal, torch::Tensor cache_k,
                                          torch::Tensor cache_v, int64_t offset) {
  const int64_t B = x.size(0), T = x.size(1);
  // One matmul for q, k and v in inference (FusedProjection), and the rotation applied to q and k
  // together. Splits, not narrows: a split's backward is one concatenation, a narrow's a zero-filled
  // tensor of the whole input per part plus the additions that sum them (on an H200 the bf16 zero
  // fills alone were 3% of a 0.5B DPO step's kernel time).
  auto qkv = qkv_->Forward(x).view({B, T, num_heads + 2 * num_kv_heads, head_dim}).transpose(1, 2);
  auto qk_v = qkv.split_with_sizes({num_heads + num_kv_heads, num_kv_heads}, 1);
  auto q_k = Rotate(qk_v[0], cos, sin).split_with_sizes({num_heads, num_kv_heads}, 1);
  auto q = q_k[0];      // (B,H,T,D)
  auto k = q_k[1];      // (B,KH,T,D)
  auto v = qk_v[1];
  if (cache_k.defined()) {
    cache_k.narrow(2, offset, T).copy_(k);
    cache_v.narrow(2, offset, T).copy_(v);
    k = cache_k.narrow(2, 0, offset + T);
    v = cache_v.narrow(2, 0, offset + T);
  }
  std::optional<torch::Tensor> mask;
  if (attn_mask.defined()) mask = attn_mask;
  auto out = at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, is_causal && !attn_mask.defined(),
                                              /*scale=*/std::nullopt, /*enable_gqa=*/num_kv_heads != num_heads);
  out = out.transpose(1, 2).reshape({B, T, num_heads * head_dim});
  return o_matmul_.Forward(out, o_proj);
}

LlamaMlpImpl::LlamaMlpImpl(const LlamaConfig& c) {
  gate_proj = register_module("gate_proj", MakeLinear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  up_proj = register_module("up_proj", MakeLinear(c.hidden_size, c.intermediate_size, c.mlp_bias));
  down_proj = register_module("down_proj", MakeLinear(c.intermediate_size, c.hidden_size, c.mlp_bias));
  gate_up_ = std::make_unique<FusedProjection>(std::vector<torch::nn::Linear>{gate_proj, up_proj});
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  const int64_t inner = gate_proj->weight.size(0);
  auto gate_up = gate_up_->Forward(x).split(inner, -1);  // split, not narrow: see the attention
  return down_matmul_.Forward(torch::silu(gate_up[0]) * gate_up[1], down_proj);
}

LlamaDecoderLayerImpl::LlamaDecoderLayerImpl(const LlamaConfig& c) {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMlp(c));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaBackboneImpl::LlamaBackboneImpl(const LlamaConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(LlamaDecoderLayer(c));
    list->push_back(layers.back());
  }
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& c) : config(c) {
  model = register_module("model", LlamaBackbone(c));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", MakeLinear(c.hidden_size, c.vocab_size, false));
  inv_freq_ = RotaryInverseFrequencies(c);
  dropout_ = 0.0;
}

const torch::Tensor& LlamaModelImpl::output_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

std::pair<torch::Tensor, torch::Tensor> LlamaModelImpl::RotaryTables(const torch::Tensor& position_ids) {
  if (inv_freq_.device() != position_ids.device()) inv_freq_ = inv_freq_.to(position_ids.device());
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;  // (B,T,D/2)
  auto cos = freqs.cos(), sin = freqs.sin();
  const auto dtype = this->dtype();
  return {torch::cat({cos, cos}, -1).unsqueeze(1).to(dtype),    // (B,1,T,D)
          torch::cat({-sin, sin}, -1).unsqueeze(1).to(dtype)};  // signed: see Rotate
}

torch::Tensor LlamaModelImpl::RunLayers(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                        const torch::Tensor& attn_mask, bool is_causal, KVCache* cache) {
  auto [cos, sin] = RotaryTables(position_ids);
  const double p = is_training() ? dropout_ : 0.0;
  const DropoutRows dropout_rows = std::exchange(dropout_rows_, DropoutRows{});  // this forward's only
  auto h = model->embed_tokens->forward(input_ids);
  const int64_t offset = cache ? cache->length : 0;
  for (size_t i = 0; i < model->layers.size(); ++i) {
    auto& layer = model->layers[i];
    torch::Tensor ck, cv;
    if (cache) {
      ck = cache->keys[i];
      cv = cache->values[i];
    }
    auto a = layer->self_attn->forward(layer->input_layernorm->forward(h), cos, sin, attn_mask, is_causal, ck, cv,
                                       offset);
    if (p > 0) a = KeyedDropout(a, p, dropout_rows, 2 * i);
    h = h + a;
    auto m = layer->mlp->forward(layer->post_attention_layernorm->forward(h));
    if (p > 0) m = KeyedDropout(m, p, dropout_rows, 2 * i + 1);
    h = h + m;
  }
  if (cache) cache->length += input_ids.size(1);
  return model->norm->forward(h);
}

torch::Tensor LlamaModelImpl::logits(const torch::Tensor& hidden) {
  return output_matmul_.Forward(hidden, output_weight(), std::nullopt).to(torch::kFloat32);
}

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return logits(hidden_states(input_ids, attention_mask));
}

torch::Tensor LlamaModelImpl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  torch::Tensor position_ids, mask;
  // Right padding (every row's real tokens first, as training batches are) needs no mask: under
  // plain causal attention no real token sees a later padding slot, and positions count from 0 as
  // without padding. Only the padding rows' own outputs change, and those are ignored. Plain
  // causal attention lets SDPA take its flash kernels (on CUDA the difference is large; on this CPU
  // it was 2-10% of the attention time) and no (B,1,T,T) mask is built.
  const bool right_padded = !attention_mask.defined() || T < 2 ||
                            attention_mask.narrow(1, 1, T - 1).le(attention_mask.narrow(1, 0, T - 1)).all().item<bool>();
  if (right_padded) {
    position_ids = torch::arange(T, input_ids.options()).unsqueeze(0).expand({B, T});
  } else {
    auto keep = attention_mask.to(torch::kBool);
    position_ids = (keep.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
    auto causal = torch::ones({T, T}, keep.options()).tril();
    auto eye = torch::eye(T, keep.options());
    // A padding query attends to itself so that no row is empty (its output is ignored).
    mask = causal.unsqueeze(0).logical_and(keep.unsqueeze(1)).logical_or(eye).unsqueeze(1);  // (B,1,T,T)
  }
  return RunLayers(input_ids, position_ids, mask, /*is_causal=*/true, nullptr);
}

torch::Tensor LlamaModelImpl::forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                             const torch::Tensor& attn_mask, KVCache* cache, bool last_only) {
  const int64_t T = input_ids.size(1);
  TORCH_CHECK(cache->length + T <= cache->capacity(), "KV cache overflow: ", cache->length, " + ", T, " > ",
              cache->capacity());
  torch::Tensor mask = attn_mask;
  bool is_causal = false;
  if (!mask.defined() && T > 1) {
    if (cache->length == 0) {
      is_causal = true;
    } else {  // new tokens see all cached slots and the new ones causally
      auto opts = torch::TensorOptions().dtype(torch::kBool).device(input_ids.device());
      auto past = torch::ones({T, cache->length}, opts);
      mask = torch::cat({past, torch::ones({T, T}, opts).tril()}, 1).view({1, 1, T, cache->length + T});
    }
  }
  auto h = RunLayers(input_ids, position_ids, mask, is_causal, cache);
  if (last_only) h = h.narrow(1, T - 1, 1);
  return logits(h);
}

KVCache LlamaModelImpl::make_cache(int64_t batch, int64_t capacity) const {
  KVCache cache;
  auto opts = torch::TensorOptions().dtype(dtype()).device(device());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    cache.keys.push_back(torch::zeros({batch, config.num_key_value_heads, capacity, config.resolved_head_dim()}, opts));
    cache.values.push_back(torch::zeros({batch, config.num_key_value_heads, capacity, config.resolved_head_dim()}, opts));
  }
  return cache;
}

}  // namespace srlm
