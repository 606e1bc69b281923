// Implementation of coordinator/run_coordinator.h: Open, which creates a new run or resumes the one
// stored in the run directory (checking a given configuration against the stored one, and
// --force-config), reads the prompts kept out of the pool and loads the workers; the phase state
// is rebuilt by run_coordinator_restore.cc.
#include "coordinator/run_coordinator.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <random>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "coordinator/run_inputs.h"
#include "coordinator/run_schema.h"
#include "coordinator/seen_prompts.h"

namespace srlm::coordinator {
namespace {

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A file that only a run creates (a checkpoint, exported pairs) in `run_dir`, or nullopt: such files
// in a directory whose state.db holds no run mean the state was lost, not that the run is new.
std::optional<std::string> EarlierRunFile(const std::string& run_dir) {
  for (const char* folder : {"checkpoints", "pairs"}) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(run_dir) / folder, error)) {
      return absl::StrCat(folder, "/", entry.path().filename().string());
    }
  }
  return std::nullopt;
}

// A replaced configuration (--force-config) may not end the run before the iterations it has
// committed or started: iteration I in progress needs run.iterations >= I; a finished run (DONE at
// iteration I, i.e. I - 1 committed) needs I - 1.
absl::Status CheckIterationsNotBelowReached(SqliteDb& db, const RunConfig& config) {
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> iteration_text, GetRunValue(db, "iteration"));
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> phase_text, GetRunValue(db, "phase"));
  int64_t iteration = 0;
  int phase = 0;
  if (!iteration_text || !phase_text || !absl::SimpleAtoi(*iteration_text, &iteration) ||
      !absl::SimpleAtoi(*phase_text, &phase)) {
    return absl::OkStatus();  // reading the state reports it
  }
  const int64_t reached = phase == v1::PHASE_DONE ? iteration - 1 : iteration;
  if (config.run.iterations < reached) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--force-config: run.iterations ", config.run.iterations, " is below the ", reached,
        " iteration(s) this run has ", phase == v1::PHASE_DONE ? "committed" : "committed or started",
        "; it can be raised or kept, not lowered past them"));
  }
  return absl::OkStatus();
}

absl::Status NoRunWithoutConfig(const std::string& run_dir) {
  return absl::FailedPreconditionError(
      absl::StrCat("no run in ", run_dir, ": pass --config to start a new run; to resume one, check --run-dir"));
}

std::string GenerateRunId() {
  std::random_device device;
  uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  return absl::StrCat("run-", SystemNowMs() / 1000, "-", absl::Hex(bits & 0xffffffffffULL));
}

}  // namespace

RunCoordinator::RunCoordinator(RunCoordinatorOptions options)
    : run_dir_(options.run_dir), options_(std::move(options)) {
  clock_ = options_.clock_ms ? options_.clock_ms : std::function<int64_t()>(SystemNowMs);
}

RunCoordinator::~RunCoordinator() {
  committer_.reset();  // commits what is queued before the connection closes
}

absl::StatusOr<std::unique_ptr<RunCoordinator>> RunCoordinator::Open(RunCoordinatorOptions options) {
  if (options.run_dir.empty()) return absl::InvalidArgumentError("run directory is empty");
  // The models' folders under it travel in protobuf strings, which must be UTF-8: every RPC that
  // carried one would fail.
  if (!utf8::Validate(options.run_dir).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("run directory ", options.run_dir, " is not a UTF-8 path; choose one that is"));
  }
  std::unique_ptr<RunCoordinator> coordinator(new RunCoordinator(std::move(options)));
  SRLM_RETURN_IF_ERROR(coordinator->Initialize());
  return coordinator;
}

absl::Status RunCoordinator::Initialize() {
  std::error_code error;
  // A mistyped --run-dir without --config: refused before anything is created there.
  if (options_.require_config_for_new_run && !options_.config &&
      !std::filesystem::exists(database_path(), error)) {
    return NoRunWithoutConfig(run_dir_);
  }
  std::filesystem::create_directories(run_dir_, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create run directory ", run_dir_, ": ", error.message()));
  }
  SRLM_ASSIGN_OR_RETURN(lock_, RunDirLock::Acquire(run_dir_));
  SRLM_ASSIGN_OR_RETURN(writer_db_, SqliteDb::Open(database_path(), SqliteDb::Mode::kReadWrite));
  SqliteDb& db = *writer_db_;
  // Every return before the commit rolls this back (a refusal leaves the run as it was, and a
  // refused new run leaves no tables behind).
  SRLM_ASSIGN_OR_RETURN(Transaction transaction, Transaction::Begin(db, "BEGIN IMMEDIATE"));
  SRLM_RETURN_IF_ERROR(CreateSchema(db));
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> stored_yaml, GetRunValue(db, "config_yaml"));
  const int64_t now = Now();
  bool accepting_config = false;  // a new run, or --force-config: its workers' inputs are checked below
  std::optional<RunConfig> replaced_config;  // the stored configuration --force-config replaced, if it parsed
  if (!stored_yaml) {
    if (std::optional<std::string> earlier = EarlierRunFile(run_dir_)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run directory ", run_dir_, " holds files of an earlier run (", *earlier, ") but ", database_path(),
          " holds no run (deleted or emptied?): refusing to start a new run over them. Restore state.db from a "
          "copy to resume that run, or give a new or empty run directory"));
    }
    if (options_.require_config_for_new_run) {
      if (!options_.config) return NoRunWithoutConfig(run_dir_);
      if (options_.config->model.path.empty()) {
        return absl::FailedPreconditionError("model.path is not set: a new run needs its start model");
      }
      if (options_.config->data.ift.empty()) {  // run.sft false with iterations 0 is no run
        return absl::FailedPreconditionError(
            "data.ift is not set: SFT trains on it, and workers write each iteration's new prompts from "
            "its prompts (few-shot examples), also with run.sft false");
      }
    }
    config_ = options_.config.value_or(RunConfig{});
    accepting_config = true;
    SRLM_RETURN_IF_ERROR_CTX(ValidateRunConfig(config_), "run configuration");
    config_yaml_ = RunConfigToYaml(config_);
    run_id_ = GenerateRunId();
    iteration_ = config_.run.sft ? 0 : 1;
    phase_ = config_.run.sft ? v1::PHASE_SFT : v1::PHASE_PROMPTS;
    model_dir_ = config_.model.path;
    phase_started_ms_ = now;
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "config_yaml", config_yaml_));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "run_id", run_id_));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "iteration", absl::StrCat(iteration_)));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase", absl::StrCat(static_cast<int>(phase_))));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "model_dir", model_dir_));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase_started_ms", absl::StrCat(now)));
    SRLM_RETURN_IF_ERROR(AddEvent(db, now, "run_created", run_id_));
  } else {
    // A stored configuration that this build refuses (a limit tightened since, say) can be replaced
    // with --force-config; without it the run cannot start.
    absl::StatusOr<RunConfig> stored = ParseRunConfig(*stored_yaml, database_path() + " (stored config)");
    const bool replacing = options_.config.has_value() && options_.force_config;
    if (!stored.ok() && !replacing) {
      return internal::Annotate(stored.status(), "this build refuses the run's stored configuration: start with a "
                                                 "corrected one, --config FILE --force-config");
    }
    if (!stored.ok()) SRLM_LOG(WARNING) << stored.status() << ": replaced by --config (--force-config)";
    config_ = stored.ok() ? *stored : *options_.config;
    config_yaml_ = *stored_yaml;
    // The stored text as this build writes it: an older build spelled the same values differently
    // (doubles with six digits, 0.0003 for 3e-04), so configurations are compared by what they mean.
    const std::string stored_now = stored.ok() ? RunConfigToYaml(*stored) : std::string();
    if (options_.config) {
      const std::string given = RunConfigToYaml(*options_.config);
      if (given == stored_now && stored_now != *stored_yaml) {  // the same values: stored in today's spelling
        config_yaml_ = stored_now;
        SRLM_RETURN_IF_ERROR(PutRunValue(db, "config_yaml", config_yaml_));
      }
      if (given != stored_now) {
        if (!options_.force_config) {
          std::vector<std::string> a = absl::StrSplit(given, '\n'), b = absl::StrSplit(stored_now, '\n');
          size_t line = 0;
          while (line < a.size() && line < b.size() && a[line] == b[line]) ++line;
          return absl::FailedPreconditionError(absl::StrCat(
              "run directory ", run_dir_, " holds a different run configuration than --config (first "
              "difference: stored '", line < b.size() ? b[line] : "", "' vs given '",
              line < a.size() ? a[line] : "", "'); resume with the stored one (omit --config, or give the "
              "file the run started with), or pass --force-config to replace it (deploy scripts: "
              "COORD_ARGS=--force-config)"));
        }
        SRLM_RETURN_IF_ERROR_CTX(ValidateRunConfig(*options_.config), "run configuration");
        if (absl::Status reached = CheckIterationsNotBelowReached(db, *options_.config); !reached.ok()) {
          return reached;
        }
        if (stored.ok()) replaced_config = *stored;
        accepting_config = true;
        config_ = *options_.config;
        config_yaml_ = given;
        SRLM_RETURN_IF_ERROR(PutRunValue(db, "config_yaml", config_yaml_));
        SRLM_RETURN_IF_ERROR(AddEvent(db, now, "config_replaced", "--force-config"));
        SRLM_LOG(WARNING) << "replaced the stored run configuration (--force-config)";
      }
    }
    auto get = [&](const std::string& key) -> absl::StatusOr<std::string> {
      SRLM_ASSIGN_OR_RETURN(std::optional<std::string> value, GetRunValue(db, key));
      if (!value) return absl::DataLossError(absl::StrCat(database_path(), " lacks run key ", key));
      return *value;
    };
    SRLM_ASSIGN_OR_RETURN(run_id_, get("run_id"));
    SRLM_ASSIGN_OR_RETURN(std::string iteration, get("iteration"));
    SRLM_ASSIGN_OR_RETURN(std::string phase, get("phase"));
    SRLM_ASSIGN_OR_RETURN(model_dir_, get("model_dir"));
    SRLM_ASSIGN_OR_RETURN(std::string started, get("phase_started_ms"));
    int phase_number = 0;
    if (!absl::SimpleAtoi(iteration, &iteration_) || !absl::SimpleAtoi(phase, &phase_number) ||
        !absl::SimpleAtoi(started, &phase_started_ms_) || !v1::Phase_IsValid(phase_number)) {
      return absl::DataLossError(absl::StrCat(database_path(), ": corrupt iteration or phase"));
    }
    phase_ = static_cast<v1::Phase>(phase_number);
    // Until a model is committed the run's model is the start model: a replaced model.path (one that
    // did not load, say) takes its place. Kept, the run would go on loading the old one for ever.
    if (replaced_config && model_dir_ == replaced_config->model.path && config_.model.path != model_dir_) {
      SRLM_LOG(WARNING) << "nothing committed yet: the start model is now " << config_.model.path << " (was "
                        << model_dir_ << ")";
      SRLM_RETURN_IF_ERROR(AddEvent(db, now, "start_model_replaced", config_.model.path));
      model_dir_ = config_.model.path;
      SRLM_RETURN_IF_ERROR(PutRunValue(db, "model_dir", model_dir_));
    }
    // The iteration's stored pairs carry reference log-probabilities computed with the stored chat
    // template, and fit the stored length limit: changed under them, DPO would train against other
    // token sequences (or refuse, at every relaunch, pairs that no longer fit).
    if (replaced_config && (phase_ == v1::PHASE_GENERATE || phase_ == v1::PHASE_TRAIN || phase_ == v1::PHASE_COMMIT)) {
      auto limit = [](int64_t max_seq_len) { return max_seq_len > 0 ? max_seq_len : INT64_MAX; };
      if (config_.model.chat_template != replaced_config->model.chat_template ||
          limit(config_.model.max_seq_len) < limit(replaced_config->model.max_seq_len)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "--force-config: iteration ", iteration_, " is in ", v1::Phase_Name(phase_),
            ": its pairs' reference log-probabilities were computed with model.chat_template '",
            replaced_config->model.chat_template, "' and model.max_seq_len ", replaced_config->model.max_seq_len,
            "; a different template or a lower limit would train DPO against other token sequences (or refuse "
            "pairs that no longer fit). Keep them until the iteration commits, then change them"));
      }
    }
    SRLM_RETURN_IF_ERROR(AddEvent(db, now, "resumed",
                                  absl::StrCat("iteration ", iteration_, " ", v1::Phase_Name(phase_))));
    // A finished run whose configuration now asks for more iterations (--force-config) goes on
    // with the next one, from the last model; before, it stayed DONE and reported success.
    if (phase_ == v1::PHASE_DONE && iteration_ <= config_.run.iterations) {
      phase_ = v1::PHASE_PROMPTS;
      phase_started_ms_ = now;
      SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase", absl::StrCat(static_cast<int>(phase_))));
      SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase_started_ms", absl::StrCat(now)));
      SRLM_RETURN_IF_ERROR(AddEvent(db, now, "reopened",
                                    absl::StrCat("iteration ", iteration_, " of ", config_.run.iterations)));
      SRLM_LOG(INFO) << "run.iterations is now " << config_.run.iterations << ": the finished run goes on with "
                     << "iteration " << iteration_;
    }
  }
  if (accepting_config) {
    SRLM_RETURN_IF_ERROR_CTX(CheckWorkerInputs(config_, phase_ == v1::PHASE_SFT), "run configuration");
    if (model_dir_ == config_.model.path) {
      if (std::optional<std::string> problem = StartModelProblem(model_dir_)) {
        SRLM_LOG(WARNING) << "model.path " << model_dir_ << " does not look like a start model: " << *problem
                          << " (workers load it, maybe from a disk of their own; they fail if they cannot)";
      }
    }
  }
  // Before the phase state: every prompt filter, the one LoadPhaseState rebuilds included, consults
  // them (NewPromptFilter). A run with a PROMPTS phase current or ahead that cannot read them does
  // not start: its pool could take in copies of the instruction prompts and the held-out evaluation
  // prompts. One with none left (DONE, or past PROMPTS of its last iteration) builds no filter
  // again, so it opens without them (a warning), and srlmctl can still read a finished run whose
  // data moved; nor does it index them.
  const bool prompts_ahead = PromptsPhaseAhead();
  absl::StatusOr<std::vector<std::string>> seen = ReadSeenPrompts(config_.data);
  if (!seen.ok()) {
    if (prompts_ahead) {
      return internal::Annotate(seen.status(), "cannot read the prompts kept out of the prompt pool (data.ift, "
                                               "data.eval)");
    }
    SRLM_LOG(WARNING) << "cannot read the prompts kept out of the prompt pool (data.ift, data.eval): "
                      << seen.status() << "; going on without them: no PROMPTS phase is left (iteration "
                      << iteration_ << ", " << v1::Phase_Name(phase_) << ", run.iterations "
                      << config_.run.iterations << ")";
    seen = std::vector<std::string>();
  }
  // Indexed once, here, before any RPC is served: a new PROMPTS phase only points its filter at it.
  seen_prompts_ = prompts_ahead ? std::make_shared<const SeenPromptIndex>(*seen, config_.prompts.ngram) : nullptr;
  // Workers stay valid across restarts: they keep calling with the ids they hold.
  SRLM_ASSIGN_OR_RETURN(Statement * workers,
                        db.Prepare("SELECT worker_id, rank, world_size, hostname, pid, device "
                                   "FROM workers ORDER BY rowid"));  // registration order, whatever the clock did
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, workers->Step());
    if (!row) break;
    WorkerInfo info;
    std::string id = workers->ColumnText(0);
    info.rank = static_cast<int32_t>(workers->ColumnInt(1));
    info.world_size = static_cast<int32_t>(workers->ColumnInt(2));
    info.hostname = workers->ColumnText(3);
    info.pid = workers->ColumnInt(4);
    info.device = workers->ColumnText(5);
    info.last_heartbeat_ms = now;
    // As RegisterWorker: the latest registration of a rank, and no rank past its launch's world size.
    worker_by_rank_.erase(worker_by_rank_.lower_bound(info.world_size), worker_by_rank_.end());
    worker_by_rank_[info.rank] = id;
    workers_[id] = info;
    ++next_worker_number_;
  }
  workers->Reset();
  SRLM_ASSIGN_OR_RETURN(Statement * departures, db.Prepare("SELECT worker_id FROM departures"));
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, departures->Step());
    if (!row) break;
    departed_.insert(departures->ColumnText(0));
  }
  departures->Reset();
  SRLM_RETURN_IF_ERROR(LoadShardsSubmitted(db));
  SRLM_RETURN_IF_ERROR(LoadPhaseState(db));
  if (phase_ == v1::PHASE_SFT || phase_ == v1::PHASE_TRAIN) {
    for (const auto& [id, worker] : workers_) may_be_training_.insert(id);
  }
  SRLM_RETURN_IF_ERROR(EndCompletePromptsPhase(db));
  SRLM_RETURN_IF_ERROR(LoadCommittedIterations(db));
  SRLM_RETURN_IF_ERROR(transaction.Commit());
  SRLM_ASSIGN_OR_RETURN(reader_db_, SqliteDb::Open(database_path(), SqliteDb::Mode::kReadOnly));
  committer_ = std::make_unique<GroupCommitter>(
      writer_db_.get(), options_.max_writes_per_transaction,
      [this](SqliteDb& db) { return PutRunValue(db, "last_commit_ms", absl::StrCat(Now())); });
  SRLM_LOG(INFO) << "run " << run_id_ << " in " << run_dir_ << ": iteration " << iteration_
                 << ", phase " << v1::Phase_Name(phase_) << ", model " << model_dir_;
  return absl::OkStatus();
}

}  // namespace srlm::coordinator
