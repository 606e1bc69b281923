// Command-line helpers shared by the model commands: device and dtype names, flag checks, the
// model's tokenizer, token ids in JSON.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/cli_checks.h"  // FiniteNumber, Integer: the commands' flag checks
#include "common/tokenizer/tokenizer.h"

namespace srlm {

// "cpu", "cuda", "cuda:N"; "auto" = cuda when available, else cpu.
absl::StatusOr<c10::Device> ParseDevice(const std::string& name);
// "float32" | "bfloat16" (also "fp32", "bf16"); "auto" = bfloat16 on CUDA, float32 on CPU.
absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& name, const c10::Device& device);

// The tokenizer of `model_dir`, or nullptr when the folder has none (neither tokenizer.json nor
// tokenizer.model). A tokenizer that is there but does not load is an error, never "none".
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerIfPresent(const std::string& model_dir);

// Integer ids from a JSON array, checked against the vocabulary.
absl::StatusOr<std::vector<int32_t>> JsonIds(const nlohmann::json& value, int64_t vocab_size, const std::string& what);

}  // namespace srlm
