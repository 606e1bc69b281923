// Unit tests of the trainer's model-free parts, numerics against the Python reference
// (testdata/reference_ops.py): LR schedule, AdamW + clipping, DPO loss, gradient sync (single
// process), examples JSONL, atomic checkpoint folders.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/stat.h>

#include "worker/train/adamw.h"
#include "worker/train/atomic_dir.h"
#include "worker/train/communicator.h"
#include "worker/train/examples.h"
#include "worker/train/grad_sync.h"
#include "worker/train/losses.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/test_util.h"

namespace srlm {
namespace {

using ::srlm::testing::RunPythonReference;
using ::srlm::testing::TempDir;
using ::srlm::testing::WriteFileText;

std::vector<float> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kFloat32).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void ExpectClose(double actual, double expected, double rel, const std::string& what) {
  EXPECT_LE(std::abs(actual - expected), rel * std::max(1e-12, std::abs(expected))) << what << ": " << actual << " vs " << expected;
}

TEST(LrScheduleTest, MatchesReferenceForEveryKind) {
  TempDir dir;
  for (const std::string kind : {"constant", "linear", "cosine"}) {
    LrSchedule s{*ParseLrScheduleKind(kind), 1e-3, 1e-5, 3, 17};
    nlohmann::json ref = RunPythonReference(
        "reference_ops.py", {{"op", "lr"}, {"kind", kind}, {"peak", 1e-3}, {"min", 1e-5}, {"warmup", 3}, {"total", 17}}, dir);
    ASSERT_EQ(ref["lrs"].size(), 17u);
    for (int step = 0; step < 17; ++step) ExpectClose(s.At(step), ref["lrs"][step].get<double>(), 1e-12, kind);
  }
  LrSchedule linear{LrScheduleKind::kLinear, 1.0, 0.1, 0, 11};
  EXPECT_DOUBLE_EQ(linear.At(0), 1.0);
  EXPECT_DOUBLE_EQ(linear.At(10), 0.1);  // the floor at the last step
  EXPECT_DOUBLE_EQ(linear.At(50), 0.1);  // and after it
  EXPECT_FALSE(ParseLrScheduleKind("step").ok());
}

TEST(AdamWTest, MatchesTorchOptimAdamWWithClipping) {
  TempDir dir;
  torch::manual_seed(3);
  const std::vector<std::vector<int64_t>> shapes = {{4, 3}, {3}, {2, 5}};
  NamedParameters named;
  std::vector<torch::Tensor> params;
  nlohmann::json request = {{"op", "adamw"}, {"weight_decay", 0.1}, {"beta1", 0.9}, {"beta2", 0.95},
                            {"eps", 1e-8}, {"max_grad_norm", 1.0}};
  const std::vector<double> lrs = {1e-2, 5e-3, 2e-2, 1e-3};
  request["lrs"] = lrs;
  std::vector<std::vector<torch::Tensor>> grads(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    torch::Tensor p = torch::randn(shapes[i]);
    request["params"].push_back(ToVector(p));
    request["shapes"].push_back(shapes[i]);
    nlohmann::json per_step;
    for (size_t s = 0; s < lrs.size(); ++s) {
      grads[i].push_back(torch::randn(shapes[i]) * (s == 1 ? 5.0 : 0.2));  // step 1 gets clipped
      per_step.push_back(ToVector(grads[i].back()));
    }
    request["grads"].push_back(per_step);
    named.emplace_back("p" + std::to_string(i), p);
    params.push_back(p);
  }
  AdamW optimizer(named, AdamWOptions{0.9, 0.95, 1e-8, 0.1});
  std::vector<double> norms;
  for (size_t s = 0; s < lrs.size(); ++s) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[i][s].clone();
    norms.push_back(ClipGradNorm(params, 1.0));
    optimizer.Step(lrs[s]);
  }
  nlohmann::json ref = RunPythonReference("reference_ops.py", request, dir);
  for (size_t s = 0; s < lrs.size(); ++s) ExpectClose(norms[s], ref["norms"][s].get<double>(), 1e-5, "grad norm");
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<float> got = ToVector(params[i]);
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k], ref["params"][i][k].get<double>(), 1e-6 + 1e-5 * std::abs(got[k])) << "param " << i << "[" << k << "]";
    }
  }
  EXPECT_EQ(optimizer.step_count(), 4);
}

TEST(AdamWTest, SaveAndLoadContinueBitForBit) {
  TempDir dir;
  torch::manual_seed(5);
  auto make = [] {
    torch::manual_seed(5);
    return std::vector<torch::Tensor>{torch::randn({3, 3}), torch::randn({3})};
  };
  auto run = [](std::vector<torch::Tensor>& params, AdamW& opt, int steps, int first) {
    for (int s = first; s < first + steps; ++s) {
      for (size_t i = 0; i < params.size(); ++i) {
        params[i].mutable_grad() = torch::full(params[i].sizes(), 0.1 * (s + 1) * (i + 1));
      }
      opt.Step(0.01);
    }
  };
  std::vector<torch::Tensor> a = make(), b = make();
  AdamW opt_a({{"w", a[0]}, {"b", a[1]}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  run(a, opt_a, 6, 0);
  AdamW opt_b({{"w", b[0]}, {"b", b[1]}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  run(b, opt_b, 3, 0);
  ASSERT_TRUE(opt_b.Save(dir / "opt.pt").ok());
  std::vector<torch::Tensor> c = {b[0].clone(), b[1].clone()};
  AdamW opt_c({{"w", c[0]}, {"b", c[1]}}, AdamWOptions{0.9, 0.999, 1e-8, 0.01});
  ASSERT_TRUE(opt_c.Load(dir / "opt.pt").ok());
  EXPECT_EQ(opt_c.step_count(), 3);
  run(c, opt_c, 3, 3);
  EXPECT_TRUE(torch::equal(a[0], c[0]));
  EXPECT_TRUE(torch::equal(a[1], c[1]));
  AdamW wrong({{"w", torch::zeros({2, 2})}, {"b", torch::zeros({3})}}, AdamWOptions{});
  EXPECT_FALSE(wrong.Load(dir / "opt.pt").ok());
}

TEST(AdamWTest, KeepsFloat32MasterWeightsForBfloat16) {
  torch::Tensor p = torch::ones({4, 4}, torch::kBFloat16);
  AdamW opt({{"w", p}}, AdamWOptions{});
  for (int s = 0; s < 100; ++s) {
    p.mutable_grad() = torch::ones({4, 4}, torch::kBFloat16);
    opt.Step(1e-4);  // 1e-4 steps are below bf16 resolution near 1.0: only a master copy accumulates
  }
  // Adam's step is ~lr per update: the master weight is ~0.99; bf16 rounds it to within 2^-8.
  EXPECT_NEAR(p.to(torch::kFloat32).max().item<float>(), 0.99f, 0.004f);
}

TEST(DpoLossTest, MatchesReferenceLossesAndGradients) {
  TempDir dir;
  const std::vector<double> pc = {-10.0, -3.5, -20.0, -7.0}, pr = {-12.0, -3.0, -15.0, -7.5},
                            rc = {-11.0, -4.0, -19.0, -6.0}, rr = {-11.5, -2.0, -16.0, -8.0};
  for (auto [loss, ls] : {std::pair{"sigmoid", 0.0}, std::pair{"sigmoid", 0.2}, std::pair{"ipo", 0.0}}) {
    auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    torch::Tensor tpc = torch::tensor(pc, opts).requires_grad_(true), tpr = torch::tensor(pr, opts).requires_grad_(true);
    DpoLossOptions options{*ParseDpoLossKind(loss), 0.3, ls};
    DpoLossOutput out = DpoLoss(tpc, tpr, torch::tensor(rc, opts), torch::tensor(rr, opts), options);
    out.losses.sum().backward();
    nlohmann::json ref = RunPythonReference("reference_ops.py",
        {{"op", "dpo"}, {"pc", pc}, {"pr", pr}, {"rc", rc}, {"rr", rr}, {"beta", 0.3}, {"label_smoothing", ls}, {"loss", loss}}, dir);
    for (int i = 0; i < 4; ++i) {
      ExpectClose(out.losses[i].item<double>(), ref["losses"][i].get<double>(), 1e-12, loss);
      ExpectClose(tpc.grad()[i].item<double>(), ref["grad_pc"][i].get<double>(), 1e-12, "grad chosen");
      ExpectClose(tpr.grad()[i].item<double>(), ref["grad_pr"][i].get<double>(), 1e-12, "grad rejected");
      EXPECT_DOUBLE_EQ(out.chosen_rewards[i].item<double>(), 0.3 * (pc[i] - rc[i]));
    }
  }
  EXPECT_FALSE(ParseDpoLossKind("hinge").ok());
}

TEST(GradSyncTest, SingleProcessDividesByWeightAndSkipsNonFinite) {
  auto comm = MakeSingleProcessCommunicator();
  torch::Tensor a = torch::zeros({3}), b = torch::zeros({2, 2}), unused = torch::zeros({2});
  GradientSynchronizer sync({a, b, unused}, comm.get());
  a.mutable_grad() = torch::tensor({2.0f, 4.0f, 6.0f});
  b.mutable_grad() = torch::full({2, 2}, 8.0f);
  std::vector<double> sums = {1.5};
  absl::StatusOr<GradSyncResult> r = sync.Synchronize(2.0, &sums);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->skipped);
  EXPECT_EQ(r->global_weight, 2.0);
  EXPECT_EQ(sums[0], 1.5);
  EXPECT_TRUE(torch::equal(a.grad(), torch::tensor({1.0f, 2.0f, 3.0f})));
  EXPECT_TRUE(torch::equal(b.grad(), torch::full({2, 2}, 4.0f)));
  ASSERT_TRUE(unused.grad().defined());
  EXPECT_EQ(unused.grad().abs().sum().item<float>(), 0.0f);

  b.mutable_grad()[0][1] = std::numeric_limits<float>::infinity();
  r = sync.Synchronize(2.0);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->skipped);
  EXPECT_EQ(a.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(b.grad().abs().sum().item<float>(), 0.0f);
}

TEST(GradSyncTest, SplitsParametersIntoBuckets) {
  auto comm = MakeSingleProcessCommunicator();
  std::vector<torch::Tensor> params;
  for (int i = 0; i < 10; ++i) params.push_back(torch::zeros({256}));  // 1 KiB each
  GradientSynchronizer sync(params, comm.get(), /*bucket_bytes=*/3 * 1024);
  EXPECT_EQ(sync.num_buckets(), 4);  // 3 + 3 + 3 + 1
  GradientSynchronizer one(params, comm.get());
  EXPECT_EQ(one.num_buckets(), 1);
}

TEST(CommunicatorTest, SingleProcessIsIdentity) {
  auto comm = MakeSingleProcessCommunicator();
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->local_rank(), 0);
  torch::Tensor t = torch::tensor({1.0f, 2.0f});
  ASSERT_TRUE(comm->AllReduceSum(t).ok());
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0f, 2.0f})));
  EXPECT_FALSE(comm->Broadcast(t, 1).ok());
  EXPECT_FALSE(MakeCommunicator("gloo", "cpu").ok());
  auto automatic = MakeCommunicator("auto", "cpu");
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ((*automatic)->backend_name(), "single");  // ctest does not run this under mpirun
#if !defined(SRLM_WITH_NCCL)
  EXPECT_EQ(MakeNcclCommunicator(0).status().code(), absl::StatusCode::kUnimplemented);
#endif
}

// Rank 5 of a job with 4 ranks per node is local rank 1: its model goes to GPU 1, where
// MakeNcclCommunicator(-1) puts its communicator (the world rank used to pick GPU 5).
TEST(CommunicatorTest, CudaDeviceIsTheLocalRanksGpu) {
  class Placed : public Communicator {
   public:
    Placed(int rank, int local_rank) : rank_(rank), local_rank_(local_rank) {}
    int rank() const override { return rank_; }
    int world_size() const override { return 8; }
    int local_rank() const override { return local_rank_; }
    std::string backend_name() const override { return "placed"; }
    absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
    absl::Status Broadcast(at::Tensor&, int) override { return absl::OkStatus(); }
    absl::Status AllReduceSumHost(std::vector<double>*) override { return absl::OkStatus(); }
    absl::Status AllReduceMaxHost(std::vector<double>*) override { return absl::OkStatus(); }
    absl::Status Barrier() override { return absl::OkStatus(); }

   private:
    int rank_, local_rank_;
  };
  EXPECT_EQ(CudaDeviceIndex("cuda", Placed(5, 1), 8), 1);
  EXPECT_EQ(CudaDeviceIndex("cuda", Placed(2, 1), 2), 1);  // round-robin placement: rank 2 is node 0's second
  EXPECT_EQ(CudaDeviceIndex("cuda", Placed(3, 3), 1), 0);  // --gpus-per-task=1: each task sees its one GPU
  EXPECT_EQ(CudaDeviceIndex("cuda:3", Placed(5, 1), 8), 3);
  EXPECT_EQ(CudaDeviceIndex("cuda", Placed(0, 0), 0), 0);
  EXPECT_EQ(CudaDeviceIndex("cpu", Placed(5, 1), 8), -1);
  EXPECT_EQ(ExplicitCudaIndex("cuda:3"), 3);  // what MakeCommunicator hands MakeNcclCommunicator
  EXPECT_EQ(ExplicitCudaIndex("cuda"), -1);
  EXPECT_EQ(LocalCudaIndex(3, 1), 0);  // and what it takes for -1
}

TEST(ExamplesTest, ReadsTokenIdLinesWithReferenceLogprobs) {
  TempDir dir;
  WriteFileText(dir / "dpo.jsonl",
                "{\"prompt_ids\": [1, 2], \"chosen_ids\": [3, 4], \"rejected_ids\": [5], \"ref_chosen_logprob\": -1.5, "
                "\"ref_rejected_logprob\": -2.5}\n\n"
                "{\"prompt_ids\": [1], \"chosen_ids\": [3], \"rejected_ids\": [6, 7]}\n");
  auto pairs = ReadPreferenceJsonl(dir / "dpo.jsonl", nullptr, ExampleLimits{8, 10});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_EQ(pairs->size(), 2u);
  EXPECT_EQ((*pairs)[0].chosen_ids, (TokenIds{3, 4}));
  EXPECT_EQ(*(*pairs)[0].ref_rejected_logprob, -2.5);
  EXPECT_FALSE((*pairs)[1].ref_chosen_logprob.has_value());

  WriteFileText(dir / "sft.jsonl", "{\"prompt_ids\": [1, 2], \"response_ids\": [3]}\n");
  auto sft = ReadSftJsonl(dir / "sft.jsonl", nullptr, ExampleLimits{});
  ASSERT_TRUE(sft.ok());
  EXPECT_EQ((*sft)[0].response_ids, (TokenIds{3}));
}

TEST(ExamplesTest, ReportsBadLinesWithTheirNumbers) {
  TempDir dir;
  WriteFileText(dir / "sft.jsonl",
                "{\"prompt_ids\": [1, 2], \"response_ids\": [3]}\n"
                "{\"prompt_ids\": [1, 2]}\n"
                "{\"prompt_ids\": [1, 2], \"response_ids\": []}\n"
                "{\"prompt_ids\": [1, 2, 3, 4], \"response_ids\": [5, 6]}\n"
                "not json\n"
                "{\"prompt\": \"hi\", \"response\": \"there\"}\n"
                "{\"prompt_ids\": [1], \"response_ids\": [99]}\n");
  auto sft = ReadSftJsonl(dir / "sft.jsonl", nullptr, ExampleLimits{5, 50});
  ASSERT_FALSE(sft.ok());
  const std::string m(sft.status().message());
  EXPECT_NE(m.find("6 bad line(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:2: missing key 'response'"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:3: 'response' is empty"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:4: prompt + response is 6 tokens, over the limit of 5"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:5: not a JSON object"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:6: 'prompt' is text but no tokenizer"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:7: token id 99 outside the vocabulary"), std::string::npos) << m;
  EXPECT_EQ(m.find("sft.jsonl:1:"), std::string::npos) << m;

  WriteFileText(dir / "dpo.jsonl", "{\"prompt_ids\": [1], \"chosen_ids\": [2], \"rejected_ids\": [3], \"ref_chosen_logprob\": -1}\n");
  auto dpo = ReadPreferenceJsonl(dir / "dpo.jsonl", nullptr, ExampleLimits{});
  ASSERT_FALSE(dpo.ok());
  EXPECT_NE(dpo.status().message().find("dpo.jsonl:1: give both"), std::string::npos) << dpo.status();
  EXPECT_EQ(ReadSftJsonl(dir / "missing.jsonl", nullptr, {}).status().code(), absl::StatusCode::kNotFound);
  // The file checks of every JSONL reader (common/jsonl.h): a folder is refused as one (it read as
  // a file with no examples), a line nested too deep is a bad line with its number.
  const absl::Status folder = ReadSftJsonl(dir.path(), nullptr, {}).status();
  EXPECT_NE(folder.message().find("is a directory"), std::string::npos) << folder;
  WriteFileText(dir / "deep.jsonl", "{\"prompt_ids\": [1], \"response_ids\": [2]}\n{\"x\": " + std::string(100, '[') +
                                    std::string(100, ']') + "}\n");
  const absl::Status deep = ReadSftJsonl(dir / "deep.jsonl", nullptr, {}).status();
  EXPECT_NE(deep.message().find("1 bad line(s)"), std::string::npos) << deep;
  EXPECT_NE(deep.message().find("deep.jsonl:2: nested deeper than 64 levels"), std::string::npos) << deep;
}

// A reference log-probability is a sum of token log-probabilities: <= 0, and finite in float32, in
// which the trainer takes it. 1.5 and +-1e308 were taken (-1e308 became -inf there).
TEST(ExamplesTest, RefusesReferenceLogprobsThatAreNoLogProbabilities) {
  TempDir dir;
  const std::string pair = "{\"prompt_ids\": [1], \"chosen_ids\": [2], \"rejected_ids\": [3], ";
  WriteFileText(dir / "dpo.jsonl", pair + "\"ref_chosen_logprob\": -1, \"ref_rejected_logprob\": -2}\n" +
                                       pair + "\"ref_chosen_logprob\": 1.5, \"ref_rejected_logprob\": -2}\n" +
                                       pair + "\"ref_chosen_logprob\": -1, \"ref_rejected_logprob\": 1e308}\n" +
                                       pair + "\"ref_chosen_logprob\": -1e308, \"ref_rejected_logprob\": -2}\n" +
                                       pair + "\"ref_chosen_logprob\": -1, \"ref_rejected_logprob\": -3.5e38}\n" +
                                       pair + "\"ref_chosen_logprob\": 0, \"ref_rejected_logprob\": -3.4e38}\n");
  const absl::Status status = ReadPreferenceJsonl(dir / "dpo.jsonl", nullptr, ExampleLimits{}).status();
  const std::string m(status.message());
  EXPECT_NE(m.find("4 bad line(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("dpo.jsonl:2: 'ref_chosen_logprob' is 1.5: expected a log-probability sum in [-3.40282e+38, 0] "
                   "(<= 0, and finite in float32)"),
            std::string::npos) << m;
  EXPECT_NE(m.find("dpo.jsonl:3: 'ref_rejected_logprob' is 1e+308"), std::string::npos) << m;
  EXPECT_NE(m.find("dpo.jsonl:4: 'ref_chosen_logprob' is -1e+308"), std::string::npos) << m;
  EXPECT_NE(m.find("dpo.jsonl:5: 'ref_rejected_logprob' is -3.5e+38"), std::string::npos) << m;
  EXPECT_EQ(m.find("dpo.jsonl:1:"), std::string::npos) << m;
  EXPECT_EQ(m.find("dpo.jsonl:6:"), std::string::npos) << m;  // 0 and -3.4e38: inside the range
}

TEST(ExamplesTest, RefusesIdsOutsideInt32InsteadOfWrappingThem) {
  // 4294967303 = 2^32 + 7 used to be read as 7, 18446744073709551615 as -1: both are refused, even
  // with no vocabulary to check against.
  TempDir dir;
  WriteFileText(dir / "sft.jsonl",
                "{\"prompt_ids\": [5, 6], \"response_ids\": [4294967303]}\n"
                "{\"prompt_ids\": [2147483648], \"response_ids\": [7]}\n"
                "{\"prompt_ids\": [5, 6], \"response_ids\": [2147483647]}\n");
  auto sft = ReadSftJsonl(dir / "sft.jsonl", nullptr, ExampleLimits{});
  ASSERT_FALSE(sft.ok());
  const std::string m(sft.status().message());
  EXPECT_NE(m.find("2 bad line(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:1: 'response_ids' holds 4294967303, not a token id"), std::string::npos) << m;
  EXPECT_NE(m.find("sft.jsonl:2: 'prompt_ids' holds 2147483648, not a token id"), std::string::npos) << m;

  WriteFileText(dir / "dpo.jsonl",
                "{\"prompt_ids\": [5], \"chosen_ids\": [7], \"rejected_ids\": [18446744073709551615]}\n");
  auto dpo = ReadPreferenceJsonl(dir / "dpo.jsonl", nullptr, ExampleLimits{});
  ASSERT_FALSE(dpo.ok());
  EXPECT_NE(dpo.status().message().find("dpo.jsonl:1: 'rejected_ids' holds 18446744073709551615, not a token id"),
            std::string::npos)
      << dpo.status();
}

class FakeEncoder : public TextEncoder {
 public:
  absl::StatusOr<TokenIds> EncodePrompt(const std::string& p) const override { return TokenIds(p.size(), 1); }
  absl::StatusOr<TokenIds> EncodeResponse(const std::string& r) const override {
    TokenIds ids(r.size(), 2);
    ids.push_back(9);
    return ids;
  }
};

TEST(ExamplesTest, EncodesTextThroughTheEncoder) {
  TempDir dir;
  WriteFileText(dir / "dpo.jsonl", "{\"prompt\": \"abc\", \"chosen\": \"de\", \"rejected\": \"f\"}\n");
  FakeEncoder encoder;
  auto pairs = ReadPreferenceJsonl(dir / "dpo.jsonl", &encoder, ExampleLimits{});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ((*pairs)[0].prompt_ids, (TokenIds{1, 1, 1}));
  EXPECT_EQ((*pairs)[0].chosen_ids, (TokenIds{2, 2, 9}));
  WriteFileText(dir / "empty.jsonl", "{\"prompt\": \"abc\", \"chosen\": \"\", \"rejected\": \"f\"}\n");
  EXPECT_NE(ReadPreferenceJsonl(dir / "empty.jsonl", &encoder, {}).status().message().find(":1: 'chosen' is empty"),
            std::string::npos);
}

TEST(AtomicDirTest, WritesReplacesAndNeverExposesPartialCheckpoints) {
  TempDir dir;
  const std::string out = dir / "run";
  auto write_state = [](const std::string& text) {
    return [text](const std::string& tmp) {
      WriteFileText(tmp + "/trainer_state.json", text);
      return absl::OkStatus();
    };
  };
  ASSERT_TRUE(WriteDirectoryAtomically(CheckpointDir(out, 2), write_state("two")).ok());
  ASSERT_TRUE(WriteDirectoryAtomically(CheckpointDir(out, 10), write_state("ten")).ok());
  ASSERT_TRUE(WriteDirectoryAtomically(CheckpointDir(out, 10), write_state("ten again")).ok());
  EXPECT_EQ(testing::ReadFileText(CheckpointDir(out, 10) + "/trainer_state.json"), "ten again");
  // The replaced contents are gone, and so is what a writer that crashed while replacing (on a file
  // system without RENAME_EXCHANGE) left under the old name.
  ASSERT_EQ(::mkdir((out + "/.checkpoint-10.old-99").c_str(), 0755), 0);
  ASSERT_TRUE(WriteDirectoryAtomically(CheckpointDir(out, 10), write_state("ten thrice")).ok());
  EXPECT_EQ(testing::ReadFileText(CheckpointDir(out, 10) + "/trainer_state.json"), "ten thrice");
  EXPECT_NE(testing::Shell("ls -a " + out + " | grep -q '^\\.checkpoint-10'"), 0) << "a leftover of checkpoint-10";
  // The same on a file system without RENAME_EXCHANGE (older NFS): the old folder is moved aside.
  ::setenv("SRLM_TEST_NO_RENAME_EXCHANGE", "1", 1);
  const absl::Status moved_aside = WriteDirectoryAtomically(CheckpointDir(out, 10), write_state("ten, moved aside"));
  ::unsetenv("SRLM_TEST_NO_RENAME_EXCHANGE");
  ASSERT_TRUE(moved_aside.ok()) << moved_aside;
  EXPECT_EQ(testing::ReadFileText(CheckpointDir(out, 10) + "/trainer_state.json"), "ten, moved aside");
  EXPECT_NE(testing::Shell("ls -a " + out + " | grep -q '^\\.checkpoint-10'"), 0) << "a leftover of checkpoint-10";

  // A writer that fails half-way leaves neither a final name nor its temporary.
  std::string failed_tmp;
  absl::Status failed = WriteDirectoryAtomically(CheckpointDir(out, 20), [&](const std::string& tmp) {
    failed_tmp = tmp;
    WriteFileText(tmp + "/trainer_state.json", "half");
    return absl::InternalError("disk full");
  });
  EXPECT_FALSE(failed.ok());
  struct stat st;
  EXPECT_NE(::stat(CheckpointDir(out, 20).c_str(), &st), 0);
  ASSERT_FALSE(failed_tmp.empty());
  EXPECT_NE(::stat(failed_tmp.c_str(), &st), 0) << "the failed write left " << failed_tmp;
  // A crashed writer's temporary (complete, marker included) is never taken for a checkpoint.
  ASSERT_EQ(::mkdir((out + "/.checkpoint-40.tmp-1").c_str(), 0755), 0);
  WriteFileText(out + "/.checkpoint-40.tmp-1/trainer_state.json", "{}");
  // A folder with a final-looking name but no marker (not written by us) is ignored too.
  ASSERT_EQ(::mkdir(CheckpointDir(out, 30).c_str(), 0755), 0);
  auto latest = FindLatestCheckpointStep(out, "trainer_state.json");
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ(**latest, 10);
  // A path that cannot be listed (a file) is an error, not "no checkpoint": --resume would start over.
  WriteFileText(dir / "a_file", "x");
  EXPECT_FALSE(FindLatestCheckpointStep(dir / "a_file", "trainer_state.json").ok());
  auto none = FindLatestCheckpointStep(dir / "nothing", "trainer_state.json");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// Checked before a long training: a folder that cannot be written is an error naming the path,
// and a writable one is left as it was (made if missing, no probe left behind).
TEST(AtomicDirTest, CheckDirectoryWritableFailsEarlyAndLeavesNothing) {
  TempDir dir;
  ASSERT_TRUE(CheckDirectoryWritable(dir / "root/iter-2").ok());
  struct stat st;
  EXPECT_EQ(::stat((dir / "root").c_str(), &st), 0);
  EXPECT_NE(::stat((dir / "root/iter-2").c_str(), &st), 0);
  EXPECT_EQ(::rmdir((dir / "root").c_str()), 0) << "the probe was left behind";
  WriteFileText(dir / "file", "not a folder");
  const absl::Status blocked = CheckDirectoryWritable(dir / "file/iter-2");
  EXPECT_FALSE(blocked.ok());
  EXPECT_NE(std::string(blocked.message()).find(dir / "file"), std::string::npos) << blocked;
}

}  // namespace
}  // namespace srlm
