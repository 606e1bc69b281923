// Implementation of worker/model/safetensors.h.
#include "worker/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace srlm {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's limit

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  int64_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"BF16", torch::kBFloat16, 2}, {"F16", torch::kFloat16, 2},
    {"F64", torch::kFloat64, 8}, {"I64", torch::kInt64, 8},     {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},       {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},   {"F8_E4M3", torch::kFloat8_e4m3fn, 1}, {"F8_E5M2", torch::kFloat8_e5m2, 1},
};

const DtypeInfo* FindDtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

std::string ShapeString(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

}  // namespace

struct SafetensorsFile::Mapping {
  void* data = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (data != nullptr && size > 0) munmap(data, size);
  }
};

absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType type) {
  for (const auto& d : kDtypes) {
    if (d.type == type) return std::string(d.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("dtype ", c10::toString(type), " has no safetensors name"));
}

absl::StatusOr<torch::ScalarType> TorchDtypeFromSafetensors(const std::string& name) {
  const DtypeInfo* d = FindDtype(name);
  if (d == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype '", name, "'"));
  return d->type;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  auto fail = [&](const std::string& what) { return absl::DataLossError(absl::StrCat(path, ": ", what)); };
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return fail("cannot stat");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  auto mapping = std::make_shared<Mapping>();
  if (file_size > 0) {
    void* p = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return fail(absl::StrCat("mmap failed: ", std::strerror(errno)));
    }
    mapping->data = p;
    mapping->size = file_size;
  }
  ::close(fd);
  if (file_size < 8) return fail(absl::StrCat("file is ", file_size, " bytes, shorter than the 8-byte header length"));
  const auto* bytes = static_cast<const unsigned char*>(mapping->data);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > file_size - 8) {
    return fail(absl::StrCat("header length ", header_len, " runs past the end of the file (", file_size, " bytes)"));
  }
  if (header_len > kMaxHeaderBytes) return fail(absl::StrCat("header length ", header_len, " exceeds 100 MiB"));
  // JSON keeps the last of two equal keys; a header that names a tensor twice is refused instead.
  std::set<std::string> top_level_keys;
  std::string repeated_key;
  auto note_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
        !top_level_keys.insert(parsed.get<std::string>()).second && repeated_key.empty()) {
      repeated_key = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::json header =
      nlohmann::json::parse(bytes + 8, bytes + 8 + header_len, note_keys, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return fail("header is not a JSON object");
  if (!repeated_key.empty()) return fail(absl::StrCat("the header names '", repeated_key, "' twice"));

  SafetensorsFile file;
  file.path_ = path;
  file.data_offset_ = 8 + header_len;
  const uint64_t data_size = file_size - file.data_offset_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (m.value().is_string()) file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return fail(absl::StrCat("tensor '", name, "': ", what)); };
    if (!v.is_object()) return bad("entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("missing dtype");
    if (sh == v.end() || !sh->is_array()) return bad("missing shape");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned()) {
      return bad("data_offsets must be two non-negative integers");
    }
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dt->get<std::string>();
    const DtypeInfo* info = FindDtype(e.dtype);
    if (info == nullptr) return bad(absl::StrCat("unknown dtype '", e.dtype, "'"));
    // The bound is on the product of the non-zero dimensions: an empty tensor's strides are still
    // products of its other dimensions, and torch refuses strides that overflow.
    uint64_t numel = 1, nonzero_product = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) return bad("shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (1ull << 40) || (dim > 0 && nonzero_product > (1ull << 50) / dim)) {
        return bad("shape is implausibly large");
      }
      numel *= dim;
      if (dim > 0) nonzero_product *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) {
      return bad(absl::StrCat("data_offsets [", e.begin, ", ", e.end, ") out of range (data section is ", data_size,
                              " bytes)"));
    }
    const uint64_t expected = numel * static_cast<uint64_t>(info->bytes);
    if (e.end - e.begin != expected) {
      return bad(absl::StrCat("shape ", ShapeString(e.shape), " of ", e.dtype, " needs ", expected,
                              " bytes but data_offsets hold ", e.end - e.begin));
    }
    file.entries_.push_back(std::move(e));
  }
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : file.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  // As the reference implementation requires, the tensors tile the data section: no overlap, no
  // bytes that belong to no tensor (a hole or a tail could hide another file's contents).
  uint64_t covered = 0;
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const SafetensorsEntry& e = *by_offset[i];
    if (e.begin < covered) {
      return fail(absl::StrCat("tensors '", by_offset[i - 1]->name, "' and '", e.name, "' overlap"));
    }
    if (e.begin > covered) {
      return fail(absl::StrCat("bytes [", covered, ", ", e.begin, ") of the data section belong to no tensor (",
                               i == 0 ? "before" : absl::StrCat("between '", by_offset[i - 1]->name, "' and"),
                               " '", e.name, "')"));
    }
    covered = e.end;
  }
  if (covered != data_size) {
    return fail(absl::StrCat("the data section has ", data_size - covered, " bytes after the last tensor's (",
                             data_size, " bytes, tensors end at ", covered, ")"));
  }
  for (size_t i = 0; i < file.entries_.size(); ++i) file.index_[file.entries_[i].name] = i;
  file.mapping_ = std::move(mapping);
  return file;
}

const SafetensorsEntry* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::StatusOr<torch::Tensor> SafetensorsFile::Read(const std::string& name) const {
  const SafetensorsEntry* e = Find(name);
  if (e == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  const DtypeInfo* info = FindDtype(e->dtype);
  auto out = torch::empty(e->shape, torch::TensorOptions().dtype(info->type));
  if (e->end > e->begin) {
    std::memcpy(out.data_ptr(), static_cast<const char*>(mapping_->data) + data_offset_ + e->begin, e->end - e->begin);
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  meta["format"] = "pt";
  header["__metadata__"] = meta;
  std::vector<torch::Tensor> cpu;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    auto dtype = SafetensorsDtypeName(t.scalar_type());
    if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': ", dtype.status().message()));
    auto c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", *dtype}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(std::move(c));
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  uint64_t len = text.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((len >> (8 * i)) & 0xff);
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& c : cpu) out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write failed: ", path));
  return absl::OkStatus();
}

}  // namespace srlm
