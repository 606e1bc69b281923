#include "worker/model/model_options.h"

#include <fstream>

#include "absl/strings/str_cat.h"

namespace srlm {

absl::StatusOr<torch::Device> ParseDevice(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  try {
    torch::Device device(name);
    if (device.is_cuda() && !torch::cuda::is_available()) return absl::FailedPreconditionError("CUDA is not available");
    return device;
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError(absl::StrCat("unknown device '", name, "'"));
  }
}

absl::StatusOr<torch::ScalarType> ParseDtype(const std::string& name, const torch::Device& device) {
  if (name == "auto") return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (name == "float32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "' (float32 or bfloat16)"));
}

absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<nlohmann::json> lines;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": not a JSON object"));
    }
    lines.push_back(std::move(j));
  }
  return lines;
}

absl::Status WriteJsonl(const std::string& path, const std::vector<nlohmann::json>& lines) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  for (const auto& j : lines) out << j.dump() << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
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
