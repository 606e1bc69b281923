// Implementation of worker/model/model_options.h.
#include "worker/model/model_options.h"

#include <sys/stat.h>

#include <cerrno>

#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "absl/strings/str_cat.h"

namespace srlm {

absl::StatusOr<c10::Device> ParseDevice(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
  try {
    c10::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available()) return absl::FailedPreconditionError("CUDA is not available");
    return device;
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError(absl::StrCat("unknown device '", name, "'"));
  }
}

absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& name, const c10::Device& device) {
  if (name == "auto") return device.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  if (name == "float32" || name == "fp32") return c10::kFloat;
  if (name == "bfloat16" || name == "bf16") return c10::kBFloat16;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "' (float32 or bfloat16)"));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerIfPresent(const std::string& model_dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    struct stat st;
    // Anything but "no such file" (a file there, unreadable, a folder we cannot search): load and report.
    if (::stat((model_dir + "/" + name).c_str(), &st) == 0 || errno != ENOENT) return LoadTokenizer(model_dir);
  }
  return std::unique_ptr<Tokenizer>();
}

absl::StatusOr<std::vector<int32_t>> JsonIds(const nlohmann::json& value, int64_t vocab_size, const std::string& what) {
  if (!value.is_array()) return absl::InvalidArgumentError(absl::StrCat(what, " is not an array of ids"));
  std::vector<int32_t> ids;
  for (const auto& v : value) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(what, " holds ", v.dump(), ", not an id below ", vocab_size));
    }
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

}  // namespace srlm
