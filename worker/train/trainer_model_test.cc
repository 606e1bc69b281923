// Trainer tests on a tiny Hugging Face Llama: DPO/SFT loss and gradients against the independent
// Python implementation (testdata/train_reference.py, float64 transformers), batch slicing,
// learning on toy sets, and in-process checkpoint/resume bit for bit. TrainCommand* test the
// `srlm-worker sft|dpo` command line (worker/train/train_command.cc).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <functional>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "common/run_config.h"
#include "common/testing/address_space_limit.h"
#include "worker/model/checkpoint_io.h"
#include "worker/train/atomic_dir.h"
#include "worker/train/test_util.h"
#include "worker/train/train_command.h"
#include "worker/train/trainer.h"

namespace srlm {
namespace {

using ::srlm::testing::TempDir;
using ::srlm::testing::WriteFileText;
using ::testing::HasSubstr;

TempDir* g_dir = nullptr;
std::string PolicyDir() { return *g_dir / "policy"; }
std::string RefDir() { return *g_dir / "ref"; }

TokenIds RandomIds(std::mt19937& rng, int min_len, int max_len) {
  std::uniform_int_distribution<int> len(min_len, max_len), id(3, 60);
  TokenIds ids(len(rng));
  for (auto& v : ids) v = id(rng);
  return ids;
}

std::string Ids(const TokenIds& ids) { return nlohmann::json(ids).dump(); }

// Pairs (with or without precomputed reference log-probs) and SFT lines, written as JSONL.
void WriteData() {
  std::mt19937 rng(7);
  std::string pairs, pairs_ref, sft;
  std::uniform_real_distribution<double> ref(-60.0, -20.0);
  for (int i = 0; i < 7; ++i) {
    TokenIds p = RandomIds(rng, 2, 6), c = RandomIds(rng, 1, 7), r = RandomIds(rng, 1, 7);
    const std::string base = "{\"prompt_ids\": " + Ids(p) + ", \"chosen_ids\": " + Ids(c) + ", \"rejected_ids\": " + Ids(r);
    pairs += base + "}\n";
    pairs_ref += base + ", \"ref_chosen_logprob\": " + std::to_string(ref(rng)) + ", \"ref_rejected_logprob\": " +
                 std::to_string(ref(rng)) + "}\n";
    sft += "{\"prompt_ids\": " + Ids(p) + ", \"response_ids\": " + Ids(c) + "}\n";
  }
  WriteFileText(*g_dir / "pairs.jsonl", pairs);
  WriteFileText(*g_dir / "pairs_ref.jsonl", pairs_ref);
  WriteFileText(*g_dir / "sft.jsonl", sft);
}

class TrainerModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_dir = new TempDir();
    WriteData();
    // One Python start: the two tiny models, then the reference losses and gradients.
    nlohmann::json jobs = nlohmann::json::array();
    jobs.push_back({{"make", {{"out", PolicyDir()}, {"seed", 1}}}});
    jobs.push_back({{"make", {{"out", RefDir()}, {"seed", 2}}}});
    jobs.push_back({{"policy", PolicyDir()}, {"data", *g_dir / "pairs_ref.jsonl"}, {"kind", "dpo"}, {"beta", 0.3},
                    {"label_smoothing", 0.1}, {"out", *g_dir / "grad_dpo_sigmoid"}});
    jobs.push_back({{"policy", PolicyDir()}, {"ref", RefDir()}, {"data", *g_dir / "pairs.jsonl"}, {"kind", "dpo"},
                    {"beta", 0.5}, {"loss", "ipo"}, {"length_normalize", true}, {"out", *g_dir / "grad_dpo_ipo"}});
    jobs.push_back({{"policy", PolicyDir()}, {"data", *g_dir / "sft.jsonl"}, {"kind", "sft"}, {"out", *g_dir / "grad_sft"}});
    WriteFileText(*g_dir / "jobs.json", jobs.dump());
    const std::string cmd = testing::VenvPython() + " " + testing::SourceDir() +
                            "/worker/train/testdata/train_reference.py jobs --jobs " + (*g_dir / "jobs.json") + " >" +
                            (*g_dir / "python.log") + " 2>&1";
    python_rc_ = testing::Shell(cmd);
  }
  static void TearDownTestSuite() {
    delete g_dir;
    g_dir = nullptr;
  }
  void SetUp() override { ASSERT_EQ(python_rc_, 0) << testing::ReadFileText(*g_dir / "python.log"); }

  static TrainerOptions Options(TrainingObjective objective) {
    TrainerOptions o;
    o.objective = objective;
    o.train.steps = 1;
    o.train.batch_size = 7;
    o.train.micro_batch_size = 3;  // 3 + 3 + 1: accumulation with a short last micro-batch
    o.train.lr = 0;
    o.train.lr_schedule = "constant";
    o.train.min_lr = 0;
    o.train.max_grad_norm = 0;
    o.train.dropout = 0;
    o.train.weight_decay = 0;
    o.log_every = 0;
    return o;
  }

  // Loss of one lr-0 step equals the reference; every gradient matches within 1e-4 relative.
  static void ExpectMatchesReference(Trainer& trainer, double loss, const std::string& grads_dir) {
    const double expected = nlohmann::json::parse(testing::ReadFileText(grads_dir + "/result.json"))["loss"].get<double>();
    EXPECT_LE(std::abs(loss - expected), 1e-5 * std::abs(expected)) << loss << " vs " << expected;
    absl::StatusOr<LlamaModel> grads = LoadModel(grads_dir, torch::kCPU, torch::kFloat32);
    ASSERT_TRUE(grads.ok()) << grads.status();
    auto reference = (*grads)->named_parameters();
    int compared = 0;
    for (const auto& item : trainer.model()->named_parameters()) {
      const torch::Tensor& got = item.value().grad();
      ASSERT_TRUE(got.defined()) << item.key();
      const torch::Tensor want = reference[item.key()];
      const double scale = want.abs().max().item<double>();
      const double error = (got - want).abs().max().item<double>();
      EXPECT_LE(error, 1e-4 * scale + 1e-7) << item.key() << ": max error " << error << ", max |grad| " << scale;
      ++compared;
    }
    EXPECT_EQ(compared, 2 * 9 + 3);  // 2 layers x 9 tensors, embeddings, final norm, lm_head
  }

  static int python_rc_;
};
int TrainerModelTest::python_rc_ = -1;

LlamaModel Load(const std::string& dir) {
  absl::StatusOr<LlamaModel> m = LoadModel(dir, torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

TEST_F(TrainerModelTest, DpoSigmoidWithPrecomputedReferenceMatchesPython) {
  auto pairs = ReadPreferenceJsonl(*g_dir / "pairs_ref.jsonl", nullptr, {});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kDpo);
  o.dpo.beta = 0.3;
  o.dpo.label_smoothing = 0.1;
  auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->TrainDpo(*pairs);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ExpectMatchesReference(**trainer, summary->history[0].loss, *g_dir / "grad_dpo_sigmoid");
}

TEST_F(TrainerModelTest, DpoIpoWithReferenceModelAndLengthNormalizationMatchesPython) {
  auto pairs = ReadPreferenceJsonl(*g_dir / "pairs.jsonl", nullptr, {});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kDpo);
  o.dpo.beta = 0.5;
  o.dpo.loss = "ipo";
  o.dpo.length_normalize = true;
  auto trainer = Trainer::Create(Load(PolicyDir()), Load(RefDir()), comm.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->TrainDpo(*pairs);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ExpectMatchesReference(**trainer, summary->history[0].loss, *g_dir / "grad_dpo_ipo");

  // Without a reference model, pairs lacking reference log-probs are refused.
  auto no_ref = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(no_ref.ok());
  EXPECT_EQ((*no_ref)->TrainDpo(*pairs).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(TrainerModelTest, SftMatchesPython) {
  auto examples = ReadSftJsonl(*g_dir / "sft.jsonl", nullptr, {});
  ASSERT_TRUE(examples.ok()) << examples.status();
  auto comm = MakeSingleProcessCommunicator();
  auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), Options(TrainingObjective::kSft));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  auto summary = (*trainer)->TrainSft(*examples);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ExpectMatchesReference(**trainer, summary->history[0].loss, *g_dir / "grad_sft");
}

TEST(BatchTest, RanksSplitEveryGlobalBatchAndEpochsCoverTheData) {
  const int64_t n = 23, batch = 5;
  EXPECT_EQ(*TotalSteps(TrainConfig{0, 2, batch}, n, TrainingObjective::kSft), 10);  // 2 epochs of ceil(23/5)
  EXPECT_EQ(*TotalSteps(TrainConfig{7, 2, batch}, n, TrainingObjective::kSft), 7);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<int64_t> seen;
    for (int64_t k = 0; k < 5; ++k) {
      const std::vector<int64_t> global = GlobalBatchIndices(epoch * 5 + k, n, batch, 42);
      EXPECT_EQ(global.size(), k < 4 ? 5u : 3u);  // the last batch of an epoch is short
      for (int world : {1, 2, 3}) {
        std::multiset<int64_t> joined;
        for (int r = 0; r < world; ++r) {
          for (int64_t i : RankSlice(global, r, world)) {
            EXPECT_EQ(i % world, r) << "a rank reads only its own residue class";
            joined.insert(i);
          }
        }
        EXPECT_EQ(joined, std::multiset<int64_t>(global.begin(), global.end()));
      }
      seen.insert(global.begin(), global.end());
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(n));
    EXPECT_EQ(*seen.rbegin(), n - 1);
  }
  EXPECT_NE(GlobalBatchIndices(0, n, batch, 42), GlobalBatchIndices(5, n, batch, 42));  // reshuffled per epoch
  EXPECT_EQ(GlobalBatchIndices(3, n, batch, 42), GlobalBatchIndices(3, n, batch, 42));
}

// The step count at the ends of the range: a batch_size of INT64_MAX made (n + batch - 1) / batch
// overflow to 0 (the command died of SIGFPE) or a negative count, and epochs near INT64_MAX wrapped
// epochs x batches to -10 or 4 steps; a derived count over kMaxTrainingSteps is refused, naming the key.
TEST(BatchTest, StepCountsNeitherOverflowNorWrap) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(*TotalSteps(TrainConfig{0, 1, kMax}, 20, TrainingObjective::kSft), 1);
  EXPECT_EQ(*TotalSteps(TrainConfig{0, 3, kMax}, 20, TrainingObjective::kDpo), 3);
  EXPECT_EQ(GlobalBatchIndices(0, 20, kMax, 42).size(), 20u);
  EXPECT_EQ(GlobalBatchIndices(1, 20, kMax, 42).size(), 20u);  // the next epoch
  EXPECT_EQ(*TotalSteps(TrainConfig{0, kMaxTrainingSteps, 20}, 20, TrainingObjective::kSft), kMaxTrainingSteps);
  for (const auto& [epochs, batch] : std::vector<std::pair<int64_t, int64_t>>{
           {kMax, 2}, {1844674407370955162, 2}, {kMaxTrainingSteps, 19}, {kMaxTrainingSteps / 10 + 1, 2}}) {
    const absl::StatusOr<int64_t> total = TotalSteps(TrainConfig{0, epochs, batch}, 20, TrainingObjective::kDpo);
    EXPECT_EQ(total.status().code(), absl::StatusCode::kInvalidArgument) << epochs << " " << batch;
    EXPECT_THAT(std::string(total.status().message()), HasSubstr("dpo.epochs (" + std::to_string(epochs) + ")"));
    EXPECT_THAT(std::string(total.status().message()), HasSubstr("over the limit of 2147483647 steps"));
  }
  EXPECT_THAT(std::string(TotalSteps(TrainConfig{kMax, 1, 2}, 20, TrainingObjective::kSft).status().message()),
              HasSubstr("sft.steps"));
  EXPECT_FALSE(TotalSteps(TrainConfig{0, 1, 0}, 20, TrainingObjective::kSft).ok());
}

// A learnable toy set: the response repeats the prompt's last token twice, then EOS (2).
std::vector<SftExample> ToySft() {
  std::vector<SftExample> out;
  for (int i = 0; i < 8; ++i) {
    const int32_t t = 5 + 6 * i;
    out.push_back({{1, 3, t}, {t, t, 2}});
  }
  return out;
}

TEST_F(TrainerModelTest, SftLowersTheLossOnAToySet) {
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.steps = 30;
  o.train.batch_size = 8;
  o.train.micro_batch_size = 8;
  o.train.lr = 1e-2;
  o.train.lr_schedule = "cosine";
  o.train.min_lr = 1e-3;
  o.train.warmup_steps = 3;
  o.train.max_grad_norm = 1.0;
  o.train.dropout = 0.1;
  auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(trainer.ok());
  auto summary = (*trainer)->TrainSft(ToySft());
  ASSERT_TRUE(summary.ok()) << summary.status();
  const double first = summary->history.front().loss, last = summary->history.back().loss;
  EXPECT_LT(last, 0.25 * first) << first << " -> " << last;
  EXPECT_EQ(summary->history.back().lr, 1e-3);
}

TEST_F(TrainerModelTest, DpoRaisesTheChosenVersusRejectedMargin) {
  std::vector<PreferenceExample> pairs;
  for (const SftExample& e : ToySft()) pairs.push_back({e.prompt_ids, e.response_ids, {e.prompt_ids.back(), 4, 2}, std::nullopt, std::nullopt});
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kDpo);
  o.train.steps = 15;
  o.train.batch_size = 8;
  o.train.lr = 5e-3;
  o.train.max_grad_norm = 1.0;
  o.dpo.beta = 0.1;
  auto trainer = Trainer::Create(Load(PolicyDir()), Load(PolicyDir()), comm.get(), o);
  ASSERT_TRUE(trainer.ok());
  auto summary = (*trainer)->TrainDpo(pairs);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NEAR(summary->history.front().reward_margin, 0.0, 1e-5);  // policy == reference at step 1
  EXPECT_NEAR(summary->history.front().loss, std::log(2.0), 1e-5);
  EXPECT_GT(summary->history.back().reward_margin, 0.5);
  EXPECT_EQ(summary->history.back().reward_accuracy, 1.0);
  EXPECT_LT(summary->history.back().loss, 0.5);
}

// Dropout is keyed per example (keyed_dropout.h): a DPO step with dropout 0.3 moves the weights the
// same way, within float rounding, whether the global batch of 7 runs in micro-batches of 7, 3+3+1
// or 1 each; and the dropout did act (the weights differ from a run without it). Dropout moves every
// tensor by 5-19% of its largest weight here, so masks that depended on the split would differ by
// that order. Rounding of the other summation orders, amplified by three Adam steps at lr 1e-2, is
// ~1e-6 of the scale for most tensors but reached 1.3e-5 for one element of one tensor on an AMD
// EPYC (MKL's code path differs by CPU): hence 1e-4, still a thousandth of what dropout moves.
TEST_F(TrainerModelTest, DropoutDoesNotDependOnTheMicroBatchSplit) {
  auto comm = MakeSingleProcessCommunicator();
  auto pairs = ReadPreferenceJsonl(*g_dir / "pairs_ref.jsonl", nullptr, {});
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  auto train = [&](int64_t micro_batch_size, double dropout) {
    TrainerOptions o = Options(TrainingObjective::kDpo);
    o.train.steps = 3;
    o.train.lr = 1e-2;
    o.train.micro_batch_size = micro_batch_size;
    o.train.dropout = dropout;
    auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_TRUE((*trainer)->TrainDpo(*pairs).ok());
    std::map<std::string, torch::Tensor> weights;
    for (const auto& item : (*trainer)->model()->named_parameters()) weights[item.key()] = item.value().detach().clone();
    return weights;
  };
  const auto whole = train(7, 0.3), split = train(3, 0.3), singles = train(1, 0.3), no_dropout = train(7, 0);
  double moved_by_dropout = 0;
  for (const auto& [name, want] : whole) {
    const double scale = want.abs().max().item<double>();
    EXPECT_LE((split.at(name) - want).abs().max().item<double>(), 1e-4 * scale) << name;
    EXPECT_LE((singles.at(name) - want).abs().max().item<double>(), 1e-4 * scale) << name;
    moved_by_dropout = std::max(moved_by_dropout, (no_dropout.at(name) - want).abs().max().item<double>() / scale);
  }
  EXPECT_GT(moved_by_dropout, 1e-2);
}

// A micro-batch that does not fit in memory (a real allocation failure under an address-space limit)
// is ResourceExhausted naming the keys to lower, not an internal error.
TEST_F(TrainerModelTest, AMicroBatchThatRunsOutOfMemorySaysWhatToLower) {
  LlamaConfig config;
  config.vocab_size = 4096;
  config.hidden_size = 64;
  config.intermediate_size = 128;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 4;
  config.max_position_embeddings = 256;
  LlamaModel model(config);
  InitializeWeights(model, /*seed=*/3);
  std::vector<SftExample> examples;
  for (int i = 0; i < 32; ++i) {  // 32 x 120 tokens: the response logits alone take 63 MB
    TokenIds prompt(60, 5 + i), response(60, 7 + i);
    examples.push_back({prompt, response});
  }
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.batch_size = 32;
  o.train.micro_batch_size = 32;
  auto trainer = Trainer::Create(model, std::nullopt, comm.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainingSummary> summary;
  {
    testing_util::AddressSpaceLimit limit(16 << 20);
    ASSERT_TRUE(limit.ok());
    summary = (*trainer)->TrainSft(examples);
  }
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kResourceExhausted) << summary.status();
  EXPECT_THAT(std::string(summary.status().message()),
              ::testing::HasSubstr("training step 1 ran out of memory with micro-batches of 32 examples: lower the "
                                   "micro-batch (sft.micro_batch_size or dpo.micro_batch_size"));
}

// A learning rate that overflows float32 (libtorch throws std::runtime_error, not c10::Error, for
// the scalar) is an error of the step, not an uncaught exception that kills the worker.
TEST_F(TrainerModelTest, ALearningRateThatOverflowsFloatIsAnErrorNotACrash) {
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.batch_size = 8;
  o.train.micro_batch_size = 8;
  o.train.lr = 1e300;  // finite, so ValidateRunConfig lets it through
  auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<TrainingSummary> summary = (*trainer)->TrainSft(ToySft());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInternal) << summary.status();
  EXPECT_THAT(std::string(summary.status().message()),
              ::testing::HasSubstr("training step 1: value cannot be converted to type float without overflow"));
}

// Weights that are no longer finite are never written: such a model would load and generate only
// garbage.
TEST_F(TrainerModelTest, WeightsThatAreNoLongerFiniteAreNotWritten) {
  auto comm = MakeSingleProcessCommunicator();
  auto trainer = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), Options(TrainingObjective::kSft));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  {
    torch::NoGradGuard no_grad;
    (*trainer)->model()->named_parameters()["model.layers.1.mlp.up_proj.weight"].view(-1)[5] = NAN;
  }
  TempDir out;
  const absl::Status saved = (*trainer)->SaveCheckpoint(out / "ckpt");
  EXPECT_EQ(saved.code(), absl::StatusCode::kFailedPrecondition) << saved;
  EXPECT_THAT(std::string(saved.message()),
              ::testing::HasSubstr("parameter model.layers.1.mlp.up_proj.weight holds non-finite values"));
  struct stat info;
  EXPECT_NE(::stat((out / "ckpt").c_str(), &info), 0) << "a checkpoint was written";
}

TEST_F(TrainerModelTest, ResumeFromACheckpointContinuesBitForBit) {
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.steps = 8;
  o.train.batch_size = 3;   // 8 examples: batches of 3, 3, 2 per epoch
  o.train.micro_batch_size = 2;
  o.train.lr = 3e-3;
  o.train.lr_schedule = "linear";
  o.train.min_lr = 1e-4;
  o.train.warmup_steps = 2;
  o.train.weight_decay = 0.01;
  o.train.max_grad_norm = 0.5;
  o.train.dropout = 0.1;
  o.out_dir = *g_dir / "resume_run";
  const std::vector<SftExample> data = ToySft();

  auto straight = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(straight.ok());
  ASSERT_TRUE((*straight)->TrainSft(data).ok());

  auto first = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  (*first)->set_max_steps_this_call(4);
  ASSERT_TRUE((*first)->TrainSft(data).ok());
  ASSERT_EQ((*first)->step(), 4);
  const std::string ckpt = CheckpointDir(o.out_dir, 4);  // written by the trainer where the call ended
  struct stat written;
  ASSERT_EQ(::stat((ckpt + "/trainer_state.json").c_str(), &written), 0);

  auto resumed = Trainer::Create(Load(ckpt), std::nullopt, comm.get(), o);
  ASSERT_TRUE(resumed.ok());
  ASSERT_TRUE((*resumed)->LoadTrainingState(ckpt).ok());
  EXPECT_EQ((*resumed)->step(), 4);
  auto rest = (*resumed)->TrainSft(data);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->steps_done, 4);
  auto want = (*straight)->model()->named_parameters();
  for (const auto& item : (*resumed)->model()->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), want[item.key()])) << item.key();
  }
  EXPECT_FALSE(torch::equal((*first)->model()->named_parameters()["lm_head.weight"], want["lm_head.weight"]));

  // Without optimizer state (as the loop writes its checkpoints): the same model, no optimizer.pt,
  // and a resume from it is refused with a reason instead of failing on a missing file.
  TrainerOptions lean = o;
  lean.save_optimizer_state = false;
  auto lean_trainer = Trainer::Create(Load(ckpt), std::nullopt, comm.get(), lean);
  ASSERT_TRUE(lean_trainer.ok());
  const std::string lean_ckpt = *g_dir / "lean_checkpoint";
  ASSERT_TRUE((*lean_trainer)->SaveCheckpoint(lean_ckpt).ok());
  struct stat st;
  EXPECT_NE(::stat((lean_ckpt + "/optimizer.pt").c_str(), &st), 0);
  EXPECT_EQ(::stat((ckpt + "/optimizer.pt").c_str(), &st), 0);
  auto reloaded = Load(lean_ckpt);
  for (const auto& item : reloaded->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), (*lean_trainer)->model()->named_parameters()[item.key()])) << item.key();
  }
  auto refused = Trainer::Create(Load(lean_ckpt), std::nullopt, comm.get(), o);
  ASSERT_TRUE(refused.ok());
  const absl::Status no_state = (*refused)->LoadTrainingState(lean_ckpt);
  EXPECT_EQ(no_state.code(), absl::StatusCode::kFailedPrecondition) << no_state;
  EXPECT_NE(std::string(no_state.message()).find("holds no optimizer state"), std::string::npos) << no_state;
}

// Every field of trainer_state.json is checked before the trainer takes anything from it: a step
// of -5 crashed the next step (the data order indexed out of bounds), "1" threw from the JSON
// library (abort), and an objective, world size or batch size that no run has was taken silently.
TEST_F(TrainerModelTest, ResumeRefusesATrainerStateItCannotTrust) {
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.steps = 2;
  o.train.batch_size = 2;
  o.out_dir = *g_dir / "untrusted_run";
  const std::vector<SftExample> data = ToySft();
  auto first = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(first.ok());
  (*first)->set_max_steps_this_call(1);
  ASSERT_TRUE((*first)->TrainSft(data).ok());
  const std::string ckpt = CheckpointDir(o.out_dir, 1);
  const nlohmann::json state = nlohmann::json::parse(testing::ReadFileText(ckpt + "/trainer_state.json"));

  // Each edit in a copy of checkpoint-1 (the folder's name is part of what is checked).
  int copies = 0;
  auto load_edited = [&](const std::function<void(nlohmann::json&)>& edit) -> std::pair<absl::Status, std::string> {
    const std::string dir = *g_dir / ("untrusted_" + std::to_string(copies++));
    EXPECT_EQ(testing::Shell("mkdir -p " + dir + " && cp -r " + ckpt + " " + dir + "/"), 0);
    nlohmann::json edited = state;
    edit(edited);
    WriteFileText(CheckpointDir(dir, 1) + "/trainer_state.json", edited.dump());
    auto trainer = Trainer::Create(Load(ckpt), std::nullopt, comm.get(), o);
    EXPECT_TRUE(trainer.ok());
    absl::Status loaded = (*trainer)->LoadTrainingState(CheckpointDir(dir, 1));
    if (!loaded.ok()) {
      EXPECT_EQ((*trainer)->step(), 0) << "a refused checkpoint moved the step";
    }
    return {loaded, CheckpointDir(dir, 1) + "/trainer_state.json"};
  };
  const std::vector<std::tuple<std::string, nlohmann::json, std::string>> bad = {
      {"step", -5, "an integer in [0, 2147483647]"},
      {"step", -1, "an integer in [0, 2147483647]"},
      {"step", "1", "an integer in [0, 2147483647]"},
      {"step", 1.5, "an integer in [0, 2147483647]"},
      {"step", 18446744073709551615ULL, "an integer in [0, 2147483647]"},
      {"step", 100, "1, the step in the folder's name"},
      {"skipped_steps", -3, "an integer in [0, 1]"},
      {"skipped_steps", 2, "an integer in [0, 1]"},
      {"objective", "dpo", "\"sft\""},
      {"objective", 7, "\"sft\""},
      {"world_size", 0, "an integer in [1, 2147483647]"},
      {"batch_size", 0, "an integer in [1, 2147483647]"},
      {"batch_size", "2", "an integer in [1, 2147483647]"},
      {"seed", -1, "an integer in [0, "},
      {"optimizer_state", "yes", "true or false"},
  };
  for (const auto& [field, value, expected] : bad) {
    const auto [status, path] = load_edited([&, &field = field, &value = value](nlohmann::json& j) { j[field] = value; });
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field << " " << value.dump() << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(path + ": field '" + field + "' is " + value.dump()))
        << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("expected " + expected)) << status;
  }
  const auto [missing, missing_path] = load_edited([](nlohmann::json& j) { j.erase("step"); });
  EXPECT_THAT(std::string(missing.message()), HasSubstr(missing_path + ": field 'step' is missing"));
  const auto [array, array_path] = load_edited([](nlohmann::json& j) { j = nlohmann::json::array({1}); });
  EXPECT_THAT(std::string(array.message()), HasSubstr(array_path + " is not valid: expected a JSON object"));
  // The optimizer made step - skipped_steps updates: a state that disagrees with optimizer.pt is
  // not of one checkpoint.
  const auto [mixed, mixed_path] = load_edited([](nlohmann::json& j) { j["skipped_steps"] = 1; });
  EXPECT_EQ(mixed.code(), absl::StatusCode::kInvalidArgument) << mixed;
  EXPECT_THAT(std::string(mixed.message()), HasSubstr("optimizer.pt: step_count is 1 but"));
  // The state as written loads.
  const auto [as_written, as_written_path] = load_edited([](nlohmann::json&) {});
  EXPECT_TRUE(as_written.ok()) << as_written;
}

// A checkpoint past this run's steps is of a run with other settings: an error, not "done" (it
// logged "done: step 100" and exited 0 without training). At exactly the end there is nothing left.
TEST_F(TrainerModelTest, ACheckpointPastTheRunsStepsIsAnError) {
  auto comm = MakeSingleProcessCommunicator();
  TrainerOptions o = Options(TrainingObjective::kSft);
  o.train.steps = 3;
  o.train.batch_size = 2;
  o.out_dir = *g_dir / "past_run";
  const std::vector<SftExample> data = ToySft();
  auto first = Trainer::Create(Load(PolicyDir()), std::nullopt, comm.get(), o);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->TrainSft(data).ok());
  const std::string ckpt = CheckpointDir(o.out_dir, 3);

  TrainerOptions fewer = o;
  fewer.train.steps = 2;
  auto past = Trainer::Create(Load(ckpt), std::nullopt, comm.get(), fewer);
  ASSERT_TRUE(past.ok());
  ASSERT_TRUE((*past)->LoadTrainingState(ckpt).ok());
  const absl::StatusOr<TrainingSummary> refused = (*past)->TrainSft(data);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(ckpt + " is at step 3, past this run's 2 steps (sft.steps, or sft.epochs over 8 examples in "
                               "batches of 2)"));
  EXPECT_EQ((*past)->step(), 3);

  auto at_end = Trainer::Create(Load(ckpt), std::nullopt, comm.get(), o);
  ASSERT_TRUE(at_end.ok());
  ASSERT_TRUE((*at_end)->LoadTrainingState(ckpt).ok());
  const absl::StatusOr<TrainingSummary> nothing = (*at_end)->TrainSft(data);
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_EQ(nothing->steps_done, 0);
}

// A reference model of another vocabulary failed in the first step ("index out of range in self")
// or, larger, scored other token ids without a word.
TEST_F(TrainerModelTest, AReferenceOfAnotherVocabularyIsRefused) {
  auto comm = MakeSingleProcessCommunicator();
  LlamaModel policy = Load(PolicyDir());
  for (int64_t delta : {-3, 5}) {
    LlamaConfig config = policy->config;
    config.vocab_size += delta;
    auto trainer = Trainer::Create(Load(PolicyDir()), LlamaModel(config), comm.get(), Options(TrainingObjective::kDpo));
    EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument) << delta;
    EXPECT_THAT(std::string(trainer.status().message()),
                HasSubstr("the reference model's vocab_size (" + std::to_string(config.vocab_size) +
                          ") differs from the policy's (" + std::to_string(policy->config.vocab_size) + ")"));
  }
  EXPECT_TRUE(Trainer::Create(Load(PolicyDir()), Load(RefDir()), comm.get(), Options(TrainingObjective::kDpo)).ok());
}

// The dotted keys of every RunConfig field.
class KeyCollector : public ConfigVisitor {
 public:
  void Field(const std::string& k, std::string*, const std::string&) override { keys.insert(k); }
  void Field(const std::string& k, int64_t*, const std::string&) override { keys.insert(k); }
  void Field(const std::string& k, double*, const std::string&) override { keys.insert(k); }
  void Field(const std::string& k, bool*, const std::string&) override { keys.insert(k); }
  void Field(const std::string& k, std::vector<std::string>*, const std::string&) override { keys.insert(k); }
  std::set<std::string> keys;
};

TEST(TrainCommand, HelpNamesTheRealYamlKeys) {
  RunConfig config;
  KeyCollector collector;
  VisitRunConfig(&config, &collector);
  for (TrainingObjective objective : {TrainingObjective::kSft, TrainingObjective::kDpo}) {
    CLI::App app;
    RegisterTrainCommand(app, objective);
    const std::string section = objective == TrainingObjective::kSft ? "sft" : "dpo";
    const std::string help = app.get_subcommand(section)->help();
    EXPECT_THAT(help, ::testing::HasSubstr("(YAML " + section + ".micro_batch_size)"));
    int named = 0;  // "(YAML sft.lr)" and "...; YAML model.path"
    for (size_t at = help.find("YAML "); at != std::string::npos; at = help.find("YAML ", at + 1)) {
      const size_t begin = at + 5;
      const std::string key = help.substr(begin, help.find_first_of(") ;\n", begin) - begin);
      if (key.find('.') == std::string::npos) continue;  // "run YAML (flags override it)"
      EXPECT_TRUE(collector.keys.count(key)) << "help names '" << key << "', not a key of the run YAML";
      ++named;
    }
    EXPECT_GE(named, 12) << help;
  }
}

TEST(TrainCommandDeathTest, SftAndDpoWithoutOutFailBeforeLoadingAnything) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (TrainingObjective objective : {TrainingObjective::kSft, TrainingObjective::kDpo}) {
    CLI::App app;
    RegisterTrainCommand(app, objective);
    const std::string command = objective == TrainingObjective::kSft ? "sft" : "dpo";
    // The model does not exist: the error must come before it is loaded.
    EXPECT_EXIT(app.parse(command + " --model /nonexistent/model --data /nonexistent/data.jsonl", false),
                ::testing::ExitedWithCode(1), "--out is required")
        << command;
  }
}

// An --out that cannot take checkpoints (here a file that every system has: the death test's child
// runs the test again and exits without destructors, so a temporary file would be left behind) fails
// before the model is loaded, not after the whole training.
TEST(TrainCommandDeathTest, AnOutThatCannotTakeCheckpointsFailsBeforeLoadingAnything) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  CLI::App app;
  RegisterTrainCommand(app, TrainingObjective::kSft);
  EXPECT_EXIT(app.parse("sft --model /nonexistent/model --data /nonexistent/data.jsonl --communicator single "
                        "--out /etc/passwd",
                        false),
              ::testing::ExitedWithCode(1), "cannot create /etc/passwd/.srlm-shared-check-[0-9]+: Not a directory");
}

}  // namespace
}  // namespace srlm
