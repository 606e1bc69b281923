// Implementation of worker/loop/worker_loop.h.
#include "worker/loop/worker_loop.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/progress_watchdog.h"
#include "common/run_data.h"
#include "common/judge.h"
#include "worker/loop/checkpoint_root.h"
#include "worker/loop/self_instruct.h"
#include "worker/loop/shard_work.h"
#include "worker/loop/train_step_forwarder.h"

namespace srlm {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Whether `pairs` are exactly rank `rank`'s slice of the `total` frozen pairs: every position p in
// [0, total) with p % world_size == rank, once each. A stream that ended early but cleanly must not
// leave the trainer with empty examples in the missing places.
absl::Status CheckRankSlice(const std::vector<v1::TrainingPair>& pairs, int64_t total, int rank, int world_size) {
  const int64_t expected = total > rank ? (total - 1 - rank) / world_size + 1 : 0;
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(0, total)));
  for (const v1::TrainingPair& pair : pairs) {
    const int64_t p = pair.position();
    if (p < 0 || p >= total || p % world_size != rank || seen[static_cast<size_t>(p)]) {
      return absl::DataLossError(absl::StrCat("pair position ", p, " is not, or not only once, in rank ", rank,
                                              "'s slice of ", total, " pairs over ", world_size, " rank(s)"));
    }
    seen[static_cast<size_t>(p)] = true;
  }
  if (static_cast<int64_t>(pairs.size()) != expected) {
    return absl::DataLossError(absl::StrCat("received ", pairs.size(), " of rank ", rank, "'s ", expected,
                                            " pairs (", total, " over ", world_size, " rank(s))"));
  }
  return absl::OkStatus();
}

// Calls Heartbeat every `period` seconds until destroyed, with the worker's counters and what its
// work thread is doing (the watchdog's last activity and how long ago it made progress).
class HeartbeatThread {
 public:
  HeartbeatThread(CoordinatorLink& link, std::string worker_id, double period_seconds,
                  const ProgressWatchdog& watchdog)
      : link_(link), worker_id_(std::move(worker_id)), period_(period_seconds), watchdog_(watchdog) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~HeartbeatThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void AddTokens(int64_t tokens, int64_t prompts) {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_ += tokens;
    prompts_ += prompts;
  }
  // The lease the work thread is working on ("": none). Every heartbeat lists it as the worker's
  // only lease, so the coordinator extends that one alone: a grant whose answer never reached this
  // worker expires instead of being kept alive for ever.
  void SetLease(std::string lease_id) {
    std::lock_guard<std::mutex> lock(mu_);
    lease_id_ = std::move(lease_id);
  }

 private:
  void Loop() {
    const auto start = Clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::duration<double>(period_), [this] { return stop_; })) {
      v1::HeartbeatRequest request;
      request.set_worker_id(worker_id_);
      request.mutable_stats()->set_tokens_generated(tokens_);
      request.mutable_stats()->set_prompts_processed(prompts_);
      request.mutable_stats()->set_tokens_per_second(static_cast<double>(tokens_) /
                                                     std::max(1e-9, SecondsSince(start)));
      ProgressWatchdog::Snapshot work = watchdog_.Current();
      request.mutable_stats()->set_activity(std::move(work.activity));
      request.mutable_stats()->set_seconds_since_progress(work.seconds_since_progress);
      request.set_lists_every_lease(true);
      if (!lease_id_.empty()) request.add_lease_ids(lease_id_);
      lock.unlock();
      auto response = link_.Heartbeat(request);
      if (!response.ok()) SRLM_LOG(WARNING) << "heartbeat failed: " << response.status();
      lock.lock();
    }
  }
  CoordinatorLink& link_;
  const std::string worker_id_;
  const double period_;
  const ProgressWatchdog& watchdog_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int64_t tokens_ = 0, prompts_ = 0;
  std::string lease_id_;
  std::thread thread_;
};

// M_t with every sampling and scoring call marked as progress of `unit` (a shard).
class WatchedModel : public LoopModel {
 public:
  WatchedModel(LoopModel& model, ProgressWatchdog& watchdog, std::string unit)
      : model_(model), watchdog_(watchdog), unit_(std::move(unit)) {}
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig& sampling,
                                                     const std::vector<uint64_t>& seeds) override {
    watchdog_.Progress(absl::StrCat(unit_, ": sampling ", texts.size(), " sequence(s)"));
    return model_.Generate(texts, format, sampling, seeds);
  }
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(const std::string& user_message,
                                                             const std::vector<std::string>& responses) override {
    watchdog_.Progress(absl::StrCat(unit_, ": scoring ", responses.size(), " response(s)"));
    return model_.ScoreResponses(user_message, responses);
  }

 private:
  LoopModel& model_;
  ProgressWatchdog& watchdog_;
  const std::string unit_;
};

// Everything one registered worker holds.
class Worker {
 public:
  Worker(CoordinatorLink& link, WorkerBackend& backend, const WorkerIdentity& identity,
         const WorkerLoopOptions& options)
      : link_(link),
        backend_(backend),
        identity_(identity),
        options_(options),
        watchdog_(options.stall_seconds, options.on_stall) {}

  absl::StatusOr<WorkerLoopSummary> Run();

 private:
  absl::Status Register();
  absl::Status EnsureModel(const std::string& model_dir);
  absl::Status DoPromptsShard(const v1::LeaseShardResponse& lease);
  absl::Status DoGenerateShard(const v1::LeaseShardResponse& lease);
  absl::Status DoTraining(const v1::TrainPhase& train);
  // This rank's share of data.eval on `model_dir`: (answers that match, prompts).
  absl::StatusOr<std::pair<int64_t, int64_t>> Evaluate(int64_t iteration, const std::string& model_dir);
  // The coordinator's answer, or nullopt when it no longer wanted the result (dropped).
  absl::StatusOr<std::optional<v1::SubmitShardResponse>> Submit(v1::SubmitShardRequest request);
  void Wait(double seconds);
  bool StopRequested() const { return options_.stop_requested && options_.stop_requested->load(); }

  CoordinatorLink& link_;
  WorkerBackend& backend_;
  const WorkerIdentity identity_;
  const WorkerLoopOptions options_;
  ProgressWatchdog watchdog_;

  std::string worker_id_;
  uint64_t run_seed_ = 0;
  bool backend_configured_ = false;
  RunConfig config_;
  std::string current_model_dir_;
  std::vector<std::string> ift_prompts_;
  std::vector<std::vector<std::string>> eval_set_;  // data.eval: (prompt, answer); empty without
  std::unique_ptr<JudgeTemplate> judge_template_;
  std::unique_ptr<JudgeScoreParser> score_parser_;
  std::string loaded_model_dir_;
  std::unique_ptr<LoopModel> model_;
  std::unique_ptr<HeartbeatThread> heartbeat_;
  int64_t last_trained_iteration_ = -1;
  WorkerLoopSummary summary_;
};

absl::Status Worker::Register() {
  v1::RegisterWorkerRequest request;
  request.set_hostname(identity_.hostname);
  request.set_pid(identity_.pid);
  request.set_rank(identity_.rank);
  request.set_world_size(identity_.world_size);
  request.set_device(identity_.device);
  watchdog_.Progress("registering with the coordinator");
  SRLM_ASSIGN_OR_RETURN(v1::RegisterWorkerResponse reg, link_.RegisterWorker(request));
  // The checkpoint root is this run's, or the worker fails here, before it takes any work: another
  // run's checkpoints there would be overwritten (checkpoint_root.h). Again at every registration:
  // a coordinator restarted in between may serve another run.
  if (reg.run_id().empty()) {
    // srlm-coordinator always names its run; a test's fake coordinator may not.
    SRLM_LOG(WARNING) << "the coordinator named no run id: checkpoint root " << options_.checkpoint_root
                      << " not claimed";
  } else {
    watchdog_.Progress(absl::StrCat("claiming checkpoint root ", options_.checkpoint_root));
    SRLM_RETURN_IF_ERROR(ClaimCheckpointRoot(options_.checkpoint_root, reg.run_id()).status());
  }
  worker_id_ = reg.worker_id();
  run_seed_ = static_cast<uint64_t>(reg.run_seed());
  SRLM_ASSIGN_OR_RETURN(config_, ParseRunConfig(reg.run_config_yaml(), "run configuration from the coordinator"));
  current_model_dir_ = reg.model_dir();
  SRLM_ASSIGN_OR_RETURN(std::vector<std::string> ift_prompts, ReadIftPrompts(config_.data.ift));
  ift_prompts_ = DistinctShotPrompts(std::move(ift_prompts));
  eval_set_.clear();
  if (!config_.data.eval.empty()) {
    SRLM_ASSIGN_OR_RETURN(eval_set_, ReadEvalSet(config_.data.eval));
  }
  SRLM_ASSIGN_OR_RETURN(JudgeTemplate templ, JudgeTemplate::FromFile(config_.judge.template_file));
  judge_template_ = std::make_unique<JudgeTemplate>(std::move(templ));
  SRLM_ASSIGN_OR_RETURN(JudgeScoreParser parser,
                        JudgeScoreParser::Create(config_.judge.score_pattern, config_.judge.min_score,
                                                 config_.judge.max_score));
  score_parser_ = std::make_unique<JudgeScoreParser>(std::move(parser));
  if (!backend_configured_) {  // collective, once per process (Register runs again after a coordinator restart)
    watchdog_.Progress("setting up the training communicator (collective: waits for every rank)");
    SRLM_RETURN_IF_ERROR(backend_.Configure(config_));
    backend_configured_ = true;
  }
  SRLM_LOG(INFO) << "registered as " << worker_id_ << " (run " << reg.run_id() << ", iteration "
                 << reg.iteration() << ", phase " << v1::Phase_Name(reg.phase()) << ", model "
                 << reg.model_dir() << ")";
  heartbeat_ = std::make_unique<HeartbeatThread>(
      link_, worker_id_, reg.heartbeat_seconds() > 0 ? reg.heartbeat_seconds() : config_.coordinator.heartbeat_seconds,
      watchdog_);
  return absl::OkStatus();
}

absl::Status Worker::EnsureModel(const std::string& model_dir) {
  if (model_ && loaded_model_dir_ == model_dir) return absl::OkStatus();
  const auto start = Clock::now();
  model_.reset();
  watchdog_.Progress(absl::StrCat("loading model ", model_dir));
  SRLM_ASSIGN_OR_RETURN(model_, backend_.LoadModel(model_dir));
  loaded_model_dir_ = model_dir;
  SRLM_LOG(INFO) << "loaded model " << model_dir << " in " << SecondsSince(start) << " s";
  return absl::OkStatus();
}

// FAILED_PRECONDITION means the result is no longer wanted: the lease expired and its shard was
// handed on (this rank was slow or paused), another attempt completed it, or its phase ended. The
// work is dropped and the worker leases again; failing would end the whole job for a slow shard.
absl::StatusOr<std::optional<v1::SubmitShardResponse>> Worker::Submit(v1::SubmitShardRequest request) {
  request.set_worker_id(worker_id_);
  watchdog_.Progress(absl::StrCat("submitting the result of ", request.lease_id()));
  absl::StatusOr<v1::SubmitShardResponse> answer = link_.SubmitShard(request);
  if (answer.status().code() == absl::StatusCode::kFailedPrecondition) {
    ++summary_.shards_discarded;
    SRLM_LOG(WARNING) << "result of " << request.lease_id() << " dropped: " << answer.status().message();
    return std::nullopt;
  }
  if (answer.status().code() == absl::StatusCode::kResourceExhausted) {
    // gRPC's "message larger than max": the shard's result is over the run's limit, and would be at
    // every relaunch.
    return internal::Annotate(answer.status(),
                              absl::StrCat("the result of ", request.lease_id(), " is ", request.ByteSizeLong(),
                                           " bytes; the run's coordinator.max_message_bytes is ",
                                           config_.coordinator.max_message_bytes,
                                           ": raise it (the coordinator with --force-config) or lower "
                                           "generate.shard_size"));
  }
  SRLM_ASSIGN_OR_RETURN(v1::SubmitShardResponse response, std::move(answer));
  return response;
}

absl::Status Worker::DoPromptsShard(const v1::LeaseShardResponse& lease) {
  const auto start = Clock::now();
  SRLM_RETURN_IF_ERROR(EnsureModel(current_model_dir_));
  ShardContext ctx{&config_, &ift_prompts_, judge_template_.get(), score_parser_.get()};
  WatchedModel model(*model_, watchdog_, absl::StrCat("PROMPTS shard ", lease.lease().lease_id()));
  SRLM_ASSIGN_OR_RETURN(v1::PromptsResult result, RunPromptsShard(lease.prompts(), ctx, model));
  v1::SubmitShardRequest request;
  request.set_lease_id(lease.lease().lease_id());
  const int written = result.prompts_size();
  *request.mutable_prompts() = std::move(result);
  SRLM_ASSIGN_OR_RETURN(std::optional<v1::SubmitShardResponse> answer, Submit(std::move(request)));
  if (!answer) return absl::OkStatus();
  const v1::SubmitShardResponse& response = *answer;
  ++summary_.prompts_shards;
  SRLM_LOG(INFO) << "iteration " << lease.iteration() << " PROMPTS shard " << lease.lease().shard_id()
                 << ": " << written << "/" << lease.prompts().num_prompts() << " parsed, "
                 << response.prompts_accepted() << " entered the pool"
                 << (response.shards_held() > 0
                         ? absl::StrCat(" (", response.shards_held(), " shard(s) held for shard order)")
                         : "")
                 << (response.duplicate() ? " (duplicate submission)" : "") << ", "
                 << SecondsSince(start) << " s";
  return absl::OkStatus();
}

// One round: lease shard (done by the caller) -> generate -> judge -> build pairs -> reference
// log-probs (RunGenerateShard) -> submit.
absl::Status Worker::DoGenerateShard(const v1::LeaseShardResponse& lease) {
  const auto start = Clock::now();
  SRLM_RETURN_IF_ERROR(EnsureModel(current_model_dir_));
  ShardContext ctx{&config_, &ift_prompts_, judge_template_.get(), score_parser_.get(), run_seed_,
                   lease.iteration()};
  WatchedModel model(*model_, watchdog_, absl::StrCat("GENERATE shard ", lease.lease().lease_id()));
  SRLM_ASSIGN_OR_RETURN(v1::GenerateResult result, RunGenerateShard(lease.generate(), ctx, model));
  int64_t pairs = 0, unparsable = 0, judgements = 0, tokens = 0;
  std::map<int, int64_t> drops;  // DropReason -> prompts
  for (const auto& r : result.results()) {
    pairs += r.has_pair();
    if (!r.has_pair()) ++drops[r.drop_reason()];
    for (const auto& j : r.judgements()) unparsable += j.unparsable();
    judgements += r.judgements_size();
    for (const auto& c : r.candidates()) tokens += c.num_tokens();
  }
  heartbeat_->AddTokens(tokens, result.results_size());
  v1::SubmitShardRequest request;
  request.set_lease_id(lease.lease().lease_id());
  *request.mutable_generate() = std::move(result);
  SRLM_ASSIGN_OR_RETURN(std::optional<v1::SubmitShardResponse> answer, Submit(std::move(request)));
  if (!answer) return absl::OkStatus();
  const v1::SubmitShardResponse& response = *answer;
  ++summary_.generate_shards;
  summary_.pairs_submitted += response.duplicate() ? 0 : pairs;
  std::string dropped;  // "tie 2, too_few_answers 1"
  for (const auto& [reason, count] : drops) {
    const std::string name = v1::DropReason_Name(static_cast<v1::DropReason>(reason));
    absl::StrAppend(&dropped, dropped.empty() ? "" : ", ",
                    absl::AsciiStrToLower(absl::StripPrefix(name, "DROP_REASON_")), " ", count);
  }
  SRLM_LOG(INFO) << "iteration " << lease.iteration() << " GENERATE shard " << lease.lease().shard_id()
                 << ": " << lease.generate().prompts_size() << " prompts, " << pairs << " pairs"
                 << (dropped.empty() ? "" : " (dropped: " + dropped + ")") << ", " << unparsable << "/"
                 << judgements << " judgements unparsable"
                 << (response.duplicate() ? " (duplicate submission)" : "") << ", "
                 << SecondsSince(start) << " s";
  return absl::OkStatus();
}

absl::Status Worker::DoTraining(const v1::TrainPhase& train) {
  const auto start = Clock::now();
  const std::string out_dir = train.written_checkpoint_dir().empty()
                                  ? absl::StrCat(options_.checkpoint_root, "/iter-", train.iteration() + 1)
                                  : train.written_checkpoint_dir();
  // Free the generation model before training loads its own copy.
  model_.reset();
  loaded_model_dir_.clear();
  const std::string what = absl::StrCat("iteration ", train.iteration(), " ",
                                        train.phase() == v1::PHASE_SFT ? "SFT" : "DPO");
  std::optional<TrainStepForwarder> forwarder;  // rank 0 reports the steps, off the training thread
  if (identity_.rank == 0) forwarder.emplace(link_);
  TrainStepReporter report = [&](const TrainStepReport& step) {
    watchdog_.Progress(absl::StrCat(what, ": step ", step.step, " of ", step.total_steps,
                                    " done (training, or writing the checkpoint after the last)"));
    v1::ReportTrainStepRequest request;
    request.set_worker_id(worker_id_);
    request.set_iteration(train.iteration());
    request.set_step(step.step);
    request.set_total_steps(step.total_steps);
    request.set_loss(step.loss);
    request.set_tokens(step.tokens);
    for (const auto& [name, value] : step.metrics) (*request.mutable_metrics())[name] = value;
    if (forwarder.has_value()) forwarder->Post(std::move(request));
  };
  if (!train.written_checkpoint_dir().empty()) {
    // Another rank reported it before a relaunch: it was whole then, and they would not join a
    // collective. This rank never saw it written, so it loads it (checksums included) before
    // vouching for it: a folder lost or damaged since must not be committed.
    SRLM_LOG(INFO) << "iteration " << train.iteration() << ": " << out_dir
                   << " was written before a relaunch (another rank reported it): checking it, then reporting it "
                      "without training";
    if (absl::Status loaded = EnsureModel(out_dir); absl::IsNotFound(loaded) || absl::IsDataLoss(loaded)) {
      return absl::DataLossError(absl::StrCat(
          "iteration ", train.iteration(), ": checkpoint ", out_dir,
          ", which other ranks reported before the job ended, no longer loads (", loaded.message(),
          "); the iteration stays uncommitted. Restore the folder from a copy and relaunch"));
    } else if (!loaded.ok()) {
      return loaded;  // out of memory, a device error: not the folder's fault
    }
  } else if (train.phase() == v1::PHASE_SFT) {
    SRLM_LOG(INFO) << "iteration 0: SFT from " << train.model_dir() << " -> " << out_dir;
    watchdog_.Progress(absl::StrCat(what, ": loading the model and data, first step (collective)"));
    SRLM_RETURN_IF_ERROR(backend_.TrainSft(config_, train.model_dir(), out_dir, report));
  } else {
    std::vector<v1::TrainingPair> pairs;
    int64_t total = train.num_pairs();
    v1::StreamPairsRequest request;
    request.set_worker_id(worker_id_);
    request.set_iteration(train.iteration());
    request.set_rank(identity_.rank);
    request.set_world_size(identity_.world_size);
    watchdog_.Progress(absl::StrCat(what, ": receiving this rank's pairs"));
    SRLM_RETURN_IF_ERROR(link_.StreamPairs(request, [&](const v1::TrainingPair& pair) {
      pairs.push_back(pair);
      total = pair.total();
      return true;
    }));
    SRLM_RETURN_IF_ERROR_CTX(CheckRankSlice(pairs, total, identity_.rank, std::max(1, identity_.world_size)),
                             absl::StrCat("iteration ", train.iteration(), " StreamPairs"));
    SRLM_LOG(INFO) << "iteration " << train.iteration() << ": DPO on " << pairs.size() << " of "
                   << total << " pairs from " << train.model_dir() << " -> " << out_dir;
    watchdog_.Progress(absl::StrCat(what, ": loading the model, first step (collective)"));
    // Each iteration its own data order and dropout masks: a seed derived from dpo.seed and t (the
    // same on every rank and at every retry of the iteration). With dpo.seed itself, iteration t+1
    // drew iteration t's masks for the same (step, position), over other pairs.
    RunConfig iteration_config = config_;
    iteration_config.dpo.train.seed =
        static_cast<int64_t>(DeriveSeed(static_cast<uint64_t>(config_.dpo.train.seed), {train.iteration()}) >> 1);
    SRLM_RETURN_IF_ERROR(backend_.TrainDpo(iteration_config, train.model_dir(), pairs, total, out_dir, report));
  }
  forwarder.reset();  // sends the last step's report before the checkpoint's
  v1::ReportCheckpointRequest request;
  request.set_worker_id(worker_id_);
  request.set_rank(identity_.rank);
  request.set_world_size(identity_.world_size);
  request.set_iteration(train.iteration());
  request.set_checkpoint_dir(out_dir);
  // An evaluation that fails is reported as none: it must not hold up the commit (or, failing the
  // same way on every relaunch, the run).
  absl::StatusOr<std::pair<int64_t, int64_t>> evaluation = Evaluate(train.iteration(), out_dir);
  if (!evaluation.ok()) {
    SRLM_LOG(WARNING) << "iteration " << train.iteration() << ": held-out evaluation of " << out_dir
                      << " failed, reported as none: " << evaluation.status();
    evaluation = std::make_pair(int64_t{0}, int64_t{0});
  }
  request.set_eval_correct(evaluation->first);
  request.set_eval_total(evaluation->second);
  watchdog_.Progress(absl::StrCat(what, ": reporting checkpoint ", out_dir));
  SRLM_ASSIGN_OR_RETURN(v1::ReportCheckpointResponse response, link_.ReportCheckpoint(request));
  last_trained_iteration_ = train.iteration();
  ++summary_.trainings;
  SRLM_LOG(INFO) << "iteration " << train.iteration() << ": checkpoint " << out_dir << " reported ("
                 << response.ranks_reported() << "/" << response.world_size() << " ranks"
                 << (response.committed() ? ", committed" : "") << "), training took "
                 << SecondsSince(start) << " s";
  return absl::OkStatus();
}

// Greedy answers, with the candidates' length limit and stop strings and the chat template, to this
// rank's blocks of data.eval (block b, lines [64b, 64b + 64), goes to rank b % world_size, so every
// batch, hence every answer, is the same whatever the number of ranks); an answer counts when it
// equals the known one after trimming white space on both. The model stays loaded for the next
// iteration's work.
absl::StatusOr<std::pair<int64_t, int64_t>> Worker::Evaluate(int64_t iteration, const std::string& model_dir) {
  constexpr size_t kBlock = 64;  // one model call each (progress is marked per call)
  const size_t world = static_cast<size_t>(std::max(1, identity_.world_size));
  std::vector<std::pair<size_t, size_t>> blocks;  // [begin, end) lines
  for (size_t b = static_cast<size_t>(identity_.rank); b * kBlock < eval_set_.size(); b += world) {
    blocks.push_back({b * kBlock, std::min(eval_set_.size(), (b + 1) * kBlock)});
  }
  if (blocks.empty()) return std::make_pair(int64_t{0}, int64_t{0});
  const auto start = Clock::now();
  SRLM_RETURN_IF_ERROR(EnsureModel(model_dir));
  SamplingConfig greedy = config_.generate.sampling;
  greedy.temperature = 0;
  greedy.top_p = 1.0;
  greedy.top_k = 0;
  WatchedModel model(*model_, watchdog_, absl::StrCat("iteration ", iteration, " EVAL of ", model_dir));
  int64_t correct = 0, total = 0;
  for (const auto& [begin, end] : blocks) {
    std::vector<std::string> prompts;
    std::vector<uint64_t> seeds;
    for (size_t i = begin; i < end; ++i) {
      prompts.push_back(eval_set_[i][0]);
      seeds.push_back(i);
    }
    SRLM_ASSIGN_OR_RETURN(std::vector<GeneratedText> answers,
                          model.Generate(prompts, PromptFormat::kChat, greedy, seeds));
    if (answers.size() != prompts.size()) {
      return absl::InternalError(absl::StrCat("evaluation: ", answers.size(), " answers for ", prompts.size(), " prompts"));
    }
    for (size_t k = 0; k < answers.size(); ++k) {
      correct += absl::StripAsciiWhitespace(answers[k].text) == absl::StripAsciiWhitespace(eval_set_[begin + k][1]);
    }
    total += static_cast<int64_t>(answers.size());
  }
  SRLM_LOG(INFO) << "iteration " << iteration << ": " << model_dir << " answers " << correct << " of this rank's "
                 << total << " held-out prompts (data.eval), " << SecondsSince(start) << " s";
  return std::make_pair(correct, total);
}

void Worker::Wait(double seconds) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < until && !StopRequested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::StatusOr<WorkerLoopSummary> Worker::Run() {
  SRLM_RETURN_IF_ERROR(Register());
  while (true) {
    v1::LeaseShardRequest request;
    request.set_worker_id(worker_id_);
    // A stopping rank asks the coordinator how to leave: other ranks may be training, or be about to.
    const bool stopping = StopRequested();
    request.set_stopping(stopping);
    const uint64_t recoveries_before = link_.recoveries();
    watchdog_.Progress("asking the coordinator for work (LeaseShard)");
    absl::StatusOr<v1::LeaseShardResponse> answer = link_.LeaseShard(request);
    // The coordinator is away (the retrying link gives up at once on a stop, also one that came
    // during the call) or did not say how to leave: leave.
    if (!answer.ok() && StopRequested()) {
      SRLM_LOG(WARNING) << "stopping without the coordinator's answer: " << answer.status();
      break;
    }
    if (stopping && answer.ok() && !answer->has_stop()) break;
    SRLM_ASSIGN_OR_RETURN(v1::LeaseShardResponse lease, std::move(answer));
    if (link_.recoveries() != recoveries_before) {
      // The coordinator restarted around this call: an earlier attempt may have taken a lease whose
      // reply was lost, and heartbeats would keep it alive forever. Registering again returns every
      // lease of this rank to the pool (this one included); then lease afresh.
      SRLM_LOG(WARNING) << "coordinator restarted during LeaseShard: registering again";
      heartbeat_.reset();
      SRLM_RETURN_IF_ERROR(Register());
      continue;
    }
    // The coordinator names M_t with every answer: after a commit it is the checkpoint the ranks
    // reported, also for a rank relaunched during that commit, which registered with the model
    // before it.
    if (!lease.model_dir().empty()) current_model_dir_ = lease.model_dir();
    switch (lease.work_case()) {
      case v1::LeaseShardResponse::kPrompts:
      case v1::LeaseShardResponse::kGenerate: {
        heartbeat_->SetLease(lease.lease().lease_id());
        absl::Status done = lease.has_prompts() ? DoPromptsShard(lease) : DoGenerateShard(lease);
        heartbeat_->SetLease("");
        SRLM_RETURN_IF_ERROR(done);
        break;
      }
      case v1::LeaseShardResponse::kTrain:
        if (lease.train().iteration() <= last_trained_iteration_) {
          Wait(0.2);  // this rank reported; the others have not yet
          break;
        }
        SRLM_RETURN_IF_ERROR(DoTraining(lease.train()));
        break;
      case v1::LeaseShardResponse::kWait:
        Wait(std::min(options_.max_wait_seconds, std::max(0.01, lease.wait().wait_ms() / 1000.0)));
        break;
      case v1::LeaseShardResponse::kDone:
        SRLM_LOG(INFO) << "run done; final model " << lease.done().final_model_dir();
        summary_.run_done = true;
        heartbeat_.reset();
        return summary_;
      case v1::LeaseShardResponse::kStop:
        heartbeat_.reset();
        if (lease.stop().end_job()) {
          // Leaving would keep the training ranks waiting in a collective until a watchdog or a
          // time limit ended them: end the whole job now (the caller aborts it on an error).
          return absl::AbortedError(absl::StrCat("stop requested: ", lease.stop().reason(),
                                                 "; ending the whole job (the run resumes from its last commit)"));
        }
        SRLM_LOG(INFO) << "leaving: " << lease.stop().reason();
        summary_.stopped = true;
        return summary_;
      default:
        Wait(0.5);
        break;
    }
  }
  summary_.stopped = true;
  heartbeat_.reset();
  SRLM_LOG(INFO) << "stop requested: leaving after the current unit of work";
  return summary_;
}

}  // namespace

absl::StatusOr<WorkerLoopSummary> RunWorkerLoop(CoordinatorLink& link, WorkerBackend& backend,
                                                const WorkerIdentity& identity,
                                                const WorkerLoopOptions& options) {
  Worker worker(link, backend, identity, options);
  return worker.Run();
}

}  // namespace srlm
