// Hugging Face model directories in and out: config.json plus model.safetensors, or shards with
// model.safetensors.index.json. Loading checks that every parameter is present exactly once with
// the right shape and that no file holds a tensor the model lacks; errors name the file and tensor.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/model/llama.h"

namespace srlm {

// Loads config.json and the weights of `dir` into a model on `device` with parameters in `dtype`
// (kFloat32 or kBFloat16; weights stored as F32/BF16/F16 are converted). The model is in eval mode.
// In order: `dir` must be a directory; checksums.sha256 when present (checksums.h); config.json;
// then every tensor's name, shape and dtype in the safetensors headers against the parameters the
// config describes (LlamaParameterShapes), so that weights disagreeing with the config are DataLoss
// before any memory is taken for the model; then the model is built (NewLlamaModel: too large for
// the machine or an allocation that fails is ResourceExhausted with the bytes needed) and filled.
absl::StatusOr<LlamaModel> LoadModel(const std::string& dir, torch::Device device, torch::ScalarType dtype);

struct SaveModelOptions {
  // Shard when the weights exceed this many bytes (model-0000i-of-0000n.safetensors + index).
  int64_t max_shard_bytes = int64_t{5} << 30;
  // When not empty, tokenizer files (tokenizer.json, tokenizer.model, tokenizer_config.json,
  // special_tokens_map.json, generation_config.json) found there are copied into the new dir (there
  // may be none).
  std::string tokenizer_source_dir;
};

// Writes `model` to `dir` (created if missing) in the HF layout, weights in the model's dtype.
absl::Status SaveModel(LlamaModel& model, const std::string& dir);
absl::Status SaveModel(LlamaModel& model, const std::string& dir, const SaveModelOptions& options);

// Copies the tokenizer files present in `from_dir` into `to_dir`; returns how many were copied.
absl::StatusOr<int> CopyTokenizerFiles(const std::string& from_dir, const std::string& to_dir);

// Re-initialises all weights as transformers does for a new model: normal(0, std) for linear and
// embedding weights, zero biases, ones for norms. Deterministic in `seed`.
void InitializeWeights(LlamaModel& model, uint64_t seed, double std = 0.02);

}  // namespace srlm
