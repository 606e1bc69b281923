// Trainer tests on a tiny Hugging Face Llama: DPO/SFT loss and gradients against the independent
// Python implementation (testdata/train_reference.py, float64 transformers), batch slicing,
// learning on toy sets, and in-process checkpoint/resume bit for bit. TrainCommand* test the
// `srlm-worker sft|dpo` command line (worker/train/train_command.cc).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <map>
#include <random>
#include <set>

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
  EXPECT_EQ(TotalSteps(TrainConfig{0, 2, batch}, n), 10);  // 2 epochs of ceil(23/5)
  EXPECT_EQ(TotalSteps(TrainConfig{7, 2, batch}, n), 7);
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
// or 1 each (masks drawn per micro-batch, as before, made these differ by far more); and the dropout
// did act (the weights differ from a run without it).
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
    EXPECT_LE((split.at(name) - want).abs().max().item<double>(), 1e-5 * scale) << name;
    EXPECT_LE((singles.at(name) - want).abs().max().item<double>(), 1e-5 * scale) << name;
    moved_by_dropout = std::max(moved_by_dropout, (no_dropout.at(name) - want).abs().max().item<double>() / scale);
  }
  EXPECT_GT(moved_by_dropout, 1e-3);
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
