// Tests of the worker's phase-following loop against an in-memory coordinator for one rank that
// walks SFT -> PROMPTS -> GENERATE -> TRAIN -> DONE, and a backend that records what it was asked.
#include "worker/loop/worker_loop.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/run_config.h"
#include "common/testing/temp_dir.h"
#include "worker/loop/retrying_link.h"

namespace srlm {
namespace {

// This binary's scratch folder for data files and checkpoint roots, removed when the tests end.
const testing_util::TempDir& TestDir() {
  static const testing_util::TempDir dir("worker_loop_test_");
  return dir;
}

class EchoModel : public LoopModel {
 public:
  explicit EchoModel(std::string dir) : dir_(std::move(dir)) {}
  // Chat-formats a user message as "[...]" (raw requests are used as they are).
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig&,
                                                     const std::vector<uint64_t>& seeds) override {
    std::vector<std::string> prompts;
    for (const std::string& t : texts) prompts.push_back(format == PromptFormat::kChat ? "[" + t + "]" : t);
    std::vector<GeneratedText> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      GeneratedText g;
      if (prompts[i].rfind("Below are example tasks.", 0) == 0) {
        g.text = "Spell the word " + std::to_string(seeds[i] % 1000);
      } else if (prompts[i].find("JUDGE") != std::string::npos) {
        // The judge gives the candidate's own number modulo 6 as its score.
        const size_t at = prompts[i].find("ANSWER=");
        g.text = "Score: " + std::to_string(std::stoul(prompts[i].substr(at + 7)) % 6);
      } else {
        g.text = std::to_string(seeds[i] % 97);
      }
      g.num_tokens = 1;
      out.push_back(g);
    }
    return out;
  }
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string&, const std::vector<std::string>& responses) override {
    return std::vector<ScoredResponse>(responses.size(), ScoredResponse{-1.0, 2});
  }
  std::string dir_;
};

class RecordingBackend : public WorkerBackend {
 public:
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& dir) override {
    loaded.push_back(dir);
    return std::make_unique<EchoModel>(dir);
  }
  absl::Status TrainSft(const RunConfig&, const std::string& model_dir, const std::string& out_dir,
                        const TrainStepReporter& report) override {
    trained.push_back("sft " + model_dir + " -> " + out_dir);
    report({1, 1, 2.5, 10, {}});
    return absl::OkStatus();
  }
  absl::Status TrainDpo(const RunConfig& config, const std::string& model_dir,
                        const std::vector<v1::TrainingPair>& pairs, int64_t total,
                        const std::string& out_dir, const TrainStepReporter& report) override {
    dpo_seeds.push_back(config.dpo.train.seed);
    trained.push_back("dpo " + model_dir + " -> " + out_dir + " pairs " + std::to_string(pairs.size()) +
                      "/" + std::to_string(total));
    dpo_pairs = pairs;
    report({1, 1, 0.69, 10, {{"reward_accuracy", 0.5}}});
    return absl::OkStatus();
  }
  std::vector<std::string> loaded, trained;
  std::vector<v1::TrainingPair> dpo_pairs;
  std::vector<int64_t> dpo_seeds;  // config.dpo.train.seed of each DPO
};

// One rank; phases advance as the worker completes them.
class FakeCoordinator : public CoordinatorLink {
 public:
  explicit FakeCoordinator(std::string yaml) : yaml_(std::move(yaml)) {}
  // Starts the run at `iteration` in PROMPTS with M_t = `model_dir` (a run that committed already).
  void StartAt(int64_t iteration, const std::string& model_dir) {
    iteration_ = iteration;
    phase_ = v1::PHASE_PROMPTS;
    model_dir_ = model_dir;
  }
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    log.push_back("register rank " + std::to_string(r.rank()));
    v1::RegisterWorkerResponse out;
    out.set_worker_id("w1");
    out.set_run_id(run_id);
    out.set_run_config_yaml(yaml_);
    out.set_model_dir(registration_model_dir);
    out.set_heartbeat_seconds(0.05);
    return out;
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++heartbeats;
    activities.push_back({r.stats().activity(), r.stats().seconds_since_progress()});
    heartbeat_leases.push_back(r.lists_every_lease() ? absl::StrJoin(r.lease_ids(), ",") : "(not listed)");
    return v1::HeartbeatResponse();
  }
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    v1::LeaseShardResponse out;
    out.set_iteration(iteration_);
    out.set_phase(phase_);
    out.set_model_dir(model_dir_);
    if (stop_during_lease != nullptr && !r.stopping()) {  // a stop comes while the call retries in vain
      *stop_during_lease = true;
      return absl::UnavailableError("coordinator away");
    }
    if (r.stopping() || stop_in_phase == phase_) {  // as the coordinator: leave (see StopWork)
      out.mutable_stop()->set_reason(r.stopping() ? "stop requested" : "rank 1 of this launch has stopped");
      out.mutable_stop()->set_end_job(r.stopping() && others_train);
      log.push_back(r.stopping() ? "lease stopping" : "lease (told to stop)");
      return out;
    }
    if (waits_before_generate > 0 && phase_ == v1::PHASE_GENERATE) {  // other ranks still busy
      --waits_before_generate;
      out.mutable_wait()->set_wait_ms(100);
      return out;
    }
    if (phase_ == v1::PHASE_SFT || phase_ == v1::PHASE_TRAIN) {
      out.mutable_train()->set_iteration(iteration_);
      out.mutable_train()->set_phase(phase_);
      out.mutable_train()->set_model_dir(model_dir_);
      out.mutable_train()->set_num_pairs(static_cast<int64_t>(pairs_.size()));
      if (phase_ == v1::PHASE_TRAIN) out.mutable_train()->set_written_checkpoint_dir(written_dpo_dir);
    } else if (phase_ == v1::PHASE_PROMPTS) {
      out.mutable_lease()->set_lease_id("L-prompts");
      out.mutable_prompts()->set_num_prompts(3);
      out.mutable_prompts()->set_seed(5);
    } else if (phase_ == v1::PHASE_GENERATE) {
      out.mutable_lease()->set_lease_id("L-generate");
      out.mutable_generate()->set_seed(6);
      for (size_t i = 0; i < pool_.size(); ++i) {
        auto* p = out.mutable_generate()->add_prompts();
        p->set_prompt_id(static_cast<int64_t>(i));
        p->set_text(pool_[i]);
      }
    } else {
      out.mutable_done()->set_final_model_dir(model_dir_);
    }
    log.push_back(std::string("lease ") + v1::Phase_Name(phase_));
    return out;
  }
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    log.push_back("submit " + r.lease_id());
    if (submits_too_large) return absl::ResourceExhaustedError("Received message larger than max (12788 vs. 8192)");
    if (refuse_submits > 0) {  // as the coordinator answers a lease that expired and was handed on
      --refuse_submits;
      return absl::FailedPreconditionError("lease " + r.lease_id() + " expired and its shard was handed on");
    }
    v1::SubmitShardResponse out;
    if (r.has_prompts()) {
      for (const auto& p : r.prompts().prompts()) pool_.push_back(p);
      phase_ = v1::PHASE_GENERATE;
    } else {
      for (const auto& res : r.generate().results()) {
        if (!res.has_pair()) continue;
        v1::TrainingPair tp;
        tp.set_prompt(pool_[res.prompt_id()]);
        tp.set_chosen(res.pair().chosen());
        tp.set_rejected(res.pair().rejected());
        pairs_.push_back(tp);
      }
      phase_ = v1::PHASE_TRAIN;
    }
    return out;
  }
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    log.push_back("step " + std::to_string(r.step()) + "/" + std::to_string(r.total_steps()));
    return v1::ReportTrainStepResponse();
  }
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    log.push_back("checkpoint " + std::to_string(r.iteration()) + " " + r.checkpoint_dir());
    evaluations.push_back({r.eval_correct(), r.eval_total()});
    model_dir_ = r.checkpoint_dir();
    ++iteration_;
    phase_ = iteration_ > 1 ? v1::PHASE_DONE : v1::PHASE_PROMPTS;
    v1::ReportCheckpointResponse out;
    out.set_committed(true);
    out.set_model_dir(model_dir_);
    return out;
  }
  absl::Status StreamPairs(const v1::StreamPairsRequest& r,
                           const std::function<bool(const v1::TrainingPair&)>& on_pair) override {
    std::vector<v1::TrainingPair> pairs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      log.push_back("stream " + std::to_string(r.rank()) + "/" + std::to_string(r.world_size()));
      pairs = pairs_;
    }
    const size_t sent = pairs.size() - std::min<size_t>(pairs.size(), drop_streamed_pairs);
    for (size_t i = 0; i < sent; ++i) {
      pairs[i].set_position(static_cast<int64_t>(i));
      pairs[i].set_total(static_cast<int64_t>(pairs.size()));
      if (!on_pair(pairs[i])) break;
    }
    return absl::OkStatus();
  }
  std::vector<std::string> log;
  int heartbeats = 0;
  // What each heartbeat said the worker was doing, and how long since it made progress.
  std::vector<std::pair<std::string, double>> Activities() {
    std::lock_guard<std::mutex> lock(mu_);
    return activities;
  }
  std::vector<std::string> HeartbeatLeases() {
    std::lock_guard<std::mutex> lock(mu_);
    return heartbeat_leases;
  }
  std::vector<std::pair<std::string, double>> activities;
  std::vector<std::string> heartbeat_leases;  // each heartbeat's lease_ids, joined by ","
  int refuse_submits = 0;  // the next this many submissions are refused as handed on
  bool submits_too_large = false;  // every submission is over the server's message limit
  int waits_before_generate = 0;  // GENERATE answers "wait" this many times first
  size_t drop_streamed_pairs = 0;  // StreamPairs ends cleanly this many pairs short
  bool others_train = false;  // a stopping rank is told to end the job: others are training
  v1::Phase stop_in_phase = v1::PHASE_UNSPECIFIED;  // in this phase every lease is answered "stop"
  std::atomic<bool>* stop_during_lease = nullptr;  // set by a LeaseShard that then fails UNAVAILABLE
  std::string written_dpo_dir;    // TRAIN says another rank already reported this checkpoint
  std::string registration_model_dir = "/m0";  // the M_t RegisterWorker names
  std::string run_id;  // "": the worker claims no checkpoint root (the tests' /ckpt is never made)
  std::vector<std::pair<int64_t, int64_t>> evaluations;  // (correct, total) of each checkpoint report

 private:
  std::mutex mu_;
  std::string yaml_;
  int64_t iteration_ = 0;
  v1::Phase phase_ = v1::PHASE_SFT;
  std::string model_dir_ = "/m0";
  std::vector<std::string> pool_;
  std::vector<v1::TrainingPair> pairs_;
};

// A run configuration whose IFT data is `ift_lines` and whose judge template is EchoModel's
// "JUDGE ... ANSWER=" form, both written to the test's temporary directory.
RunConfig LoopConfig(const std::string& ift_lines) {
  const std::string dir = TestDir().path();
  std::ofstream(dir + "/ift.jsonl") << ift_lines;
  std::ofstream(dir + "/judge.txt") << "JUDGE {prompt} ANSWER={response}";
  RunConfig config;
  config.data.ift = dir + "/ift.jsonl";
  config.judge.template_file = dir + "/judge.txt";
  return config;
}

// Rank 0 of 1 against `coordinator`, checkpoints under /ckpt.
absl::StatusOr<WorkerLoopSummary> RunOneRank(FakeCoordinator& coordinator, RecordingBackend& backend) {
  WorkerLoopOptions options;
  options.checkpoint_root = "/ckpt";
  return RunWorkerLoop(coordinator, backend, WorkerIdentity{"host", 42, 0, 1, "cpu"}, options);
}

// Two IFT lines, two judge samples of four candidates: every phase has work, and pairs come out.
std::string TwoIftLinesConfigYaml() {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n"
                                "{\"prompt\": \"Spell the word 2\", \"response\": \"two\"}\n");
  config.judge.samples = 2;
  config.generate.candidates = 4;
  config.prompts.shots = 2;
  return RunConfigToYaml(config);
}

TEST(WorkerLoopTest, FollowsEveryPhaseToDone) {
  FakeCoordinator coordinator(TwoIftLinesConfigYaml());
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  EXPECT_EQ(summary->prompts_shards, 1);
  EXPECT_EQ(summary->generate_shards, 1);
  EXPECT_EQ(summary->trainings, 2);

  const std::vector<std::string> expected_log = {
      "register rank 0",   "lease PHASE_SFT",        "step 1/1",
      "checkpoint 0 /ckpt/iter-1", "lease PHASE_PROMPTS", "submit L-prompts",
      "lease PHASE_GENERATE", "submit L-generate", "lease PHASE_TRAIN",
      "stream 0/1",        "step 1/1",               "checkpoint 1 /ckpt/iter-2",
      "lease PHASE_DONE"};
  EXPECT_EQ(coordinator.log, expected_log);
  // Self-instruct and generation ran on M_1 (the SFT checkpoint), DPO started from M_1.
  ASSERT_FALSE(backend.loaded.empty());
  for (const auto& d : backend.loaded) EXPECT_EQ(d, "/ckpt/iter-1");
  ASSERT_EQ(backend.trained.size(), 2u);
  EXPECT_EQ(backend.trained[0], "sft /m0 -> /ckpt/iter-1");
  EXPECT_EQ(backend.trained[1].rfind("dpo /ckpt/iter-1 -> /ckpt/iter-2 pairs ", 0), 0u) << backend.trained[1];
  // Candidates are "<n>" and the judge scores n % 6: pairs exist, chosen beats rejected.
  EXPECT_GT(backend.dpo_pairs.size(), 0u);
  for (const auto& p : backend.dpo_pairs) {
    EXPECT_GT(std::stoi(p.chosen()) % 6, std::stoi(p.rejected()) % 6);
  }
  EXPECT_EQ(summary->pairs_submitted, static_cast<int64_t>(backend.dpo_pairs.size()));
}

// A pair stream that ends cleanly but short (or with a pair of another rank's slice) is an error:
// the rank does not train with empty examples in the missing places.
TEST(WorkerLoopTest, AShortPairStreamIsAnErrorNotTrainedOn) {
  FakeCoordinator coordinator(TwoIftLinesConfigYaml());
  coordinator.drop_streamed_pairs = 1;
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_FALSE(summary.ok());
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss) << summary.status();
  EXPECT_NE(summary.status().message().find("iteration 1 StreamPairs: received "), std::string::npos)
      << summary.status();
  ASSERT_EQ(backend.trained.size(), 1u);  // the SFT only
  EXPECT_EQ(backend.trained[0], "sft /m0 -> /ckpt/iter-1");
}

// A result the coordinator refuses as no longer wanted (the lease was handed on) is dropped and the
// worker leases again; before, the rank failed, and under mpirun the whole job with it.
TEST(WorkerLoopTest, RefusedSubmissionIsDroppedAndTheWorkerGoesOn) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  FakeCoordinator coordinator(RunConfigToYaml(config));
  coordinator.refuse_submits = 1;
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  EXPECT_EQ(summary->shards_discarded, 1);
  EXPECT_EQ(summary->prompts_shards, 1);
  const std::vector<std::string> prompts_part = {"lease PHASE_PROMPTS", "submit L-prompts", "lease PHASE_PROMPTS",
                                                 "submit L-prompts", "lease PHASE_GENERATE"};
  auto at = std::search(coordinator.log.begin(), coordinator.log.end(), prompts_part.begin(), prompts_part.end());
  EXPECT_NE(at, coordinator.log.end()) << ::testing::PrintToString(coordinator.log);
}

// A result over the coordinator's message limit fails the rank, and says which key to change.
TEST(WorkerLoopTest, AResultOverTheMessageLimitNamesTheKey) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  FakeCoordinator coordinator(RunConfigToYaml(config));
  coordinator.submits_too_large = true;
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kResourceExhausted) << summary.status();
  EXPECT_NE(summary.status().message().find("the result of L-prompts is "), std::string::npos) << summary.status();
  EXPECT_NE(summary.status().message().find("coordinator.max_message_bytes is 67108864: raise it"), std::string::npos)
      << summary.status();
}

// A model whose first sampling call hangs until `release` is set (a stuck GPU kernel, say).
class HangingModel : public EchoModel {
 public:
  HangingModel(std::string dir, std::atomic<bool>* release) : EchoModel(std::move(dir)), release_(release) {}
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override {
    while (!release_->load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return EchoModel::Generate(texts, format, sampling, seeds);
  }

 private:
  std::atomic<bool>* release_;
};

class HangingBackend : public RecordingBackend {
 public:
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& dir) override {
    loaded.push_back(dir);
    return std::make_unique<HangingModel>(dir, &release);
  }
  std::atomic<bool> release{false};
};

// Work that hangs trips the watchdog, which names the shard and what it was doing; here the handler
// releases the hang (srlm-worker run's ends the job instead) and the run goes on to the end.
TEST(WorkerLoopTest, HungWorkTripsTheWatchdogWithTheShardItHangsIn) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  FakeCoordinator coordinator(RunConfigToYaml(config));
  HangingBackend backend;
  std::mutex mu;
  std::vector<std::string> stalls;
  WorkerLoopOptions options;
  options.checkpoint_root = "/ckpt";
  options.stall_seconds = 0.3;
  options.on_stall = [&](const std::string& description) {
    {
      std::lock_guard<std::mutex> lock(mu);
      stalls.push_back(description);
    }
    backend.release = true;
  };
  auto summary = RunWorkerLoop(coordinator, backend, WorkerIdentity{"host", 42, 0, 1, "cpu"}, options);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  // Heartbeats (every 50 ms here) told the coordinator where the worker hung, and for how long,
  // and listed the lease it worked on as its only one (none while it asked for work).
  double longest = 0;
  const std::vector<std::pair<std::string, double>> activities = coordinator.Activities();
  const std::vector<std::string> leases = coordinator.HeartbeatLeases();
  ASSERT_EQ(activities.size(), leases.size());
  for (size_t i = 0; i < activities.size(); ++i) {
    const auto& [activity, seconds] = activities[i];
    if (activity == "PROMPTS shard L-prompts: sampling 3 sequence(s)") {
      longest = std::max(longest, seconds);
      EXPECT_EQ(leases[i], "L-prompts");
    }
    if (absl::StartsWith(activity, "asking the coordinator for work")) {
      EXPECT_EQ(leases[i], "") << i;
    }
  }
  EXPECT_GE(longest, 0.2);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(stalls.size(), 1u);  // once per worker, however long the rest takes
  EXPECT_NE(stalls[0].find("while PROMPTS shard L-prompts: sampling 3 sequence(s)"), std::string::npos)
      << stalls[0];
}

// A whole run whose units of work are each quicker than the window never trips it, also while the
// coordinator tells it to wait (other ranks busy) for three windows: every answer is progress.
TEST(WorkerLoopTest, ARunThatMovesNeverTripsTheWatchdog) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  FakeCoordinator coordinator(RunConfigToYaml(config));
  coordinator.waits_before_generate = 15;  // 15 x 100 ms
  RecordingBackend backend;
  std::atomic<int> stalls{0};
  WorkerLoopOptions options;
  options.checkpoint_root = "/ckpt";
  options.stall_seconds = 0.5;
  options.on_stall = [&](const std::string&) { ++stalls; };
  auto summary = RunWorkerLoop(coordinator, backend, WorkerIdentity{"host", 42, 0, 1, "cpu"}, options);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  EXPECT_EQ(stalls.load(), 0);
}

// With data.eval, every checkpoint report carries the held-out evaluation of the model it names:
// greedy answers (EchoModel answers a plain prompt with its seed, here the line's index) compared
// with the known answers after trimming white space.
TEST(WorkerLoopTest, CheckpointReportsCarryTheHeldOutEvaluation) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  config.data.eval = TestDir() / "eval.jsonl";
  std::ofstream(config.data.eval) << "{\"prompt\": \"q0\", \"answer\": \"0\"}\n"
                                     "{\"prompt\": \"q1\", \"answer\": \"7\"}\n"
                                     "\n"
                                     "{\"prompt\": \"q2\", \"answer\": \" 2 \"}\n";
  FakeCoordinator coordinator(RunConfigToYaml(config));
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  const std::vector<std::pair<int64_t, int64_t>> want = {{2, 3}, {2, 3}};  // M_1 after SFT, M_2 after DPO
  EXPECT_EQ(coordinator.evaluations, want);
  // Each evaluation loaded the model just trained, before its report, and PROMPTS of the next
  // iteration reused it: M_1 after SFT, M_2 after DPO, nothing else.
  EXPECT_EQ(backend.loaded, (std::vector<std::string>{"/ckpt/iter-1", "/ckpt/iter-2"}));

  // An empty answer (it would match an empty output) and a line without one are refused at
  // registration, with the line.
  std::ofstream(config.data.eval, std::ios::trunc) << "{\"prompt\": \"q0\", \"answer\": \" \"}\n";
  FakeCoordinator empty(RunConfigToYaml(config));
  RecordingBackend backend3;
  auto refused_empty = RunOneRank(empty, backend3);
  ASSERT_FALSE(refused_empty.ok());
  EXPECT_NE(refused_empty.status().message().find("eval.jsonl:1: 'answer' is empty"), std::string::npos)
      << refused_empty.status();
  std::ofstream(config.data.eval, std::ios::trunc) << "{\"prompt\": \"q0\", \"answer\": \"0\"}\n{\"prompt\": \"q1\"}\n";
  FakeCoordinator refused(RunConfigToYaml(config));
  RecordingBackend backend2;
  auto failed = RunOneRank(refused, backend2);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("eval.jsonl:2: no string 'answer'"), std::string::npos) << failed.status();
  // Errors of the file itself name the data.* key and the OS's reason.
  config.data.eval = TestDir() / "no-such-eval.jsonl";
  FakeCoordinator missing(RunConfigToYaml(config));
  RecordingBackend backend4;
  auto not_found = RunOneRank(missing, backend4);
  ASSERT_FALSE(not_found.ok());
  EXPECT_EQ(not_found.status().code(), absl::StatusCode::kNotFound) << not_found.status();
  EXPECT_NE(not_found.status().message().find("data.eval: cannot open " + config.data.eval), std::string::npos)
      << not_found.status();
}

// A backend on which the model `dir` fails to load with `status`.
class ModelFailsToLoadBackend : public RecordingBackend {
 public:
  ModelFailsToLoadBackend(std::string dir, absl::Status status) : dir_(std::move(dir)), status_(std::move(status)) {}
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& dir) override {
    if (dir == dir_) return status_;
    return RecordingBackend::LoadModel(dir);
  }

 private:
  const std::string dir_;
  const absl::Status status_;
};

// An evaluation that fails (here the last model does not load) is reported as none and the run
// still commits: it must not stop a run that would fail the same way on every relaunch.
TEST(WorkerLoopTest, AFailedEvaluationIsReportedAsNone) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  config.data.eval = TestDir() / "eval_fails.jsonl";
  std::ofstream(config.data.eval) << "{\"prompt\": \"q0\", \"answer\": \"0\"}\n";
  FakeCoordinator coordinator(RunConfigToYaml(config));
  ModelFailsToLoadBackend backend("/ckpt/iter-2", absl::DataLossError("damaged"));
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  const std::vector<std::pair<int64_t, int64_t>> want = {{1, 1}, {0, 0}};
  EXPECT_EQ(coordinator.evaluations, want);
}

// One rank's run where another rank reported /elsewhere/iter-2 at iteration 1 before a relaunch.
absl::StatusOr<WorkerLoopSummary> RunWithWrittenCheckpoint(FakeCoordinator& coordinator, RecordingBackend& backend) {
  coordinator.written_dpo_dir = "/elsewhere/iter-2";
  return RunOneRank(coordinator, backend);
}

std::string OneIftLineConfigYaml() {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  return RunConfigToYaml(config);
}

// Told that another rank reported the checkpoint before a relaunch, the worker reports it without
// training (training alone would wait in a collective the others never join).
TEST(WorkerLoopTest, AWrittenCheckpointIsReportedWithoutTraining) {
  FakeCoordinator coordinator(OneIftLineConfigYaml());
  RecordingBackend backend;
  auto summary = RunWithWrittenCheckpoint(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  ASSERT_EQ(backend.trained.size(), 1u);  // SFT only
  EXPECT_EQ(backend.trained[0].rfind("sft ", 0), 0u);
  EXPECT_NE(std::find(coordinator.log.begin(), coordinator.log.end(), "checkpoint 1 /elsewhere/iter-2"),
            coordinator.log.end())
      << ::testing::PrintToString(coordinator.log);
}

// A written checkpoint that no longer loads (deleted or damaged between the job's end and the
// relaunch) is not reported: the job fails with DataLoss and the iteration stays uncommitted.
TEST(WorkerLoopTest, AWrittenCheckpointThatNoLongerLoadsIsNotReported) {
  FakeCoordinator coordinator(OneIftLineConfigYaml());
  ModelFailsToLoadBackend backend("/elsewhere/iter-2",
                                  absl::NotFoundError("model directory /elsewhere/iter-2 does not exist"));
  auto summary = RunWithWrittenCheckpoint(coordinator, backend);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kDataLoss) << summary.status();
  EXPECT_NE(summary.status().message().find("checkpoint /elsewhere/iter-2, which other ranks reported before the job "
                                            "ended, no longer loads (model directory /elsewhere/iter-2 does not exist)"),
            std::string::npos)
      << summary.status();
  for (const std::string& entry : coordinator.log) EXPECT_EQ(entry.find("checkpoint 1 "), std::string::npos) << entry;
}

// A load that fails for another reason (memory, a device) keeps its own code and message: it is not
// the folder's fault, and "restore the folder" would send the operator the wrong way.
TEST(WorkerLoopTest, AWrittenCheckpointThatCannotBeLoadedForLackOfMemoryIsNotCalledDamaged) {
  FakeCoordinator coordinator(OneIftLineConfigYaml());
  ModelFailsToLoadBackend backend("/elsewhere/iter-2", absl::ResourceExhaustedError("CUDA out of memory"));
  auto summary = RunWithWrittenCheckpoint(coordinator, backend);
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kResourceExhausted) << summary.status();
  EXPECT_EQ(summary.status().message().find("Restore the folder"), std::string::npos) << summary.status();
}

// A rank relaunched while the previous iteration was being committed registered with the model
// before the commit; the next iteration's work must still use the committed one, which every lease
// names. (It used to go on with the old model: it had not trained in this process.)
TEST(WorkerLoopTest, WorkUsesTheModelTheLeaseNamesNotTheOneAtRegistration) {
  RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
  config.prompts.shots = 1;
  FakeCoordinator coordinator(RunConfigToYaml(config));
  coordinator.StartAt(1, "/ckpt/iter-1");
  coordinator.registration_model_dir = "/m0";  // as registered while iteration 0 was committing
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->run_done);
  ASSERT_FALSE(backend.loaded.empty());
  for (const auto& dir : backend.loaded) EXPECT_EQ(dir, "/ckpt/iter-1");
  ASSERT_EQ(backend.trained.size(), 1u);
  EXPECT_EQ(backend.trained[0].rfind("dpo /ckpt/iter-1 -> /ckpt/iter-2", 0), 0u) << backend.trained[0];
}

// The loop's DPO of iteration t trains with a seed derived from dpo.seed and t: its own per
// iteration (the masks and data order of the last one are not drawn again), the same when the
// iteration is trained again, and another for another dpo.seed.
TEST(WorkerLoopTest, EachIterationsDpoTrainsWithItsOwnSeed) {
  auto seed_of = [](int64_t iteration, int64_t dpo_seed) {
    RunConfig config = LoopConfig("{\"prompt\": \"Spell the word 1\", \"response\": \"one\"}\n");
    config.prompts.shots = 1;
    config.dpo.train.seed = dpo_seed;
    FakeCoordinator coordinator(RunConfigToYaml(config));
    coordinator.StartAt(iteration, "/ckpt/iter-" + std::to_string(iteration));
    RecordingBackend backend;
    auto summary = RunOneRank(coordinator, backend);
    EXPECT_TRUE(summary.ok()) << summary.status();
    EXPECT_EQ(backend.dpo_seeds.size(), 1u);
    return backend.dpo_seeds.empty() ? int64_t{-1} : backend.dpo_seeds[0];
  };
  const int64_t first = seed_of(1, 1234);
  EXPECT_GE(first, 0);
  EXPECT_NE(first, 1234);
  EXPECT_EQ(seed_of(1, 1234), first);
  EXPECT_NE(seed_of(2, 1234), first);
  EXPECT_NE(seed_of(1, 99), first);
}

// The codes a stopping (SIGTERM: calls in flight are CANCELLED) or restarting coordinator gives are
// retried; a refusal is not.
TEST(RetryingLinkTest, RetriesWhatAStoppingCoordinatorAnswersAndNothingElse) {
  for (absl::StatusCode code : {absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded,
                                absl::StatusCode::kCancelled}) {
    EXPECT_TRUE(IsTransientRpcError(absl::Status(code, "x"))) << code;
  }
  for (absl::StatusCode code : {absl::StatusCode::kFailedPrecondition, absl::StatusCode::kUnauthenticated,
                                absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound}) {
    EXPECT_FALSE(IsTransientRpcError(absl::Status(code, "x"))) << code;
  }
}

// A coordinator that is away: every call is UNAVAILABLE.
class AwayCoordinator : public FakeCoordinator {
 public:
  AwayCoordinator() : FakeCoordinator("") {}
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest&) override {
    ++calls;
    return absl::UnavailableError("connection refused");
  }
  std::atomic<int> calls{0};
};

// SIGTERM while the coordinator is away ends the retrying at once (it used to retry for the whole
// --retry-seconds), and a NaN limit ends it instead of retrying for ever.
TEST(RetryingLinkTest, AStopRequestOrANanLimitEndsRetrying) {
  AwayCoordinator away;
  std::atomic<bool> stop{false};
  RetryingCoordinatorLink link(away, /*retry_seconds=*/600, &stop);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  const auto start = std::chrono::steady_clock::now();
  auto result = link.RegisterWorker(v1::RegisterWorkerRequest());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stopper.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(seconds, 5.0);
  EXPECT_GE(away.calls.load(), 2);

  AwayCoordinator away_nan;
  RetryingCoordinatorLink nan_limit(away_nan, std::nan(""));
  EXPECT_EQ(nan_limit.RegisterWorker(v1::RegisterWorkerRequest()).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(away_nan.calls.load(), 1);
}

TEST(WorkerLoopTest, StopRequestLeavesBeforeTakingWork) {
  RunConfig config;
  const std::string dir = TestDir().path();
  { std::ofstream(dir + "/ift2.jsonl") << "{\"prompt\": \"p\", \"response\": \"r\"}\n"; }
  config.data.ift = dir + "/ift2.jsonl";
  FakeCoordinator coordinator(RunConfigToYaml(config));
  RecordingBackend backend;
  std::atomic<bool> stop{true};
  WorkerLoopOptions options;
  options.checkpoint_root = "/ckpt";
  options.stop_requested = &stop;
  auto summary = RunWorkerLoop(coordinator, backend, WorkerIdentity{"host", 1, 0, 1, "cpu"}, options);
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->stopped);
  EXPECT_EQ(coordinator.log, (std::vector<std::string>{"register rank 0", "lease stopping"}));
  EXPECT_TRUE(backend.trained.empty());

  // A stop that comes while LeaseShard fails (the retrying link then gives up at once): the worker
  // leaves, not fails (which would abort the whole job).
  std::atomic<bool> later{false};
  FakeCoordinator away(RunConfigToYaml(config));
  away.stop_during_lease = &later;
  options.stop_requested = &later;
  auto left = RunWorkerLoop(away, backend, WorkerIdentity{"host", 1, 0, 1, "cpu"}, options);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_TRUE(left->stopped);
  options.stop_requested = &stop;

  // Other ranks already train and would wait for this one in a collective: the job ends instead.
  FakeCoordinator training(RunConfigToYaml(config));
  training.others_train = true;
  auto ended = RunWorkerLoop(training, backend, WorkerIdentity{"host", 1, 0, 2, "cpu"}, options);
  ASSERT_FALSE(ended.ok());
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kAborted) << ended.status();
  EXPECT_NE(ended.status().message().find("ending the whole job"), std::string::npos) << ended.status();
}

// A rank of the launch has left, so the others are told to leave instead of being given training
// (it would never join their collectives); the work before TRAIN goes on as usual.
TEST(WorkerLoopTest, TheOthersLeaveInsteadOfTrainingWithoutAStoppedRank) {
  FakeCoordinator coordinator(OneIftLineConfigYaml());
  coordinator.stop_in_phase = v1::PHASE_TRAIN;
  RecordingBackend backend;
  auto summary = RunOneRank(coordinator, backend);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_TRUE(summary->stopped);
  EXPECT_FALSE(summary->run_done);
  EXPECT_EQ(summary->generate_shards, 1);
  ASSERT_EQ(backend.trained.size(), 1u);  // the SFT of iteration 0, not the DPO of iteration 1
  EXPECT_EQ(coordinator.log.back(), "lease (told to stop)");
}

// A checkpoint root is one run's (checkpoint_root.h): a worker of a second run on it fails at
// registration, before it takes any lease; the first run's workers, relaunched, go on with it.
TEST(WorkerLoopTest, ASecondRunOnTheSameCheckpointRootIsRefusedBeforeAnyLease) {
  const testing_util::TempDir scratch("loop_root_");
  const std::string dir = scratch.path();
  WorkerLoopOptions options;
  options.checkpoint_root = dir + "/checkpoints";
  const WorkerIdentity identity{"host", 42, 0, 1, "cpu"};
  FakeCoordinator first(OneIftLineConfigYaml());
  first.run_id = "run-first";
  RecordingBackend backend;
  auto done = RunWorkerLoop(first, backend, identity, options);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->run_done);

  FakeCoordinator second(OneIftLineConfigYaml());
  second.run_id = "run-second";
  RecordingBackend second_backend;
  auto refused = RunWorkerLoop(second, second_backend, identity, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("belongs to run run-first"), std::string::npos) << refused.status();
  EXPECT_EQ(second.log, (std::vector<std::string>{"register rank 0"}));
  EXPECT_TRUE(second_backend.loaded.empty());
  EXPECT_TRUE(second_backend.trained.empty());

  FakeCoordinator resumed(OneIftLineConfigYaml());
  resumed.run_id = "run-first";
  auto again = RunWorkerLoop(resumed, backend, identity, options);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->run_done);
}

TEST(WorkerLoopTest, BadIftDataFailsRegistrationWithTheLine) {
  RunConfig config;
  const std::string dir = TestDir().path();
  { std::ofstream(dir + "/bad.jsonl") << "{\"prompt\": \"p\"}\n{\"response\": \"no prompt\"}\n"; }
  config.data.ift = dir + "/bad.jsonl";
  FakeCoordinator coordinator(RunConfigToYaml(config));
  RecordingBackend backend;
  auto summary = RunWorkerLoop(coordinator, backend, WorkerIdentity{}, WorkerLoopOptions{});
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("bad.jsonl:2"), std::string::npos) << summary.status();
}

}  // namespace
}  // namespace srlm
