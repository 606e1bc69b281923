#include "worker/model/checkpoint_io.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/model/checksums.h"
#include "worker/model/out_of_memory.h"
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

// The checkpoint's weights, found and checked from the safetensors headers alone: for each parameter
// of the model the config describes, the file that holds it. Nothing is read as a weight and nothing
// is allocated for the model until every tensor's name, shape and dtype has been checked.
struct WeightPlan {
  std::vector<std::optional<SafetensorsFile>> files;  // open (memory-mapped) until copied
  std::map<std::string, size_t> file_of;               // parameter name -> index in files
};

absl::StatusOr<WeightPlan> PlanWeights(const std::string& dir, const LlamaConfig& config) {
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  SRLM_RETURN_IF_ERROR(ListWeightFiles(dir, &files, &weight_map));
  const auto shapes = LlamaParameterShapes(config);
  const std::map<std::string, std::vector<int64_t>> expected(shapes.begin(), shapes.end());
  WeightPlan plan;
  std::map<std::string, std::string> found_in;  // tensor -> file
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
      auto dup = found_in.find(entry.name);
      if (dup != found_in.end()) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' also appears in ", dup->second));
      }
      auto want = expected.find(entry.name);
      if (want == expected.end()) {
        if (IsIgnorableExtra(entry.name, config)) continue;
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' is left over: the model has no such parameter"));
      }
      if (want->second != entry.shape) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' has shape ", ShapeString(entry.shape),
                                                " but the config needs ", ShapeString(want->second)));
      }
      SRLM_ASSIGN_OR_RETURN(torch::ScalarType stored, TorchDtypeFromSafetensors(entry.dtype));
      if (!c10::isFloatingType(stored)) {
        return absl::DataLossError(absl::StrCat(path, ": tensor '", entry.name, "' has non-float dtype ", entry.dtype));
      }
      found_in[entry.name] = file;
      plan.file_of[entry.name] = plan.files.size();
    }
    plan.files.emplace_back(std::move(st));
  }
  for (const auto& [name, shape] : shapes) {
    if (found_in.count(name) == 0) {
      auto it = weight_map.find(name);
      const std::string where = it != weight_map.end() ? (fs::path(dir) / it->second).string()
                                : weight_map.empty()  ? (fs::path(dir) / kSingleFile).string()
                                                      : (fs::path(dir) / kIndexFile).string();
      return absl::DataLossError(absl::StrCat(where, ": tensor '", name, "' is missing"));
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (found_in.count(name) == 0 && !IsIgnorableExtra(name, config)) {
      return absl::DataLossError(absl::StrCat((fs::path(dir) / file).string(), ": tensor '", name, "' listed in ",
                                              kIndexFile, " is missing from the file"));
    }
  }
  return plan;
}

// Copies the planned tensors into the model's parameters (converted to their dtype), one file at a
// time; each file is unmapped once its tensors are in.
absl::Status CopyWeights(WeightPlan& plan, LlamaModel& model) {
  auto params = model->named_parameters(/*recurse=*/true);
  if (params.size() != plan.file_of.size()) {
    return absl::InternalError(absl::StrCat("the model has ", params.size(), " parameters, LlamaParameterShapes ",
                                            plan.file_of.size()));
  }
  torch::NoGradGuard no_grad;
  for (size_t index = 0; index < plan.files.size(); ++index) {
    const SafetensorsFile& st = *plan.files[index];
    for (const auto& entry : st.entries()) {
      auto it = plan.file_of.find(entry.name);
      if (it == plan.file_of.end() || it->second != index) continue;  // an ignorable extra
      torch::Tensor* param = params.find(entry.name);
      if (param == nullptr || param->sizes().vec() != entry.shape) {
        return absl::InternalError(
            absl::StrCat("LlamaParameterShapes disagrees with the model about '", entry.name, "'"));
      }
      SRLM_ASSIGN_OR_RETURN(torch::Tensor value, st.Read(entry.name));
      param->copy_(value);
    }
    plan.files[index].reset();
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
  std::error_code ec;
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::not_found) {
    return absl::NotFoundError(absl::StrCat("model directory ", dir, " does not exist"));
  }
  if (ec) return absl::InternalError(absl::StrCat("model directory ", dir, ": ", ec.message()));
  if (status.type() != fs::file_type::directory) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, " is not a directory: a model is a directory holding config.json and safetensors weights"));
  }
  // Bytes changed since the checkpoint was written are found before anything is read as weights.
  SRLM_RETURN_IF_ERROR(VerifyChecksumManifest(dir).status());
  SRLM_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig((fs::path(dir) / "config.json").string()));
  // Every tensor's name, shape and dtype against the config, from the headers, before any memory is
  // taken for the model.
  SRLM_ASSIGN_OR_RETURN(WeightPlan plan, PlanWeights(dir, config));
  absl::StatusOr<LlamaModel> built = NewLlamaModel(config, dtype);
  if (!built.ok()) return internal::Annotate(built.status(), absl::StrCat("loading model from ", dir));
  LlamaModel model = *std::move(built);
  // Reading a tensor takes a copy of it besides the parameters; moving to a device takes them all
  // again there. Either running out of memory says what the parameters take.
  const int64_t bytes = LlamaParameterBytes(config, c10::elementSize(dtype)).value_or(-1);
  const auto out_of_memory = [&](const std::string& while_doing) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "loading model from %s: out of memory %s (the model's parameters take %d bytes (%.1f MiB) as %s)", dir,
        while_doing, bytes, static_cast<double>(bytes) / (int64_t{1} << 20), c10::toString(dtype)));
  };
  try {
    SRLM_RETURN_IF_ERROR(CopyWeights(plan, model));
  } catch (const c10::Error& e) {
    if (IsOutOfMemory(e)) return out_of_memory("while reading the weights into the model");
    return absl::InternalError(absl::StrCat("loading model from ", dir, ": ", e.what_without_backtrace()));
  }
  try {
    model->to(device);
  } catch (const c10::Error& e) {
    if (IsOutOfMemory(e)) return out_of_memory(absl::StrCat("moving the model to ", device.str()));
    return absl::InternalError(absl::StrCat("loading model from ", dir, ": ", e.what_without_backtrace()));
  }
  model->eval();
  return model;
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
