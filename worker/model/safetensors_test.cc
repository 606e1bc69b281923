// Damaged checkpoints give errors that name the file and the tensor, never a crash: a short file,
// a header length past the end, offsets out of range or overlapping, a shape that does not match
// the bytes or the model, a tensor missing or left over, an unknown dtype. MutatedFiles damages a
// small valid file at random (fixed seed) thousands of times and checks the same promise on each.
#include <malloc.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/testing/address_space_limit.h"
#include "common/testing/file_text.h"
#include "common/testing/mutants.h"
#include "common/testing/temp_dir.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/host_memory.h"
#include "worker/model/model_test_util.h"
#include "worker/model/safetensors.h"

namespace srlm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::AddressSpaceLimit;
using testing_util::CheckMutants;
using testing_util::MutantCounts;
using testing_util::ReadFileText;
using testing_util::WriteFileText;
using testing_util::TempDir;

class DamagedFiles : public ::testing::Test {
 protected:
  // Writes a safetensors file from a raw header text and `data_bytes` zero bytes of data.
  std::string WriteRaw(const std::string& header, size_t data_bytes, int64_t claimed_header_len = -1) {
    const std::string path = dir_ + "/model.safetensors";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    uint64_t len = claimed_header_len >= 0 ? static_cast<uint64_t>(claimed_header_len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
    out << header << std::string(data_bytes, '\0');
    return path;
  }

  absl::Status OpenError(const std::string& path) {
    auto f = SafetensorsFile::Open(path);
    return f.status();
  }

  // These tests damage the files to exercise the structural checks, as for a model from elsewhere,
  // which has no checksums.sha256 (with one, the changed bytes are found first: model_test's
  // Checkpoint.ChecksumsCatchBytesChangedAfterWriting).
  void DropChecksums() { ASSERT_EQ(std::remove((dir_ + "/checksums.sha256").c_str()), 0); }

  // A small model saved by srlm in dir_ (without its checksums), and its config.
  LlamaModel SaveTinyModel() {
    LlamaConfig c;
    c.vocab_size = 32;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    LlamaModel model(c);
    InitializeWeights(model, 7);
    EXPECT_TRUE(SaveModel(model, dir_).ok());
    DropChecksums();
    return model;
  }

  // Rewrites model.safetensors through `edit` of its tensor list.
  void RewriteTensors(const std::function<void(std::vector<std::pair<std::string, torch::Tensor>>&)>& edit) {
    const std::string path = dir_ + "/model.safetensors";
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    {
      auto f = SafetensorsFile::Open(path);
      ASSERT_TRUE(f.ok()) << f.status();
      for (const auto& e : f->entries()) tensors.emplace_back(e.name, *f->Read(e.name));
    }
    edit(tensors);
    ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  }

  TempDir temp_{"srlm_damaged_"};
  const std::string dir_ = temp_.path();
};

TEST_F(DamagedFiles, ShortFile) {
  const std::string path = dir_ + "/model.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  auto s = OpenError(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  EXPECT_THAT(std::string(s.message()), HasSubstr("shorter than the 8-byte header"));
}

TEST_F(DamagedFiles, HeaderLengthPastEnd) {
  auto path = WriteRaw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, /*claimed=*/1 << 20);
  auto s = OpenError(path);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path));
  EXPECT_THAT(std::string(s.message()), HasSubstr("runs past the end"));
}

TEST_F(DamagedFiles, HeaderNotJson) {
  auto s = OpenError(WriteRaw("{not json", 0));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a JSON object"));
}

TEST_F(DamagedFiles, OffsetsOutOfRange) {
  auto s = OpenError(WriteRaw(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'w'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("out of range"));
  auto reversed = OpenError(WriteRaw(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8));
  EXPECT_THAT(std::string(reversed.message()), HasSubstr("out of range"));
}

TEST_F(DamagedFiles, OverlappingTensors) {
  auto s = OpenError(WriteRaw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              12));
  EXPECT_THAT(std::string(s.message()), HasSubstr("'a' and 'b' overlap"));
}

// The tensors must tile the data section, as the reference implementation requires.
TEST_F(DamagedFiles, BytesThatBelongToNoTensorOrATensorNamedTwice) {
  auto hole = OpenError(WriteRaw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                                 12));
  EXPECT_THAT(std::string(hole.message()),
              HasSubstr("bytes [4, 8) of the data section belong to no tensor (between 'a' and 'b')"));
  auto before = OpenError(WriteRaw(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  EXPECT_THAT(std::string(before.message()), HasSubstr("bytes [0, 4) of the data section belong to no tensor (before 'b')"));
  auto tail = OpenError(WriteRaw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8));
  EXPECT_THAT(std::string(tail.message()), HasSubstr("4 bytes after the last tensor"));
  auto twice = OpenError(WriteRaw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                  R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                  8));
  EXPECT_THAT(std::string(twice.message()), HasSubstr("names 'a' twice"));
  for (const absl::Status& s : {hole, before, tail, twice}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(s.message()), HasSubstr(dir_ + "/model.safetensors"));
  }
  // Empty tensors take no bytes, anywhere in the order.
  auto empty = SafetensorsFile::Open(WriteRaw(R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[4,4]},)"
                                              R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                              4));
  EXPECT_TRUE(empty.ok()) << empty.status();
}

TEST_F(DamagedFiles, ShapeDisagreesWithBytes) {
  auto s = OpenError(WriteRaw(R"({"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}})", 8));
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'w'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("needs 12 bytes"));
}

TEST_F(DamagedFiles, UnknownDtype) {
  auto s = OpenError(WriteRaw(R"({"w":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}})", 2));
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'w'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown dtype 'F8_E9'"));
}

TEST_F(DamagedFiles, TensorMissingFromModelFile) {
  SaveTinyModel();
  RewriteTensors([](auto& tensors) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                 [](const auto& t) { return t.first == "model.layers.0.mlp.up_proj.weight"; }),
                  tensors.end());
  });
  auto m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(dir_ + "/model.safetensors"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.layers.0.mlp.up_proj.weight' is missing"));
}

TEST_F(DamagedFiles, TensorLeftOver) {
  SaveTinyModel();
  RewriteTensors([](auto& tensors) { tensors.emplace_back("model.layers.7.extra.weight", torch::zeros({2})); });
  auto m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.layers.7.extra.weight' is left over"));
}

TEST_F(DamagedFiles, WrongShapeForConfig) {
  SaveTinyModel();
  RewriteTensors([](auto& tensors) {
    for (auto& t : tensors) {
      if (t.first == "model.norm.weight") t.second = torch::ones({15});
    }
  });
  auto m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.norm.weight' has shape [15]"));
}

TEST_F(DamagedFiles, ShardedIndexNamesTensorAbsentFromShard) {
  LlamaModel model = SaveTinyModel();
  SaveModelOptions options;
  options.max_shard_bytes = 2048;
  ASSERT_TRUE(SaveModel(model, dir_, options).ok());
  DropChecksums();
  // Move a tensor out of its shard while the index still lists it there.
  std::string shard;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().filename().string().rfind("model-00001-of-", 0) == 0) shard = entry.path().string();
  }
  ASSERT_FALSE(shard.empty());
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  {
    auto f = SafetensorsFile::Open(shard);
    ASSERT_TRUE(f.ok()) << f.status();
    for (size_t i = 1; i < f->entries().size(); ++i) tensors.emplace_back(f->entries()[i].name, *f->Read(f->entries()[i].name));
  }
  ASSERT_TRUE(WriteSafetensors(shard, tensors).ok());
  auto m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(shard));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("missing"));
}

TEST_F(DamagedFiles, RoundTripKeepsBf16AndF16Bits) {
  auto bf = torch::randn({3, 5}).to(torch::kBFloat16);
  auto half = torch::randn({4}).to(torch::kFloat16);
  const std::string path = dir_ + "/t.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"bf", bf}, {"half", half}}).ok());
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Find("bf")->dtype, "BF16");
  EXPECT_TRUE(torch::equal(*f->Read("bf"), bf));
  EXPECT_TRUE(torch::equal(*f->Read("half"), half));
  EXPECT_EQ(f->metadata().at("format"), "pt");
}

// ---------------------------------------------------------------------------------------------
// What LoadModel checks before it allocates the model: every tensor of the headers against the
// shapes the config describes (LlamaParameterShapes), and the memory the parameters need.

// Sets `key` of dir's config.json to `value` (JSON text); null removes head_dim's pin, for one.
void PatchConfig(const std::string& dir, const std::string& key, const std::string& value) {
  nlohmann::json config = nlohmann::json::parse(ReadFileText(dir + "/config.json"));
  config[key] = nlohmann::json::parse(value);
  WriteFileText(dir + "/config.json", config.dump(2));
}

TEST(LlamaParameterShapes, AreTheModelsOwnNamesShapesAndOrder) {
  std::vector<LlamaConfig> configs;
  LlamaConfig c;
  c.vocab_size = 40;
  c.hidden_size = 24;
  c.intermediate_size = 36;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  configs.push_back(c);                    // GQA, untied
  c.tie_word_embeddings = true;
  configs.push_back(c);                    // tied: no lm_head
  c.attention_bias = true;
  c.mlp_bias = true;
  configs.push_back(c);                    // Llama biases (o_proj too)
  c.model_type = "qwen2";
  configs.push_back(c);                    // q/k/v bias only
  c = configs[0];
  c.head_dim = 10;                         // head_dim * heads != hidden_size
  configs.push_back(c);
  for (size_t i = 0; i < configs.size(); ++i) {
    ASSERT_TRUE(ValidateLlamaConfig(configs[i]).ok()) << i;
    LlamaModel model(configs[i]);
    std::vector<std::pair<std::string, std::vector<int64_t>>> actual;
    int64_t bytes = 0;
    for (const auto& p : model->named_parameters(true)) {
      actual.emplace_back(p.key(), p.value().sizes().vec());
      bytes += p.value().numel() * 4;
    }
    EXPECT_EQ(LlamaParameterShapes(configs[i]), actual) << "config " << i;
    EXPECT_EQ(LlamaParameterBytes(configs[i], 4).value(), bytes) << "config " << i;
    EXPECT_EQ(LlamaParameterBytes(configs[i], 2).value(), bytes / 2) << "config " << i;
  }
  c.vocab_size = INT32_MAX;
  c.hidden_size = int64_t{1} << 40;
  const auto overflow = LlamaParameterBytes(c, 4);
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kInvalidArgument) << overflow.status();
  EXPECT_THAT(std::string(overflow.status().message()), HasSubstr("overflow a 64-bit byte count"));
}

TEST_F(DamagedFiles, AConfigLargerThanItsWeightsCostsNoMemory) {
  // config.json's sizes were allocated before any shape was checked: 916 MB for a 0.5 MB model
  // whose config said hidden_size 4096, libtorch's allocator text for larger ones. Under an
  // address-space limit far below what the config describes, the mismatch must be found from
  // the headers, before the model is built.
  SaveTinyModel();  // vocab 32, hidden 16
  const std::string config = ReadFileText(dir_ + "/config.json");
  for (const auto& [key, value, expected] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"hidden_size", "65536", "65536"},  // q_proj alone: 16 GiB
           {"vocab_size", "1000000000", "has shape [32, 16] but the config needs [1000000000, 16]"},
           {"intermediate_size", "100000000", "100000000"}}) {
    WriteFileText(dir_ + "/config.json", config);
    PatchConfig(dir_, key, value);
    if (key == "hidden_size") PatchConfig(dir_, "head_dim", "null");
    absl::StatusOr<LlamaModel> m;
    {
      AddressSpaceLimit limit(int64_t{256} << 20);
      ASSERT_TRUE(limit.ok());
      m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
    }
    ASSERT_FALSE(m.ok()) << key;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << key << ": " << m.status();
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(dir_ + "/model.safetensors: tensor '")) << key;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr("but the config needs [")) << key;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(expected)) << key;
  }
}

TEST_F(DamagedFiles, ADtypeThatIsNotFloatIsRefusedFromTheHeader) {
  SaveTinyModel();
  RewriteTensors([](auto& tensors) {
    for (auto& t : tensors) {
      if (t.first == "model.norm.weight") t.second = torch::ones({16}, torch::kInt32);
    }
  });
  auto m = LoadModel(dir_, torch::kCPU, torch::kFloat32);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.norm.weight' has non-float dtype I32"));
}

TEST(LoadModelDeathTest, AModelThatDoesNotFitInMemoryIsResourceExhaustedNamingTheBytes) {
  // A model whose files agree with its config (32 MiB of embedding) under an address-space limit
  // that leaves it 48 MiB: the weights' mapping takes 33, the embedding's 32 do not fit. The
  // allocator's failure used to be INTERNAL with libtorch's text ("[enforce fail at alloc_cpu.cpp").
  // In a fresh process (the death test's child), so that no free heap memory of earlier tests can
  // hold the embedding inside the limit.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir temp("srlm_load_oom_");
  LlamaConfig c;
  c.vocab_size = 32768;
  c.hidden_size = 256;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.tie_word_embeddings = true;
  {
    LlamaModel model(c);
    ASSERT_TRUE(SaveModel(model, temp.path()).ok());
  }
  const int64_t bytes = LlamaParameterBytes(c, 4).value();
  ASSERT_EQ(bytes, 34540544);
  EXPECT_EXIT(
      {
        absl::StatusOr<LlamaModel> m;
        {
          // Allocations of 1 MiB and more from new mappings, and the heap's free top given back.
          mallopt(M_MMAP_THRESHOLD, 1 << 20);
          malloc_trim(0);
          AddressSpaceLimit limit(int64_t{48} << 20);
          m = LoadModel(temp.path(), torch::kCPU, torch::kFloat32);
        }
        std::cerr << m.status() << std::endl;
        const std::string message(m.status().message());
        const bool clear = message.find("alloc_cpu") == std::string::npos &&
                           message.find(absl::StrCat("loading model from ", temp.path(), ": ")) == 0;
        // The child runs the test again and exits without destructors: its folder is removed here.
        std::system(("rm -rf " + temp.path()).c_str());
        std::exit(m.status().code() == absl::StatusCode::kResourceExhausted && clear ? 0 : 1);
      },
      ::testing::ExitedWithCode(0),
      "RESOURCE_EXHAUSTED: loading model from [^ ]*srlm_load_oom_[^ ]*: the model's parameters need 34540544 bytes "
      "\\(32.9 MiB\\) as float32 \\(vocab_size 32768, hidden_size 256, intermediate_size 64, num_hidden_layers 1\\): the "
      "allocation failed \\(out of memory\\)");
  // With room, the same files load.
  EXPECT_TRUE(LoadModel(temp.path(), torch::kCPU, torch::kFloat32).ok());
}

TEST(LoadModel, SizesBeyondTheMachinesMemoryAreRefusedBeforeAllocating) {
  LlamaConfig c;
  c.vocab_size = INT32_MAX;
  c.hidden_size = 8192;
  c.num_attention_heads = 64;
  c.num_key_value_heads = 64;
  const auto model = NewLlamaModel(c, torch::kFloat32);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kResourceExhausted) << model.status();
  EXPECT_THAT(std::string(model.status().message()),
              HasSubstr(absl::StrCat("the model's parameters need ", LlamaParameterBytes(c, 4).value(), " bytes")));
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("more than this machine's memory (RAM and swap: "));
}

TEST(LoadModel, APathThatIsNotADirectoryIsSaidToBeOne) {
  // A file as the model said "<file>/checksums.sha256 exists but cannot be read".
  TempDir temp("srlm_load_path_");
  WriteFileText(temp / "p.jsonl", "{}\n");
  const auto file = LoadModel(temp / "p.jsonl", torch::kCPU, torch::kFloat32);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(temp / "p.jsonl is not a directory"));
  const auto missing = LoadModel(temp / "nothing", torch::kCPU, torch::kFloat32);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("model directory " + (temp / "nothing") + " does not exist"));
}

// ---------------------------------------------------------------------------------------------
// Randomized damage. Every mutant starts from the same small valid file and gets one kind of
// damage; the seed is fixed, so a failure names a mutant (index and kind) that every run rebuilds.

// The 8-byte little-endian header length at the start of `bytes` (which holds at least 8 bytes).
uint64_t HeaderLengthField(const std::string& bytes) {
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[i]);
  return len;
}

std::string LengthFieldBytes(uint64_t len) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out;
}

// A mutant as text for failure messages: its length field, then its first bytes with the
// unprintable ones as \xNN.
std::string DescribeMutant(const std::string& bytes) {
  std::string out = absl::StrCat(bytes.size(), " bytes");
  if (bytes.size() >= 8) absl::StrAppend(&out, ", length field ", HeaderLengthField(bytes));
  out += ": ";
  for (size_t i = 8; i < bytes.size() && i < 8 + 600; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

class SafetensorsMutator {
 public:
  SafetensorsMutator(std::string original, uint64_t seed)
      : original_(std::move(original)), header_len_(HeaderLengthField(original_)), rng_(seed) {
    header_ = original_.substr(8, header_len_);
    data_ = original_.substr(8 + header_len_);
    parsed_header_ = nlohmann::json::parse(header_);
    for (auto it = parsed_header_.begin(); it != parsed_header_.end(); ++it) {
      if (it.key() != "__metadata__") tensor_names_.push_back(it.key());
    }
    for (size_t i = 0; i < header_.size();) {  // maximal runs of digits: the offsets and shapes
      if (!std::isdigit(static_cast<unsigned char>(header_[i]))) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < header_.size() && std::isdigit(static_cast<unsigned char>(header_[end]))) ++end;
      digit_runs_.emplace_back(i, end);
      i = end;
    }
  }

  // A damaged copy of the original file; `kind` says what was done to it.
  std::string Next(std::string* kind);

 private:
  uint64_t Below(uint64_t n) { return rng_() % n; }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[Below(items.size())];
  }
  // The file with `header` in place of the original one. The length field says header.size(),
  // except now and then, when it keeps the original length.
  std::string WithHeader(const std::string& header) {
    const uint64_t len = Below(8) == 0 ? header_len_ : header.size();
    return LengthFieldBytes(len) + header + data_;
  }
  std::string NumberText();
  nlohmann::json ShapeValue();
  nlohmann::json OffsetValue(const std::string& name);
  std::string EditOneTensor(std::string* kind);

  const std::string original_;
  const uint64_t header_len_;
  std::mt19937_64 rng_;
  std::string header_, data_;
  nlohmann::json parsed_header_;
  std::vector<std::string> tensor_names_;
  std::vector<std::pair<size_t, size_t>> digit_runs_;
};

// Numbers at the edges: of the byte counts, of the 2^40 / 2^50 plausibility limits, of int64 and
// uint64, negative, fractional, out of any range; or a random run of digits.
std::string SafetensorsMutator::NumberText() {
  static const std::vector<std::string> kNumbers = {
      "0", "1", "2", "3", "4", "7", "8", "16", "47", "48", "49", "255", "4294967295", "4294967296",
      "1099511627776", "1099511627777", "1125899906842624", "4611686018427387904", "9223372036854775807",
      "9223372036854775808", "18446744073709551615", "18446744073709551616",
      "340282366920938463463374607431768211456", "-1", "-8", "-9223372036854775808", "-0", "00", "1e3",
      "1.5", "0.0", "1e400"};
  if (Below(3) != 0) return Pick(kNumbers);
  std::string digits;
  for (uint64_t n = 1 + Below(25); n > 0; --n) digits.push_back(static_cast<char>('0' + Below(10)));
  return digits;
}

// A shape of 0-6 dimensions, each plausible, past a limit, or not a non-negative integer at all.
nlohmann::json SafetensorsMutator::ShapeValue() {
  const std::vector<nlohmann::json> dims = {0, 1, 2, 3, 4, 5, 6, 12, 1ull << 20, 1ull << 31, 1ull << 32, 1ull << 40,
                                            (1ull << 40) + 1, 1ull << 50, 1ull << 62, 1ull << 63, ~0ull, -1,
                                            INT64_MIN, 1.5, "3", nullptr, nlohmann::json::array()};
  nlohmann::json shape = nlohmann::json::array();
  for (uint64_t n = Below(7); n > 0; --n) shape.push_back(Pick(dims));
  return shape;
}

// An offset near the tensor's own (original) range or the data size, or one no reader may accept.
nlohmann::json SafetensorsMutator::OffsetValue(const std::string& name) {
  const nlohmann::json& offsets = parsed_header_.at(name).at("data_offsets");
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  const uint64_t size = data_.size();
  const std::vector<nlohmann::json> values = {0, begin, end, begin + 1, end - 1, end + 1, size - 1, size, size + 1,
                                              1ull << 32, 1ull << 63, ~0ull, -1, INT64_MIN, 2.0, "0", nullptr};
  return Pick(values);
}

// One field of one tensor gets another value (re-serialized, so the header stays valid JSON).
std::string SafetensorsMutator::EditOneTensor(std::string* kind) {
  nlohmann::json header = parsed_header_;
  const std::string& name = Pick(tensor_names_);
  nlohmann::json& entry = header[name];
  static const std::vector<nlohmann::json> kDtypes = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8",
                                                      "U8",  "BOOL", "F8_E4M3", "", "f32", 4, nullptr};
  switch (Below(6)) {
    case 0:
      *kind = "edit dtype";
      entry["dtype"] = Pick(kDtypes);
      break;
    case 1:
      *kind = "edit shape";
      entry["shape"] = ShapeValue();
      break;
    case 2:
      *kind = "edit data_offsets";
      entry["data_offsets"][Below(2)] = OffsetValue(name);
      if (Below(2) == 0) entry["data_offsets"][Below(2)] = OffsetValue(name);
      if (Below(8) == 0) entry["data_offsets"].push_back(0);
      break;
    case 3: {
      // A shape whose byte count, computed with uint64 wrap-around, is written as the offsets: a
      // reader that multiplies without overflow checks accepts a tiny byte range for a huge tensor.
      *kind = "shape with matching wrapped byte count";
      const std::vector<uint64_t> dims = {0, 1, 2, 3, 1ull << 20, 1ull << 21, 1ull << 30, 1ull << 31,
                                          1ull << 32, 1ull << 40, 1ull << 62, 1ull << 63};
      nlohmann::json shape = nlohmann::json::array();
      uint64_t bytes = Pick(std::vector<uint64_t>{1, 2, 4, 8});
      for (uint64_t n = 1 + Below(4); n > 0; --n) {
        const uint64_t d = Pick(dims);
        shape.push_back(d);
        bytes *= d;
      }
      entry["shape"] = shape;
      const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
      entry["data_offsets"] = {begin, begin + bytes};
      break;
    }
    case 4:
      *kind = "drop a field";
      entry.erase(Pick(std::vector<std::string>{"dtype", "shape", "data_offsets"}));
      break;
    default:
      *kind = "entry of another type";
      entry = Pick(std::vector<nlohmann::json>{nullptr, 0, "F32", nlohmann::json::array(), nlohmann::json::object()});
      break;
  }
  *kind += " of '" + name + "'";
  return WithHeader(header.dump());
}

std::string SafetensorsMutator::Next(std::string* kind) {
  std::string file = original_;
  switch (Below(11)) {
    case 0:
      *kind = "flip bits of the length field";
      for (uint64_t n = 1 + Below(3); n > 0; --n) file[Below(8)] ^= static_cast<char>(1 + Below(255));
      return file;
    case 1:
      *kind = "flip header bytes";
      for (uint64_t n = 1 + Below(4); n > 0; --n) file[8 + Below(header_len_)] ^= static_cast<char>(1 + Below(255));
      return file;
    case 2:
      *kind = "truncate";
      file.resize(Below(file.size()));
      return file;
    case 3:
      *kind = "overwrite header bytes with printable characters";
      for (uint64_t n = 1 + Below(8); n > 0; --n) file[8 + Below(header_len_)] = static_cast<char>(' ' + Below(95));
      return file;
    case 4: {
      const auto [start, end] = Pick(digit_runs_);
      const std::string number = NumberText();
      *kind = absl::StrCat("replace number '", header_.substr(start, end - start), "' at ", start, " with ", number);
      std::string header = header_;
      header.replace(start, end - start, number);
      return WithHeader(header);
    }
    case 5: {
      // The same key twice ("name":{...} copied to the front), the copy sometimes with another number.
      const std::string& name = Pick(tensor_names_);
      const size_t start = header_.find("\"" + name + "\":{");
      const size_t end = header_.find('}', start) + 1;
      std::string copy = header_.substr(start, end - start);
      *kind = "duplicate the entry of '" + name + "'";
      if (Below(2) == 0) {
        const size_t digit = copy.find_first_of("0123456789", name.size() + 2);
        if (digit != std::string::npos) copy.replace(digit, 1, NumberText());
      }
      std::string header = header_;
      header.insert(1, copy + ",");
      return WithHeader(header);
    }
    case 6:
    case 7:
      return EditOneTensor(kind);
    case 8: {
      *kind = "shift the length field";
      const int64_t delta = static_cast<int64_t>(Below(33)) - 16;
      file.replace(0, 8, LengthFieldBytes(header_len_ + static_cast<uint64_t>(delta == 0 ? 1 : delta)));
      return file;
    }
    case 9: {
      static const std::vector<std::string> kHeaders = {
          "", " ", "null", "[]", "{}", "[{}]", "\"x\"", "0", "{\"__metadata__\":[]}", "{\"__metadata__\":{\"a\":1}}",
          "{\"w\":null}", "{\"w\":{}}", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          "{\"w\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},\"v\":{\"dtype\":\"U8\",\"shape\":[0],"
          "\"data_offsets\":[4,4]}}",
          std::string(20000, '[') + std::string(20000, ']'),
          "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}"};
      const std::string& header = Pick(kHeaders);
      *kind = "replace the header with " + header.substr(0, 40);
      return WithHeader(header);
    }
    default: {
      *kind = "insert bytes into the header";
      std::string inserted;
      for (uint64_t n = 1 + Below(6); n > 0; --n) inserted.push_back(static_cast<char>(Below(256)));
      std::string header = header_;
      header.insert(Below(header.size() + 1), inserted);
      return WithHeader(header);
    }
  }
}

// The promise for one mutant at `path` (holding `bytes`): Open fails with an error that names the
// file, or it succeeds and every tensor reads as a tensor of its shape and dtype whose bytes are
// the ones its data_offsets point at, inside the file.
::testing::AssertionResult KeepsThePromise(const std::string& path, const std::string& bytes, bool* opened) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  *opened = file.ok();
  if (!file.ok()) {
    if (!absl::StrContains(file.status().message(), path)) {
      return ::testing::AssertionFailure() << "the error does not name the file: " << file.status();
    }
    return ::testing::AssertionSuccess();
  }
  const uint64_t data_offset = 8 + HeaderLengthField(bytes);
  for (const SafetensorsEntry& e : file->entries()) {
    absl::StatusOr<torch::Tensor> t = file->Read(e.name);
    if (!t.ok()) {
      if (!absl::StrContains(t.status().message(), path)) {
        return ::testing::AssertionFailure() << "Read error does not name the file: " << t.status();
      }
      continue;
    }
    int64_t numel = 1;
    for (int64_t d : e.shape) numel *= d;
    const absl::StatusOr<torch::ScalarType> dtype = TorchDtypeFromSafetensors(e.dtype);
    if (t->sizes().vec() != e.shape || t->numel() != numel || !dtype.ok() || t->scalar_type() != *dtype) {
      return ::testing::AssertionFailure() << "tensor '" << e.name << "' reads as " << t->sizes() << " "
                                           << t->scalar_type() << ", the header says " << e.dtype << " ["
                                           << absl::StrJoin(e.shape, ", ") << "]";
    }
    const uint64_t nbytes = static_cast<uint64_t>(numel) * t->element_size();
    if (e.end - e.begin != nbytes || e.end < e.begin || data_offset + e.end > bytes.size()) {
      return ::testing::AssertionFailure() << "tensor '" << e.name << "' was accepted with data_offsets [" << e.begin
                                           << ", " << e.end << ") for " << nbytes << " bytes in a file of "
                                           << bytes.size() << " bytes";
    }
    if (nbytes > 0 && std::memcmp(t->data_ptr(), bytes.data() + data_offset + e.begin, nbytes) != 0) {
      return ::testing::AssertionFailure() << "tensor '" << e.name << "' does not hold the bytes at its offsets";
    }
  }
  return ::testing::AssertionSuccess();
}

using MutatedFiles = DamagedFiles;  // for its temporary folder

// The file every mutant starts from: six tensors of five dtypes (one empty, one scalar) and metadata.
std::string WriteOriginal(const std::string& path) {
  torch::manual_seed(3);
  const absl::Status written =
      WriteSafetensors(path,
                       {{"model.embed_tokens.weight", torch::randn({4, 3})},
                        {"model.layers.0.input_layernorm.weight", torch::randn({6}).to(torch::kBFloat16)},
                        {"model.layers.0.self_attn.q_proj.bias", torch::randn({2, 3}).to(torch::kFloat16)},
                        {"positions", torch::arange(5, torch::kInt64)},
                        {"scale", torch::tensor(2.5f)},
                        {"empty", torch::zeros({0, 3})}},
                       {{"producer", "srlm"}, {"step", "12"}});
  EXPECT_TRUE(written.ok()) << written;
  return ReadFileText(path);
}

TEST_F(MutatedFiles, NeverCrashAndNameTheFile) {
  const std::string original_path = dir_ + "/original.safetensors";
  const std::string original = WriteOriginal(original_path);
  bool original_opens = false;
  ASSERT_TRUE(KeepsThePromise(original_path, original, &original_opens));
  ASSERT_TRUE(original_opens);

  const std::string path = dir_ + "/mutant.safetensors";
  SafetensorsMutator mutator(original, /*seed=*/20240611);
  constexpr int kMutants = 2000;
  const MutantCounts counts = CheckMutants(kMutants, [&](int, bool* opened, std::string* kind) {
    const std::string bytes = mutator.Next(kind);
    WriteFileText(path, bytes);
    ::testing::AssertionResult result = KeepsThePromise(path, bytes, opened);
    if (!result) result << "\n" << DescribeMutant(bytes);
    return result;
  });
  EXPECT_EQ(counts.broken, 0);
  // Both outcomes occur: the damage is neither always harmless nor always caught by the first check.
  EXPECT_GT(counts.accepted, kMutants / 50);
  EXPECT_GT(counts.rejected, kMutants / 2);
  RecordProperty("mutants_opened", counts.accepted);
  RecordProperty("mutants_rejected", counts.rejected);
}

// srlm takes a damaged file exactly when Hugging Face's safetensors package (the reference
// implementation, worker/model/testdata/safetensors_verdicts.py) takes it and loads every tensor.
// Two differences are allowed, both where srlm is stricter: a header that names a tensor twice
// (the reference keeps the last entry when both agree), and an empty tensor whose other
// dimensions multiply past 2^50 (the reference takes what torch can allocate).
TEST_F(MutatedFiles, TakenExactlyWhenTheReferenceImplementationTakesThem) {
  const std::string original = WriteOriginal(dir_ + "/original.bin");
  SafetensorsMutator mutator(original, /*seed=*/977);
  constexpr int kMutants = 1500;
  std::vector<std::string> kinds(kMutants);
  std::vector<absl::Status> srlm(kMutants);
  for (int i = 0; i < kMutants; ++i) {
    const std::string bytes = mutator.Next(&kinds[i]);
    const std::string path = absl::StrCat(dir_, "/m", 10000 + i, ".safetensors");
    WriteFileText(path, bytes);
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
    srlm[i] = file.status();
    for (size_t t = 0; file.ok() && srlm[i].ok() && t < file->entries().size(); ++t) {
      srlm[i] = file->Read(file->entries()[t].name).status();
    }
  }
  const char* python = std::getenv("SRLM_VENV_PYTHON");
  const char* source = std::getenv("SRLM_SOURCE_DIR");
  const std::string command = absl::StrCat(python ? python : "python3", " ", source ? source : ".",
                                           "/worker/model/testdata/safetensors_verdicts.py ", dir_);
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << command;
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0) << command << "\n" << output;
  const std::vector<std::string> lines = absl::StrSplit(output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kMutants)) << output.substr(0, 2000);
  int taken = 0, refused = 0, stricter = 0, disagreements = 0;
  for (int i = 0; i < kMutants; ++i) {
    const std::string name = absl::StrCat("m", 10000 + i, ".safetensors");
    ASSERT_TRUE(absl::StartsWith(lines[i], name + " ")) << lines[i];
    const bool reference_takes = lines[i] == name + " OK";
    ++(srlm[i].ok() ? taken : refused);
    if (srlm[i].ok() == reference_takes) continue;
    if (!srlm[i].ok() && (absl::StrContains(srlm[i].message(), "twice") ||
                          absl::StrContains(srlm[i].message(), "implausibly large"))) {
      ++stricter;
      continue;
    }
    if (++disagreements <= 10) {
      ADD_FAILURE() << "mutant " << i << " (" << kinds[i] << "): srlm " << srlm[i] << "; reference: " << lines[i];
    }
  }
  EXPECT_EQ(disagreements, 0);
  EXPECT_GT(taken, kMutants / 50);  // both outcomes occur
  EXPECT_GT(refused, kMutants / 2);
  RecordProperty("mutants_taken", taken);
  RecordProperty("mutants_refused", refused);
  RecordProperty("refused_by_srlm_only", stricter);
}

}  // namespace
}  // namespace srlm
