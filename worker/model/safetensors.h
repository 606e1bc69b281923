// Reading and writing the safetensors format (8-byte little-endian header length, JSON header,
// raw little-endian data). Open() checks the whole header before any data is touched: a short
// file, a header length past the end, a tensor named twice, offsets out of range, overlapping or
// leaving bytes that belong to no tensor (as the reference implementation), a shape that does not
// match its byte range, or an unknown dtype is an error naming the file and the tensor. The file is
// memory-mapped read-only; reads never go past its end. A SafetensorsFile is immutable after Open
// and safe to read from several threads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"

namespace srlm {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // "F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
};

class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A CPU tensor holding a copy of the named tensor, in its stored dtype.
  absl::StatusOr<torch::Tensor> Read(const std::string& name) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device; stored as their dtype, contiguous, little-endian) to `path`, with
// `metadata` in "__metadata__" ({"format": "pt"} is always added, as transformers expects).
absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype name of a torch dtype, or an error for dtypes the format lacks.
absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType type);
absl::StatusOr<torch::ScalarType> TorchDtypeFromSafetensors(const std::string& name);

}  // namespace srlm
