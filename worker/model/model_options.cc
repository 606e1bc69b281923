#include "worker/model/model_options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

// Whether the JSON text `line` nests arrays and objects deeper than `limit`: a scan that skips
// strings, with no recursion (nlohmann's parser would take the line, its serializer not).
bool NestedDeeperThan(const std::string& line, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

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

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerIfPresent(const std::string& model_dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    struct stat st;
    // Anything but "no such file" (a file there, unreadable, a folder we cannot search): load and report.
    if (::stat((model_dir + "/" + name).c_str(), &st) == 0 || errno != ENOENT) return LoadTokenizer(model_dir);
  }
  return std::unique_ptr<Tokenizer>();
}

absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, " is a directory, not a JSONL file"));
  std::ifstream in(path);
  if (!in) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  std::vector<nlohmann::json> lines;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (NestedDeeperThan(line, kMaxJsonlDepth)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": nested deeper than ", kMaxJsonlDepth, " levels of arrays and objects"));
    }
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": not a JSON object"));
    }
    lines.push_back(std::move(j));
  }
  if (in.bad()) return absl::ErrnoToStatus(errno, absl::StrCat("reading ", path));
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat("no lines in ", path));
  return lines;
}

absl::Status WriteJsonl(const std::string& path, const std::vector<nlohmann::json>& lines) {
  return WriteFileAtomically(path, [&](const ByteSink& sink) {
    std::string buffer;
    for (size_t i = 0; i < lines.size(); ++i) {
      buffer += lines[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      buffer += '\n';
      if (buffer.size() >= (1 << 20) || i + 1 == lines.size()) {
        if (absl::Status written = sink(buffer); !written.ok()) return written;
        buffer.clear();
      }
    }
    return absl::OkStatus();
  });
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
