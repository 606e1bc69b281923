// Damaged checkpoints give errors that name the file and the tensor, never a crash: a short file,
// a header length past the end, offsets out of range or overlapping, a shape that does not match
// the bytes or the model, a tensor missing or left over, an unknown dtype.
#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/model/checkpoint_io.h"
#include "worker/model/model_test_util.h"
#include "worker/model/safetensors.h"

namespace srlm {
namespace {

using ::testing::HasSubstr;
using testing_util::MakeTempDir;
using testing_util::RemoveTree;

class DamagedFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("srlm_damaged_"); }
  void TearDown() override { RemoveTree(dir_); }

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

  // A small model saved by srlm in dir_, and its config.
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

  std::string dir_;
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

}  // namespace
}  // namespace srlm
