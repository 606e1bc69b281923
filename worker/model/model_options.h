// Command-line helpers shared by the model commands: device and dtype names, JSONL files.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace srlm {

// "cpu", "cuda", "cuda:N"; "auto" = cuda when available, else cpu.
absl::StatusOr<torch::Device> ParseDevice(const std::string& name);
// "float32" | "bfloat16" (also "fp32", "bf16"); "auto" = bfloat16 on CUDA, float32 on CPU.
absl::StatusOr<torch::ScalarType> ParseDtype(const std::string& name, const torch::Device& device);
// Every non-empty line of `path` as a JSON object; errors name the file and line.
absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path);
absl::Status WriteJsonl(const std::string& path, const std::vector<nlohmann::json>& lines);
// Integer ids from a JSON array, checked against the vocabulary.
absl::StatusOr<std::vector<int32_t>> JsonIds(const nlohmann::json& value, int64_t vocab_size, const std::string& what);

}  // namespace srlm
