#include "worker/model/checkpoint_io.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/model/checksums.h"
#include "worker/model/safetensors.h"

namespace srlm {
namespace {

namespace fs = std::filesystem;

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";
constexpr const char* kTokenizerFiles[] = {"tokenizer.json",          "tokenizer.model",
                                           "tokenizer_config.json",   "special_tokens_map.json",
                                           "generation_config.json", "chat_template.jinja"};

// Tensors some checkpoints carry that the model does not need.
bool IsIgnorableExtra(const std::string& name, const LlamaConfig& config) {
  if (absl::EndsWith(name, "rotary_emb.inv_freq")) return true;
  return config.tie_word_embeddings && name == "lm_head.weight";
}

std::string ShapeString(at::IntArrayRef shape) {
  std::ostringstream os;
  os << shape;
  return os.str();
}

// The shard files of `dir` and, for sharded checkpoints, the tensor -> file map of the index.
absl::Status ListWeightFiles(const std::string& dir, std::vector<std::string>* files,
                             std::map<std::string, std::string>* weight_map) {
  const fs::path index_path = fs::path(dir) / kIndexFile;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path);
    nlohmann::json index = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      return absl::DataLossError(absl::StrCat(index_path.string(), ": no weight_map object"));
    }
    std::set<std::string> unique;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) {
        return absl::DataLossError(absl::StrCat(index_path.string(), ": tensor '", it.key(), "': file is not a string"));
      }
      const std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos) {
        return absl::DataLossError(absl::StrCat(index_path.string(), ": tensor '", it.key(), "': bad file name ", file));
      }
      (*weight_map)[it.key()] = file;
      unique.insert(file);
    }
    files->assign(unique.begin(), unique.end());
    return absl::OkStatus();
  }
  if (!fs::exists(fs::path(dir) / kSingleFile)) {
    return absl::NotFoundError(absl::StrCat(dir, ": neither ", kSingleFile, " nor ", kIndexFile));
  }
  files->push_back(kSingleFile);
  return absl::OkStatus();
}

absl::Status LoadWeights(LlamaModel& model, const std::string& dir) {
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  SRLM_RETURN_IF_ERROR(ListWeightFiles(dir, &files, &weight_map));
  auto params = model->named_parameters(/*recurse=*/true);
  std::map<std::string, std::string> loaded_from;  // tensor -> file
  torch::NoGradGuard no_grad;
  for (const auto& file : files) {
    const std::string path = (fs::path(dir) / file).string();
    SRLM_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::Open(path));
    for (const auto& entry : st.entries()) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(entry.name);
        if (it == weight_map.end() || it->second != file) {
          return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' is not listed for this file in ",
                                                  kIndexFile));
        }
      }
      auto dup = loaded_from.find(entry.name);
      if (dup != loaded_from.end()) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' also appears in ", dup->second));
      }
      torch::Tensor* param = params.find(entry.name);
      if (param == nullptr) {
        if (IsIgnorableExtra(entry.name, model->config)) continue;
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' is left over: the model has no such parameter"));
      }
      if (param->sizes().vec() != entry.shape) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' has shape ", ShapeString(entry.shape),
                                                " but the config needs ", ShapeString(param->sizes())));
      }
      SRLM_ASSIGN_OR_RETURN(torch::Tensor value, st.Read(entry.name));
      if (!value.is_floating_point()) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' has non-float dtype ", entry.dtype));
      }
      param->copy_(value);
      loaded_from[entry.name] = file;
    }
  }
  for (const auto& item : params) {
    if (loaded_from.count(item.key()) == 0) {
      auto it = weight_map.find(item.key());
      const std::string where = it != weight_map.end() ? (fs::path(dir) / it->second).string()
                                : weight_map.empty()  ? (fs::path(dir) / kSingleFile).string()
                                                      : (fs::path(dir) / kIndexFile).string();
      return absl::DataLossError(absl::StrCat(where, ": tensor '", item.key(), "' is missing"));
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (loaded_from.count(name) == 0 && !IsIgnorableExtra(name, model->config)) {
      return absl::DataLossError(absl::StrCat((fs::path(dir) / file).string(), ": tensor '", name, "' listed in ",
                                              kIndexFile, " is missing from the file"));
    }
  }
  return absl::OkStatus();
}

std::string DtypeConfigName(torch::ScalarType t) {
  switch (t) {
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: return "float32";
  }
}

}  // namespace

absl::StatusOr<LlamaModel> LoadModel(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
  // Bytes changed since the checkpoint was written are found before anything is read as weights.
  SRLM_RETURN_IF_ERROR(VerifyChecksumManifest(dir).status());
  SRLM_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig((fs::path(dir) / "config.json").string()));
  try {
    LlamaModel model(config);
    model->to(dtype);
    SRLM_RETURN_IF_ERROR(LoadWeights(model, dir));
    model->to(device);
    model->eval();
    return model;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading model from ", dir, ": ", e.what_without_backtrace()));
  }
}

absl::StatusOr<int> CopyTokenizerFiles(const std::string& from_dir, const std::string& to_dir) {
  int copied = 0;
  for (const char* name : kTokenizerFiles) {
    const fs::path src = fs::path(from_dir) / name;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(to_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("copying ", src.string(), ": ", ec.message()));
    ++copied;
  }
  return copied;
}

absl::Status SaveModel(LlamaModel& model, const std::string& dir) { return SaveModel(model, dir, SaveModelOptions{}); }

absl::Status SaveModel(LlamaModel& model, const std::string& dir, const SaveModelOptions& options) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  LlamaConfig config = model->config;
  config.torch_dtype = DtypeConfigName(model->dtype());
  SRLM_RETURN_IF_ERROR(SaveLlamaConfig(config, (fs::path(dir) / "config.json").string()));
  std::vector<std::string> written = {"config.json"};
  try {
    // Group tensors into shards no bigger than max_shard_bytes (a single tensor may exceed it).
    std::vector<std::vector<std::pair<std::string, torch::Tensor>>> shards(1);
    int64_t shard_bytes = 0, total_bytes = 0;
    for (const auto& item : model->named_parameters(true)) {
      const int64_t nbytes = item.value().numel() * item.value().element_size();
      if (shard_bytes > 0 && shard_bytes + nbytes > options.max_shard_bytes) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shards.back().emplace_back(item.key(), item.value());
      shard_bytes += nbytes;
      total_bytes += nbytes;
    }
    const std::map<std::string, std::string> metadata = {{"producer", "srlm"}};
    if (shards.size() == 1) {
      fs::remove(fs::path(dir) / kIndexFile, ec);
      SRLM_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / kSingleFile).string(), shards[0], metadata));
      written.push_back(kSingleFile);
    } else {
      fs::remove(fs::path(dir) / kSingleFile, ec);
      nlohmann::json index;
      index["metadata"] = {{"total_size", total_bytes}};
      index["weight_map"] = nlohmann::json::object();
      for (size_t i = 0; i < shards.size(); ++i) {
        const std::string file = absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, shards.size());
        SRLM_RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / file).string(), shards[i], metadata));
        for (const auto& [name, t] : shards[i]) index["weight_map"][name] = file;
        written.push_back(file);
      }
      std::ofstream out(fs::path(dir) / kIndexFile, std::ios::trunc);
      out << index.dump(2) << "\n";
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", (fs::path(dir) / kIndexFile).string()));
      written.push_back(kIndexFile);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("saving model to ", dir, ": ", e.what_without_backtrace()));
  }
  if (!options.tokenizer_source_dir.empty()) {
    // None is fine: a model trained on token ids may have no tokenizer (init-model --tokenizer-from
    // loads the tokenizer before it gets here).
    SRLM_RETURN_IF_ERROR(CopyTokenizerFiles(options.tokenizer_source_dir, dir).status());
  }
  for (const char* name : kTokenizerFiles) {
    if (fs::exists(fs::path(dir) / name)) written.push_back(name);
  }
  return WriteChecksumManifest(dir, written);
}

void InitializeWeights(LlamaModel& model, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : model->named_parameters(true)) {
    auto& p = item.value();
    auto cpu = torch::empty(p.sizes(), torch::kFloat32);
    if (absl::EndsWith(item.key(), "norm.weight")) {
      cpu.fill_(1.0);
    } else if (absl::EndsWith(item.key(), ".bias")) {
      cpu.zero_();
    } else {
      cpu.normal_(0.0, std, gen);
    }
    p.copy_(cpu);
  }
}

}  // namespace srlm
