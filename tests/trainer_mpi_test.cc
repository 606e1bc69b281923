// End-to-end tests of `srlm-worker sft|dpo` as real processes, alone and under real mpirun:
// data parallelism (-np 2 and 3 equal -np 1 with the same global batch, also uneven), resume bit for
// bit, a checkpoint killed half-way is never loaded, NaN/Inf on one rank skips the step on all,
// bad data is reported with its line number, an --out that one rank does not share is refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "worker/model/checkpoint_io.h"
#include "worker/train/atomic_dir.h"
#include "worker/train/test_util.h"

namespace srlm {
namespace {

using ::srlm::testing::ReadFileText;
using ::srlm::testing::Shell;
using ::srlm::testing::TempDir;
using ::srlm::testing::WriteFileText;

TempDir* g_dir = nullptr;
int g_python_rc = -1;

std::string Worker() { return testing::BuildDir() + "/worker/srlm-worker"; }
std::string Model() { return *g_dir / "model"; }

std::string Mpirun(int ranks) {
  return ranks == 1 ? "" : "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " ";
}

// Runs a worker command (under mpirun when ranks > 1); returns the exit code, output in `log`.
int RunWorker(int ranks, const std::string& args, const std::string& log, const std::string& env = "") {
  return Shell(env + " " + Mpirun(ranks) + Worker() + " " + args + " >" + log + " 2>&1");
}

class TrainerProcessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_dir = new TempDir();
    g_python_rc = Shell(testing::VenvPython() + " " + testing::SourceDir() +
                        "/worker/train/testdata/train_reference.py make --seed-list 3,4 --out " + Model() + " >" +
                        (*g_dir / "python.log") + " 2>&1");
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> len(1, 6), id(3, 60);
    std::uniform_real_distribution<double> ref(-50.0, -10.0);
    auto ids = [&] {
      nlohmann::json a = nlohmann::json::array();
      for (int n = len(rng); n > 0; --n) a.push_back(id(rng));
      return a;
    };
    std::string pairs, sft;
    for (int i = 0; i < 11; ++i) {
      nlohmann::json p = ids(), c = ids(), r = ids();
      pairs += nlohmann::json{{"prompt_ids", p}, {"chosen_ids", c}, {"rejected_ids", r},
                              {"ref_chosen_logprob", ref(rng)}, {"ref_rejected_logprob", ref(rng)}}.dump() + "\n";
      sft += nlohmann::json{{"prompt_ids", p}, {"response_ids", c}}.dump() + "\n";
    }
    WriteFileText(*g_dir / "pairs.jsonl", pairs);
    WriteFileText(*g_dir / "sft.jsonl", sft);
  }
  static void TearDownTestSuite() {
    delete g_dir;
    g_dir = nullptr;
  }
  void SetUp() override { ASSERT_EQ(g_python_rc, 0) << ReadFileText(*g_dir / "python.log"); }
};

std::map<std::string, torch::Tensor> Weights(const std::string& dir) {
  std::map<std::string, torch::Tensor> out;
  absl::StatusOr<LlamaModel> m = LoadModel(dir, torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(m.ok()) << dir << ": " << m.status();
  if (!m.ok()) return out;
  for (const auto& item : (*m)->named_parameters()) out[item.key()] = item.value().detach().clone();
  return out;
}

// max |a - b| <= rel * max |b| for every tensor (rel 0: bit for bit).
void ExpectSameWeights(const std::string& a_dir, const std::string& b_dir, double rel) {
  auto a = Weights(a_dir), b = Weights(b_dir);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (const auto& [name, want] : b) {
    const torch::Tensor& got = a[name];
    if (rel == 0) {
      EXPECT_TRUE(torch::equal(got, want)) << name << " differs between " << a_dir << " and " << b_dir;
    } else {
      const double error = (got - want).abs().max().item<double>(), scale = want.abs().max().item<double>();
      EXPECT_LE(error, rel * scale) << name << ": " << a_dir << " vs " << b_dir << " max error " << error;
    }
  }
}

std::string DpoArgs(const std::string& out, int batch, int steps) {
  return "dpo --model " + Model() + " --data " + (*g_dir / "pairs.jsonl") + " --out " + out + " --steps " +
         std::to_string(steps) + " --batch-size " + std::to_string(batch) +
         " --micro-batch-size 2 --lr 5e-3 --lr-schedule cosine --min-lr 1e-4 --warmup-steps 1 --weight-decay 0.01"
         " --max-grad-norm 1.0 --beta 0.2 --dropout 0.1 --seed 9";
}

TEST_F(TrainerProcessTest, MpiRanksGiveTheSameParametersAsOneRank) {
  // Global batch 7 over 11 pairs: 7 + 4 per epoch, split 4+3 on 2 ranks, 3+2+2 / 2+1+1 on 3 ranks.
  // With dropout 0.1: its masks are keyed per example, so they do not depend on the split either.
  for (int ranks : {1, 2, 3}) {
    const std::string out = *g_dir / ("dp" + std::to_string(ranks));
    ASSERT_EQ(RunWorker(ranks, DpoArgs(out, 7, 5), out + ".log"), 0) << ReadFileText(out + ".log");
  }
  const std::string log2 = ReadFileText(*g_dir / "dp2.log");
  EXPECT_NE(log2.find("2 rank(s) over mpi"), std::string::npos) << log2;
  // One node: each rank's index on the node is its rank (it picks the GPU on a CUDA run).
  const std::string log3 = ReadFileText(*g_dir / "dp3.log");
  for (int rank : {0, 1, 2}) {
    const std::string line = "rank " + std::to_string(rank) + " (local " + std::to_string(rank) + ") of 3 on cpu";
    EXPECT_NE(log3.find(line), std::string::npos) << line << "\n" << log3;
  }
  EXPECT_NE(log2.find("step 5/5 loss"), std::string::npos) << log2;
  EXPECT_NE(log2.find("margin"), std::string::npos) << log2;
  ExpectSameWeights(CheckpointDir(*g_dir / "dp2", 5), CheckpointDir(*g_dir / "dp1", 5), 1e-5);
  ExpectSameWeights(CheckpointDir(*g_dir / "dp3", 5), CheckpointDir(*g_dir / "dp1", 5), 1e-5);
  // And training moved the weights at all.
  auto start = Weights(Model()), end = Weights(CheckpointDir(*g_dir / "dp1", 5));
  EXPECT_FALSE(torch::equal(start["lm_head.weight"], end["lm_head.weight"]));
}

// Checkpoints are written once each: every --save-every steps and where the call ends, also when
// --stop-after lands on a --save-every step (it was written twice, the second time replacing the
// first). An --out that holds a checkpoint needs --resume: a fresh run there mixed its checkpoints
// with the earlier run's, and a later --resume took up the other run's newest.
TEST_F(TrainerProcessTest, CheckpointsAreWrittenOnceAndAnOutInUseNeedsResume) {
  const std::string out = *g_dir / "once";
  const std::string args = "sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") + " --out " + out +
                           " --steps 6 --batch-size 4 --save-every 2";
  ASSERT_EQ(RunWorker(1, args + " --stop-after 2", out + ".1.log"), 0) << ReadFileText(out + ".1.log");
  const std::string first = ReadFileText(out + ".1.log"), written = "checkpoint written: " + CheckpointDir(out, 2);
  ASSERT_NE(first.find(written), std::string::npos) << first;
  EXPECT_EQ(first.find(written, first.find(written) + 1), std::string::npos) << "written twice\n" << first;

  EXPECT_EQ(RunWorker(1, args, out + ".2.log"), 1);
  const std::string refused = ReadFileText(out + ".2.log");
  EXPECT_NE(refused.find("already holds a checkpoint of a run (" + CheckpointDir(out, 2) + "): pass --resume"),
            std::string::npos)
      << refused;
  EXPECT_EQ(refused.find("step 1/"), std::string::npos) << refused;

  ASSERT_EQ(RunWorker(1, args + " --resume", out + ".3.log"), 0) << ReadFileText(out + ".3.log");
  const std::string resumed = ReadFileText(out + ".3.log");
  EXPECT_NE(resumed.find("at step 2"), std::string::npos) << resumed;
  EXPECT_NE(resumed.find("checkpoint written: " + CheckpointDir(out, 6)), std::string::npos) << resumed;
}

// SFT from a run configuration without --data trains on data.ift and data.eft, as the loop's SFT
// phase does (it read data.ift alone). The model has no tokenizer files (token-id data): its
// checkpoint is written all the same (it failed after the whole training: "no tokenizer files").
TEST_F(TrainerProcessTest, SftFromAConfigTrainsOnIftAndEftAndAModelWithoutTokenizerSaves) {
  const std::string bare = *g_dir / "bare_model", out = *g_dir / "from_config";
  ASSERT_EQ(Shell("mkdir -p " + bare + " && cp " + Model() + "/config.json " + Model() + "/model.safetensors " + bare),
            0);
  WriteFileText(*g_dir / "eft.jsonl", "{\"prompt_ids\": [5, 6], \"response_ids\": [7]}\n"
                                      "{\"prompt_ids\": [8], \"response_ids\": [9, 10]}\n"
                                      "{\"prompt_ids\": [11, 12], \"response_ids\": [13]}\n");
  WriteFileText(*g_dir / "sft_run.yaml", "model:\n  path: " + bare + "\ndata:\n  ift: " + (*g_dir / "sft.jsonl") +
                                             "\n  eft: " + (*g_dir / "eft.jsonl") + "\n");
  ASSERT_EQ(RunWorker(1, "sft --config " + (*g_dir / "sft_run.yaml") + " --out " + out + " --steps 2 --batch-size 4",
                      out + ".log"),
            0)
      << ReadFileText(out + ".log");
  const std::string log = ReadFileText(out + ".log");
  EXPECT_NE(log.find("sft: 14 examples"), std::string::npos) << log;  // 11 IFT + 3 EFT
  EXPECT_FALSE(Weights(CheckpointDir(out, 2)).empty());  // written whole: it loads
}

// Ranks that load different weights (a file changed between two loads, say) still train rank 0's:
// the trainer broadcasts them. In bfloat16 the optimizer's float32 master copy was taken before that
// broadcast, so from the first step each rank trained its own weights again, silently.
TEST_F(TrainerProcessTest, EveryRankTrainsRankZerosWeightsAlsoInBfloat16) {
  const std::string args = " --data " + (*g_dir / "sft.jsonl") +
                           " --steps 3 --batch-size 4 --lr 1e-2 --dropout 0 --dtype bfloat16 --seed 5 --out ";
  const std::string same = *g_dir / "bf16_same", mixed = *g_dir / "bf16_mixed";
  ASSERT_EQ(RunWorker(2, "sft --model " + Model() + args + same, same + ".log"), 0) << ReadFileText(same + ".log");
  // Rank 1 loads another model (the second one the test made) than rank 0.
  const std::string rank0 = Worker() + " sft --model " + Model() + args + mixed;
  const std::string rank1 = Worker() + " sft --model " + Model() + "_1" + args + mixed;
  ASSERT_EQ(Shell("mpirun --allow-run-as-root --oversubscribe -np 1 " + rank0 + " : -np 1 " + rank1 + " >" + mixed +
                  ".log 2>&1"),
            0)
      << ReadFileText(mixed + ".log");
  ExpectSameWeights(CheckpointDir(mixed, 3), CheckpointDir(same, 3), 0);
}

std::string SftArgs(const std::string& out) {
  return "sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") + " --out " + out +
         " --steps 8 --batch-size 4 --micro-batch-size 1 --lr 3e-3 --lr-schedule linear --min-lr 1e-4"
         " --warmup-steps 2 --weight-decay 0.01 --max-grad-norm 0.5 --dropout 0.1 --seed 5";
}

TEST_F(TrainerProcessTest, ResumeUnderMpirunIsBitForBitAndAKilledCheckpointIsNeverLoaded) {
  const std::string straight = *g_dir / "straight", resumed = *g_dir / "resumed", killed = *g_dir / "killed";
  ASSERT_EQ(RunWorker(2, SftArgs(straight), straight + ".log"), 0) << ReadFileText(straight + ".log");

  // 4 steps, stop, resume, 4 more.
  ASSERT_EQ(RunWorker(2, SftArgs(resumed) + " --stop-after 4", resumed + ".1.log"), 0) << ReadFileText(resumed + ".1.log");
  ASSERT_EQ(RunWorker(2, SftArgs(resumed) + " --resume", resumed + ".2.log"), 0) << ReadFileText(resumed + ".2.log");
  EXPECT_NE(ReadFileText(resumed + ".2.log").find("at step 4"), std::string::npos) << ReadFileText(resumed + ".2.log");
  ExpectSameWeights(CheckpointDir(resumed, 8), CheckpointDir(straight, 8), 0);

  // Killed (SIGKILL) while writing checkpoint-4, after its weights were written.
  EXPECT_NE(RunWorker(2, SftArgs(killed) + " --save-every 2", killed + ".1.log", "SRLM_TEST_CRASH_DURING_CHECKPOINT=4"), 0);
  auto latest = FindLatestCheckpointStep(killed, "trainer_state.json");
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value()) << ReadFileText(killed + ".1.log");
  EXPECT_EQ(**latest, 2);
  struct stat st;
  EXPECT_NE(::stat(CheckpointDir(killed, 4).c_str(), &st), 0);
  EXPECT_EQ(::stat((killed + "/.checkpoint-4.tmp-").c_str(), &st), -1);  // named with the pid; listed below
  const int leftovers = Shell("ls -a " + killed + " | grep -q '^.checkpoint-4.tmp-'");
  EXPECT_EQ(leftovers, 0) << "the half-written temporary should be there, under its temporary name";
  ASSERT_EQ(RunWorker(2, SftArgs(killed) + " --save-every 2 --resume", killed + ".2.log"), 0) << ReadFileText(killed + ".2.log");
  EXPECT_NE(ReadFileText(killed + ".2.log").find("checkpoint-2 at step 2"), std::string::npos) << ReadFileText(killed + ".2.log");
  ExpectSameWeights(CheckpointDir(killed, 8), CheckpointDir(straight, 8), 0);
}

TEST_F(TrainerProcessTest, NonFiniteGradientOnOneRankSkipsTheStepOnAll) {
  // Pair 0's reference log-prob is near the float32 limit (-1e39, past it, is refused with the data):
  // under IPO its squared margin overflows, and its gradient is infinite.
  std::string pairs = "{\"prompt_ids\": [5, 6], \"chosen_ids\": [7], \"rejected_ids\": [8], "
                      "\"ref_chosen_logprob\": -3e38, \"ref_rejected_logprob\": -3}\n";
  for (int i = 0; i < 3; ++i) {
    pairs += "{\"prompt_ids\": [9, " + std::to_string(10 + i) + "], \"chosen_ids\": [11], \"rejected_ids\": [12], "
             "\"ref_chosen_logprob\": -4, \"ref_rejected_logprob\": -3}\n";
  }
  WriteFileText(*g_dir / "poisoned.jsonl", pairs);
  const std::string args = " --model " + Model() + " --data " + (*g_dir / "poisoned.jsonl") +
                           " --steps 4 --batch-size 2 --micro-batch-size 1 --lr 1e-4 --loss ipo --dropout 0 --out ";
  for (int ranks : {1, 2}) {
    const std::string out = *g_dir / ("nan" + std::to_string(ranks));
    ASSERT_EQ(RunWorker(ranks, "dpo" + args + out, out + ".log"), 0) << ReadFileText(out + ".log");
    const std::string log = ReadFileText(out + ".log");
    // 4 steps = 2 epochs of 2 batches: the poisoned pair is in exactly 2 of them.
    EXPECT_NE(log.find("done: step 4, 2 skipped step(s)"), std::string::npos) << log;
    EXPECT_NE(log.find("SKIPPED(non-finite)"), std::string::npos) << log;
  }
  for (const auto& [name, w] : Weights(CheckpointDir(*g_dir / "nan2", 4))) {
    EXPECT_TRUE(w.isfinite().all().item<bool>()) << name;
  }
  // Adam normalises each update, so a parameter whose gradient is ~0 moves by up to lr in a direction
  // set by rounding (summation order differs between 1 and 2 ranks): ~3e-5 relative here. A step
  // skipped on one world size but not the other would differ by ~lr/scale = 2e-4.
  ExpectSameWeights(CheckpointDir(*g_dir / "nan2", 4), CheckpointDir(*g_dir / "nan1", 4), 1e-4);
}

TEST_F(TrainerProcessTest, BadDataIsReportedWithItsLineNumberAndNothingRuns) {
  std::string too_long = "{\"prompt_ids\": [";
  for (int i = 0; i < 70; ++i) too_long += (i ? ", " : "") + std::to_string(3);
  too_long += "], \"response_ids\": [3]}\n";
  WriteFileText(*g_dir / "bad.jsonl",
                "{\"prompt_ids\": [1, 2], \"response_ids\": [3]}\n"
                "{\"prompt_ids\": [1, 2], \"response_ids\": []}\n"
                "{\"prompt_ids\": [1, 2]}\n" + too_long + "{\"prompt_ids\": [], \"response_ids\": [3, 4]}\n");
  const std::string out = *g_dir / "bad";
  EXPECT_EQ(RunWorker(1, "sft --model " + Model() + " --data " + (*g_dir / "bad.jsonl") + " --out " + out, out + ".log"), 1);
  const std::string log = ReadFileText(out + ".log");
  EXPECT_NE(log.find("bad.jsonl:2: 'response' is empty"), std::string::npos) << log;
  EXPECT_NE(log.find("bad.jsonl:3: missing key 'response'"), std::string::npos) << log;
  EXPECT_NE(log.find("bad.jsonl:4: prompt + response is 71 tokens, over the limit of 64"), std::string::npos) << log;
  EXPECT_NE(log.find("bad.jsonl:5: the prompt is empty"), std::string::npos) << log;
  auto latest = FindLatestCheckpointStep(out, "trainer_state.json");
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());
  EXPECT_EQ(RunWorker(1, "sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") + " --lr-schedule step", out + ".log"), 1);
  EXPECT_NE(ReadFileText(out + ".log").find("lr_schedule"), std::string::npos) << ReadFileText(out + ".log");
}

// One rank fails alone while the other goes on into a collective: the job must end with an error.
// Before, the failing rank's exit ran MPI_Finalize, which waited for the other rank while that one
// waited in a broadcast for it: the job hung with no exit code.
TEST_F(TrainerProcessTest, OneFailingRankEndsTheWholeJob) {
  const std::string out = *g_dir / "one_fails";
  const int rc = RunWorker(2, "sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") + " --out " + out +
                                  " --steps 2 --batch-size 4",
                           out + ".log", "SRLM_TEST_FAIL_RANK=1 timeout 120");
  const std::string log = ReadFileText(out + ".log");
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, 124) << "the job hung until timeout killed it\n" << log;
  EXPECT_NE(log.find("SRLM_TEST_FAIL_RANK: this rank fails on purpose"), std::string::npos) << log;
}

// One rank hangs (a test hook: as on a hung file system) while the other waits for it in a
// collective: without the watchdog the job hung for ever. With --stall-seconds 3 the hung rank ends
// the whole job with exit code 75, saying where it stuck.
TEST_F(TrainerProcessTest, AStalledRankEndsTheWholeJobWith75) {
  const std::string out = *g_dir / "one_stalls";
  const int rc = RunWorker(2, "sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") + " --out " + out +
                                  " --steps 2 --batch-size 4 --stall-seconds 3",
                           out + ".log", "SRLM_TEST_STALL_RANK=1 timeout 120");
  const std::string log = ReadFileText(out + ".log");
  EXPECT_EQ(rc, 75) << log;
  EXPECT_NE(log.find("SRLM_TEST_STALL_RANK: this rank's model load hangs on purpose"), std::string::npos) << log;
  EXPECT_NE(log.find("worker stalled: no progress for"), std::string::npos) << log;
  EXPECT_NE(log.find("while loading model"), std::string::npos) << log;
}

// --out on a path local to each node: rank 1 runs in its own mount namespace with an empty tmpfs
// over the folder, as on a second host. The job ends before any training, every rank naming rank 1;
// before, rank 1 could not resume from (or, in the loop, load) what rank 0 wrote.
TEST_F(TrainerProcessTest, AnOutThatOneRankDoesNotSeeEndsTheJobBeforeTraining) {
  ASSERT_EQ(Shell("unshare --mount true"), 0) << "this test needs a mount namespace (root or CAP_SYS_ADMIN)";
  const std::string local = *g_dir / "node_local";
  ASSERT_EQ(Shell("mkdir -p " + local), 0);
  const std::string out = local + "/out", log_path = *g_dir / "node_local.log";
  const std::string command = Worker() + " sft --model " + Model() + " --data " + (*g_dir / "sft.jsonl") +
                              " --out " + out + " --steps 2 --batch-size 4";
  const std::string per_rank = *g_dir / "node_local.sh";
  WriteFileText(per_rank, "if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then\n"
                          "  exec unshare --mount sh -c 'mount -t tmpfs none " + local + " && exec " + command + "'\n"
                          "fi\n"
                          "exec " + command + "\n");
  const int rc = Shell("timeout 120 " + Mpirun(2) + "sh " + per_rank + " >" + log_path + " 2>&1");
  const std::string log = ReadFileText(log_path);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, 124) << "the job hung until timeout killed it\n" << log;
  EXPECT_NE(log.find("rank(s) 1 of 2 cannot see " + out), std::string::npos) << log;
  EXPECT_NE(log.find("--out must be a folder that every rank's host shares"), std::string::npos) << log;
  EXPECT_EQ(log.find("step 1/"), std::string::npos) << "training started\n" << log;
  auto latest = FindLatestCheckpointStep(out, "trainer_state.json");
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());
}

}  // namespace
}  // namespace srlm
