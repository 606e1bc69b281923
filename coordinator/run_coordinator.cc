// Implementation of coordinator/run_coordinator.h.
#include "coordinator/run_coordinator.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <random>
#include <set>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "coordinator/pair_shuffle.h"
#include "coordinator/run_schema.h"
#include "coordinator/seen_prompts.h"

namespace srlm::coordinator {
namespace {

constexpr int64_t kWaitMs = 200;             // "nothing now" back-off handed to workers
constexpr int64_t kPromptShardBudget = 4;    // PROMPTS gives up after 4x the shards that suffice
constexpr int kHistogramBuckets = 10;

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

struct LeaseKey {
  int64_t iteration = 0;
  char kind = 'G';  // 'P' PROMPTS, 'G' GENERATE
  int64_t shard = 0;
  int32_t attempt = 0;
};

std::string MakeLeaseId(int64_t iteration, char kind, int64_t shard, int32_t attempt) {
  return absl::StrCat("i", iteration, "-", std::string(1, kind), "-s", shard, "-a", attempt);
}

absl::StatusOr<LeaseKey> ParseLeaseId(const std::string& lease_id) {
  // The id must round-trip through MakeLeaseId: that checks the i/s/a prefixes, and it refuses a
  // second spelling of a lease ("s02", "s+2"), which would match no row of the leases table.
  const std::vector<std::string> parts = absl::StrSplit(lease_id, '-');
  LeaseKey key;
  int64_t attempt = 0;
  const bool parsed = parts.size() == 4 && (parts[1] == "P" || parts[1] == "G") &&
                      absl::SimpleAtoi(absl::string_view(parts[0]).substr(1), &key.iteration) &&
                      absl::SimpleAtoi(absl::string_view(parts[2]).substr(1), &key.shard) &&
                      absl::SimpleAtoi(absl::string_view(parts[3]).substr(1), &attempt);
  if (parsed) {
    key.kind = parts[1][0];
    key.attempt = static_cast<int32_t>(attempt);
  }
  if (!parsed || MakeLeaseId(key.iteration, key.kind, key.shard, key.attempt) != lease_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_id '", lease_id, "' is malformed (expected e.g. i1-G-s0-a1)"));
  }
  return key;
}

std::string GenerateRunId() {
  std::random_device device;
  uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  return absl::StrCat("run-", SystemNowMs() / 1000, "-", absl::Hex(bits & 0xffffffffffULL));
}

bool Finite(double x) { return std::isfinite(x); }

// The results.mean_scores column: 17 significant digits, so that SimpleAtod gives back the very
// doubles (six digits moved scores across histogram buckets at a restart, and exported
// candidate_scores disagreed with chosen_score).
std::string MeanScoresText(const google::protobuf::RepeatedField<double>& scores) {
  return absl::StrJoin(scores, ",", [](std::string* out, double score) {
    absl::StrAppend(out, absl::StrFormat("%.17g", score));
  });
}

// Checks one GENERATE result; fills pair texts left empty from the candidates.
absl::Status ValidatePromptResult(v1::PromptResult* result) {
  const std::string where = absl::StrCat("result for prompt ", result->prompt_id(), ": ");
  const int num_candidates = result->candidates_size();
  for (int i = 0; i < num_candidates; ++i) {
    if (result->candidates(i).num_tokens() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, "candidates[", i, "].num_tokens < 0"));
    }
  }
  for (int i = 0; i < result->judgements_size(); ++i) {
    const v1::Judgement& j = result->judgements(i);
    if (num_candidates > 0 && (j.candidate_index() < 0 || j.candidate_index() >= num_candidates)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "judgements[", i, "].candidate_index ",
                                                     j.candidate_index(), " is not a candidate"));
    }
    if (!j.unparsable() && !Finite(j.score())) {
      return absl::InvalidArgumentError(absl::StrCat(where, "judgements[", i, "].score is not finite"));
    }
  }
  if (result->mean_scores_size() != 0 && result->mean_scores_size() != num_candidates) {
    return absl::InvalidArgumentError(absl::StrCat(where, "mean_scores has ", result->mean_scores_size(),
                                                   " entries for ", num_candidates, " candidates"));
  }
  for (double score : result->mean_scores()) {
    if (!Finite(score)) return absl::InvalidArgumentError(where + "a mean score is not finite");
  }
  switch (result->outcome_case()) {
    case v1::PromptResult::kDropReason:
      if (result->drop_reason() == v1::DROP_REASON_UNSPECIFIED) {
        return absl::InvalidArgumentError(where + "drop_reason is DROP_REASON_UNSPECIFIED");
      }
      return absl::OkStatus();
    case v1::PromptResult::kPair: break;
    default:
      return absl::InvalidArgumentError(where + "neither a pair nor a drop_reason");
  }
  v1::PreferencePair* pair = result->mutable_pair();
  if (num_candidates > 0) {
    for (int index : {pair->chosen_index(), pair->rejected_index()}) {
      if (index < 0 || index >= num_candidates) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "pair candidate index ", index, " out of range [0, ", num_candidates, ")"));
      }
    }
    if (pair->chosen_index() == pair->rejected_index()) {
      return absl::InvalidArgumentError(where + "pair chosen_index equals rejected_index");
    }
    const std::string& chosen = result->candidates(pair->chosen_index()).text();
    const std::string& rejected = result->candidates(pair->rejected_index()).text();
    if (pair->chosen().empty()) pair->set_chosen(chosen);
    if (pair->rejected().empty()) pair->set_rejected(rejected);
    if (pair->chosen() != chosen || pair->rejected() != rejected) {
      return absl::InvalidArgumentError(where + "pair texts differ from the candidates they name");
    }
  }
  if (pair->chosen().empty() || pair->rejected().empty()) {
    return absl::InvalidArgumentError(where + "pair chosen and rejected texts must not be empty");
  }
  for (double x : {pair->chosen_score(), pair->rejected_score(), pair->ref_chosen_logprob(),
                   pair->ref_rejected_logprob()}) {
    if (!Finite(x)) return absl::InvalidArgumentError(where + "pair scores and log-probs must be finite");
  }
  if (pair->chosen_num_tokens() < 0 || pair->rejected_num_tokens() < 0) {
    return absl::InvalidArgumentError(where + "pair token counts must be >= 0");
  }
  return absl::OkStatus();
}

v1::Phase TrainingPhaseOf(int64_t iteration, const RunConfig& config) {
  return iteration == 0 && config.run.sft ? v1::PHASE_SFT : v1::PHASE_TRAIN;
}

}  // namespace

RunCoordinator::RunCoordinator(RunCoordinatorOptions options)
    : run_dir_(options.run_dir), options_(std::move(options)) {
  clock_ = options_.clock_ms ? options_.clock_ms : std::function<int64_t()>(SystemNowMs);
}

RunCoordinator::~RunCoordinator() {
  committer_.reset();  // commits what is queued before the connection closes
}

std::string RunCoordinator::database_path() const { return run_dir_ + "/state.db"; }

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
  std::filesystem::create_directories(run_dir_, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create run directory ", run_dir_, ": ", error.message()));
  }
  SRLM_ASSIGN_OR_RETURN(lock_, RunDirLock::Acquire(run_dir_));
  SRLM_ASSIGN_OR_RETURN(writer_db_, SqliteDb::Open(database_path(), SqliteDb::Mode::kReadWrite));
  SqliteDb& db = *writer_db_;
  SRLM_RETURN_IF_ERROR(CreateSchema(db));
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> stored_yaml, GetRunValue(db, "config_yaml"));
  const int64_t now = Now();
  SRLM_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  if (!stored_yaml) {
    if (std::optional<std::string> earlier = EarlierRunFile(run_dir_)) {
      db.Exec("ROLLBACK").IgnoreError();
      return absl::FailedPreconditionError(absl::StrCat(
          "run directory ", run_dir_, " holds files of an earlier run (", *earlier, ") but ", database_path(),
          " holds no run (deleted or emptied?): refusing to start a new run over them. Restore state.db from a "
          "copy to resume that run, or give a new or empty run directory"));
    }
    if (options_.require_config_for_new_run) {
      if (!options_.config) {
        return absl::FailedPreconditionError(absl::StrCat("no run in ", run_dir_,
                                                          ": pass --config to start a new run; to resume one, "
                                                          "check --run-dir"));
      }
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
      db.Exec("ROLLBACK").IgnoreError();
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
          db.Exec("ROLLBACK").IgnoreError();
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
          db.Exec("ROLLBACK").IgnoreError();
          return reached;
        }
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
      db.Exec("ROLLBACK").IgnoreError();
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
  SRLM_RETURN_IF_ERROR(db.Exec("COMMIT"));
  SRLM_ASSIGN_OR_RETURN(reader_db_, SqliteDb::Open(database_path(), SqliteDb::Mode::kReadOnly));
  committer_ = std::make_unique<GroupCommitter>(
      writer_db_.get(), options_.max_writes_per_transaction,
      [this](SqliteDb& db) { return PutRunValue(db, "last_commit_ms", absl::StrCat(Now())); });
  SRLM_LOG(INFO) << "run " << run_id_ << " in " << run_dir_ << ": iteration " << iteration_
                 << ", phase " << v1::Phase_Name(phase_) << ", model " << model_dir_;
  return absl::OkStatus();
}

absl::Status RunCoordinator::LoadPhaseState(SqliteDb& db) {
  ResetPhaseLocked(v1::PHASE_PROMPTS);  // every counter from zero, then from the database
  // PROMPTS counters of the iteration.
  SRLM_ASSIGN_OR_RETURN(Statement * counts,
                        db.Prepare("SELECT COALESCE(SUM(dropped_duplicate),0), "
                                   "COALESCE(SUM(dropped_near_duplicate),0), COALESCE(SUM(dropped_length),0) "
                                   "FROM leases WHERE iteration = ? AND kind = 'P' AND state = 'completed'"));
  counts->Bind(1, iteration_);
  SRLM_ASSIGN_OR_RETURN(bool has_counts, counts->Step());
  if (has_counts) {
    dropped_duplicate_ = counts->ColumnInt(0);
    dropped_near_duplicate_ = counts->ColumnInt(1);
    dropped_length_ = counts->ColumnInt(2);
  }
  counts->Reset();
  SRLM_ASSIGN_OR_RETURN(Statement * prompts,
                        db.Prepare("SELECT text FROM prompts WHERE iteration = ? ORDER BY prompt_id"));
  prompts->Bind(1, iteration_);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, prompts->Step());
    if (!row) break;
    if (phase_ == v1::PHASE_PROMPTS) prompt_filter_->AddAccepted(prompts->ColumnText(0));
    ++prompts_accepted_;
  }
  prompts->Reset();
  if (phase_ != v1::PHASE_PROMPTS && phase_ != v1::PHASE_SFT) {
    SRLM_ASSIGN_OR_RETURN(std::optional<std::string> pool, GetRunValue(db, "pool_size"));
    SRLM_ASSIGN_OR_RETURN(std::optional<std::string> size, GetRunValue(db, "generate_shard_size"));
    if (pool && size) {
      absl::SimpleAtoi(*pool, &pool_size_);
      absl::SimpleAtoi(*size, &generate_shard_size_);
    }
  }
  if (phase_ == v1::PHASE_PROMPTS || phase_ == v1::PHASE_GENERATE) {
    const char kind = phase_ == v1::PHASE_PROMPTS ? 'P' : 'G';
    if (kind == 'G') shards_ = ShardPool((pool_size_ + generate_shard_size_ - 1) / generate_shard_size_);
    // Lease clocks stop while the coordinator is down: open leases get the downtime added
    // (measured from the last commit), so workers that could not heartbeat keep their work, and a
    // lease nobody heartbeats still expires however often the coordinator restarts.
    SRLM_ASSIGN_OR_RETURN(std::optional<std::string> last_commit, GetRunValue(db, "last_commit_ms"));
    int64_t last_commit_ms = 0;
    if (last_commit) absl::SimpleAtoi(*last_commit, &last_commit_ms);
    const int64_t downtime = last_commit_ms > 0 ? std::max<int64_t>(0, Now() - last_commit_ms) : 0;
    SRLM_ASSIGN_OR_RETURN(Statement * leases,
                          db.Prepare("SELECT shard_id, attempt, state, worker_id, expiry_ms FROM leases "
                                     "WHERE iteration = ? AND kind = ? ORDER BY shard_id, attempt"));
    leases->Bind(1, iteration_).Bind(2, std::string(1, kind));
    int64_t shard = -1, expiry = 0;
    int32_t attempt = 0, completed = 0;
    std::string state, worker;
    auto flush = [&] {
      if (shard < 0) return;
      ShardState restored = completed > 0 ? ShardState::kDone
                            : state == "active" ? ShardState::kLeased : ShardState::kWaiting;
      shards_.Restore(shard, restored, attempt, completed, worker, expiry + downtime);
    };
    while (true) {
      SRLM_ASSIGN_OR_RETURN(bool row, leases->Step());
      if (!row) break;
      int64_t row_shard = leases->ColumnInt(0);
      if (row_shard != shard) {
        flush();
        shard = row_shard;
        completed = 0;
      }
      attempt = static_cast<int32_t>(leases->ColumnInt(1));
      state = leases->ColumnText(2);
      worker = leases->ColumnText(3);
      expiry = leases->ColumnInt(4);
      if (state == "completed") completed = attempt;
    }
    flush();
    leases->Reset();
    if (kind == 'P') SRLM_RETURN_IF_ERROR(LoadHeldPrompts(db));
  }
  // GENERATE counters of the iteration.
  SRLM_ASSIGN_OR_RETURN(Statement * results,
                        db.Prepare("SELECT num_candidates, num_judgements, has_pair, drop_reason, "
                                   "mean_scores FROM results WHERE iteration = ?"));
  results->Bind(1, iteration_);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, results->Step());
    if (!row) break;
    CountResultLocked(results->ColumnInt(0), results->ColumnInt(1), results->ColumnInt(2) != 0,
                      static_cast<int>(results->ColumnInt(3)));
    v1::PromptResult scores;
    for (absl::string_view piece : absl::StrSplit(results->ColumnText(4), ',', absl::SkipEmpty())) {
      double score;
      if (absl::SimpleAtod(piece, &score)) scores.add_mean_scores(score);
    }
    AddScoresLocked(scores);
  }
  results->Reset();
  SRLM_ASSIGN_OR_RETURN(Statement * checkpoints,
                        db.Prepare("SELECT rank, dir, world_size FROM checkpoints WHERE iteration = ?"));
  checkpoints->Bind(1, iteration_);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, checkpoints->Step());
    if (!row) break;
    checkpoint_dirs_[static_cast<int32_t>(checkpoints->ColumnInt(0))] = checkpoints->ColumnText(1);
    checkpoint_world_size_ = static_cast<int32_t>(checkpoints->ColumnInt(2));
  }
  checkpoints->Reset();
  SRLM_ASSIGN_OR_RETURN(Statement * evaluations,
                        db.Prepare("SELECT rank, correct, total FROM evaluations WHERE iteration = ?"));
  evaluations->Bind(1, iteration_);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, evaluations->Step());
    if (!row) break;
    evaluations_[static_cast<int32_t>(evaluations->ColumnInt(0))] = {evaluations->ColumnInt(1),
                                                                      evaluations->ColumnInt(2)};
  }
  evaluations->Reset();
  SRLM_ASSIGN_OR_RETURN(Statement * step,
                        db.Prepare("SELECT step, total_steps, loss FROM train_steps WHERE iteration = ? "
                                   "ORDER BY step DESC, rowid DESC LIMIT 1"));
  step->Bind(1, iteration_);
  SRLM_ASSIGN_OR_RETURN(bool has_step, step->Step());
  if (has_step) {
    train_step_ = step->ColumnInt(0);
    train_total_steps_ = step->ColumnInt(1);
    train_loss_ = step->ColumnDouble(2);
  }
  step->Reset();
  return absl::OkStatus();
}

absl::Status RunCoordinator::LoadShardsSubmitted(SqliteDb& db) {
  // Every accepted submission completes its lease, and only the lease's holder may submit it.
  SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                        db.Prepare("SELECT worker_id, COUNT(*) FROM leases WHERE state = 'completed' "
                                   "GROUP BY worker_id"));
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    auto worker = workers_.find(stmt->ColumnText(0));
    if (worker != workers_.end()) worker->second.shards_submitted = stmt->ColumnInt(1);
  }
  stmt->Reset();
  return absl::OkStatus();
}

absl::Status RunCoordinator::EndCompletePromptsPhase(SqliteDb& db) {
  // Only a submission checks whether PROMPTS is complete; a configuration replaced since
  // (--force-config with a smaller prompts.per_iteration, say) can find the pool complete already,
  // and without this no submission would ever come: every LeaseShard would answer wait.
  if (phase_ != v1::PHASE_PROMPTS || !PromptsPhaseCompleteLocked()) return absl::OkStatus();
  SRLM_LOG(INFO) << "iteration " << iteration_ << ": the prompt pool (" << prompts_accepted_
                 << " prompts) is complete under the run configuration";
  std::vector<GroupCommitter::Write> writes;
  StartGenerateLocked(&writes);
  // In Open's transaction: the committer does not run yet.
  for (const GroupCommitter::Write& write : writes) SRLM_RETURN_IF_ERROR(write(db));
  return absl::OkStatus();
}

absl::Status RunCoordinator::LoadCommittedIterations(SqliteDb& db) {
  SRLM_ASSIGN_OR_RETURN(
      Statement * stmt,
      db.Prepare("SELECT c.iteration, c.model_dir, c.committed_ms, "
                 "(SELECT COUNT(*) FROM prompts p WHERE p.iteration = c.iteration), "
                 "(SELECT COUNT(*) FROM results r WHERE r.iteration = c.iteration), "
                 "(SELECT COALESCE(SUM(has_pair), 0) FROM results r WHERE r.iteration = c.iteration), "
                 "(SELECT COUNT(*) FROM results r WHERE r.iteration = c.iteration AND r.drop_reason = ?1), "
                 // CountResultLocked's rule: dropped, neither a tie, too long nor too few answers
                 // (NOT_FINITE included)
                 "(SELECT COUNT(*) FROM results r WHERE r.iteration = c.iteration AND r.has_pair = 0 "
                 "AND r.drop_reason NOT IN (?1, ?2, ?3)), "
                 "(SELECT COUNT(*) FROM results r WHERE r.iteration = c.iteration AND r.drop_reason = ?2), "
                 "(SELECT COUNT(*) FROM results r WHERE r.iteration = c.iteration AND r.drop_reason = ?3), "
                 "(SELECT COALESCE(SUM(correct), 0) FROM evaluations e WHERE e.iteration = c.iteration), "
                 "(SELECT COALESCE(SUM(total), 0) FROM evaluations e WHERE e.iteration = c.iteration), "
                 "(SELECT loss FROM train_steps t WHERE t.iteration = c.iteration ORDER BY step DESC, rowid DESC "
                 "LIMIT 1) "
                 "FROM commits c ORDER BY c.iteration"));
  stmt->Bind(1, int64_t{v1::DROP_REASON_TIE}).Bind(2, int64_t{v1::DROP_REASON_TOO_LONG})
      .Bind(3, int64_t{v1::DROP_REASON_TOO_FEW_ANSWERS});
  committed_iterations_.clear();
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    v1::IterationSummary& summary = committed_iterations_.emplace_back();
    summary.set_iteration(stmt->ColumnInt(0));
    summary.set_model_dir(stmt->ColumnText(1));
    summary.set_committed_unix_ms(stmt->ColumnInt(2));
    summary.set_prompts(stmt->ColumnInt(3));
    summary.set_results(stmt->ColumnInt(4));
    summary.set_pairs(stmt->ColumnInt(5));
    summary.set_dropped_ties(stmt->ColumnInt(6));
    summary.set_dropped_unparsable(stmt->ColumnInt(7));
    summary.set_dropped_too_long(stmt->ColumnInt(8));
    summary.set_dropped_too_few_answers(stmt->ColumnInt(9));
    summary.set_eval_correct(stmt->ColumnInt(10));
    summary.set_eval_total(stmt->ColumnInt(11));
    summary.set_train_loss(stmt->ColumnDouble(12));  // 0 when no step was reported
  }
  stmt->Reset();
  return absl::OkStatus();
}

absl::Status RunCoordinator::LoadHeldPrompts(SqliteDb& db) {
  int64_t next = 0;
  while (next < shards_.total() && shards_.slot(next).state == ShardState::kDone) ++next;
  // Every done shard after the first missing one is held, also one that brought no prompts (and so
  // has no rows).
  std::map<int64_t, ShardSubmission> held;
  for (int64_t shard = next + 1; shard < shards_.total(); ++shard) {
    if (shards_.slot(shard).state != ShardState::kDone) continue;
    held[shard] = ShardSubmission{
        shard, MakeLeaseId(iteration_, 'P', shard, shards_.slot(shard).completed_attempt), {}};
  }
  SRLM_ASSIGN_OR_RETURN(Statement * rows,
                        db.Prepare("SELECT shard_id, text FROM held_prompts WHERE iteration = ? "
                                   "ORDER BY shard_id, position"));
  rows->Bind(1, iteration_);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, rows->Step());
    if (!row) break;
    const int64_t shard = rows->ColumnInt(0);
    auto it = held.find(shard);
    if (it == held.end()) {
      rows->Reset();
      return absl::DataLossError(absl::StrCat(database_path(), ": held prompts of iteration ", iteration_,
                                              " PROMPTS shard ", shard,
                                              ", which is not a done shard after the first missing one (",
                                              next, ")"));
    }
    it->second.prompts.push_back(rows->ColumnText(1));
  }
  rows->Reset();
  std::vector<ShardSubmission> submissions;
  for (auto& [shard, submission] : held) submissions.push_back(std::move(submission));
  return prompt_order_.Restore(next, std::move(submissions));
}

void RunCoordinator::ResetPhaseLocked(v1::Phase phase) {
  shards_ = ShardPool();
  prompt_order_.Clear();
  phase_rate_.Reset();
  // Only PROMPTS offers prompts (SubmitShard takes a PROMPTS submission in PROMPTS alone): phase_,
  // not `phase`, as LoadPhaseState resets the counters with PROMPTS in any phase.
  prompt_filter_ = phase_ == v1::PHASE_PROMPTS ? NewPromptFilter() : nullptr;
  if (phase == v1::PHASE_PROMPTS || phase == v1::PHASE_SFT || phase == v1::PHASE_DONE) {
    pool_size_ = 0;
    prompts_accepted_ = dropped_duplicate_ = dropped_near_duplicate_ = dropped_length_ = 0;
    results_accepted_ = candidates_ = judgements_ = pairs_ = ties_ = unparsable_ = too_long_ =
        too_few_answers_ = 0;
    score_histogram_.assign(kHistogramBuckets, 0);
    checkpoint_dirs_.clear();
    evaluations_.clear();
    checkpoint_world_size_ = 0;
    train_step_ = train_total_steps_ = 0;
    train_loss_ = 0;
  }
}

bool RunCoordinator::PromptsPhaseAhead() const {
  // After COMMIT of iteration I comes PROMPTS of I + 1 when I < run.iterations, else DONE; SFT is
  // iteration 0. A DONE run reopened with more iterations (--force-config) is in PROMPTS by now.
  if (phase_ == v1::PHASE_DONE) return false;
  return phase_ == v1::PHASE_SFT || phase_ == v1::PHASE_PROMPTS || iteration_ < config_.run.iterations;
}

std::unique_ptr<PromptFilter> RunCoordinator::NewPromptFilter() const {
  PromptFilterOptions options;
  options.min_chars = config_.prompts.min_chars;
  options.max_chars = config_.prompts.max_chars;
  options.ngram = config_.prompts.ngram;
  options.near_duplicate_threshold = config_.prompts.near_duplicate_threshold;
  return std::make_unique<PromptFilter>(options, seen_prompts_);
}

void RunCoordinator::SetPhaseLocked(v1::Phase phase, std::vector<GroupCommitter::Write>* writes) {
  const int64_t now = Now();
  SRLM_LOG(INFO) << "iteration " << iteration_ << ": " << v1::Phase_Name(phase_) << " -> "
                 << v1::Phase_Name(phase);
  phase_ = phase;
  phase_started_ms_ = now;
  may_be_training_.clear();
  phase_changes_.push_back({++phase_change_sequence_, iteration_, phase});
  if (phase_changes_.size() > kPhaseChangeHistory) phase_changes_.pop_front();
  phase_changed_.notify_all();
  if (phase != v1::PHASE_COMMIT) ResetPhaseLocked(phase);
  writes->push_back([iteration = iteration_, phase, now, model_dir = model_dir_](SqliteDb& db) {
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "iteration", absl::StrCat(iteration)));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase", absl::StrCat(static_cast<int>(phase))));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "model_dir", model_dir));
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "phase_started_ms", absl::StrCat(now)));
    return AddEvent(db, now, "phase", absl::StrCat("iteration ", iteration, " ", v1::Phase_Name(phase)));
  });
}

bool RunCoordinator::PromptsPhaseCompleteLocked() const {
  const int64_t wanted = config_.prompts.per_iteration;
  const int64_t shard_size = std::max<int64_t>(1, config_.prompts.shard_size);
  const int64_t budget = kPromptShardBudget * ((wanted + shard_size - 1) / shard_size);
  return prompts_accepted_ >= wanted ||
         (shards_.total() >= budget && shards_.done() == shards_.total());
}

void RunCoordinator::StartGenerateLocked(std::vector<GroupCommitter::Write>* writes) {
  const int64_t pool = prompts_accepted_;
  if (prompt_order_.held() > 0) {
    SRLM_LOG(INFO) << "iteration " << iteration_ << ": the pool is full; " << prompt_order_.held()
                   << " held PROMPTS shard(s) are surplus";
  }
  SetPhaseLocked(v1::PHASE_GENERATE, writes);
  pool_size_ = pool;
  generate_shard_size_ = std::max<int64_t>(1, config_.generate.shard_size);
  shards_ = ShardPool((pool_size_ + generate_shard_size_ - 1) / generate_shard_size_);
  writes->push_back([pool, size = generate_shard_size_, iteration = iteration_](SqliteDb& db) {
    SRLM_ASSIGN_OR_RETURN(Statement * surplus, db.Prepare("DELETE FROM held_prompts WHERE iteration = ?"));
    SRLM_RETURN_IF_ERROR(surplus->Bind(1, iteration).Run());
    SRLM_RETURN_IF_ERROR(PutRunValue(db, "pool_size", absl::StrCat(pool)));
    return PutRunValue(db, "generate_shard_size", absl::StrCat(size));
  });
  if (pool_size_ == 0) FinishGenerateLocked(writes);
}

void RunCoordinator::FinishGenerateLocked(std::vector<GroupCommitter::Write>* writes) {
  const int64_t pool = pool_size_, shard_size = generate_shard_size_;
  const int64_t pairs = pairs_;
  SetPhaseLocked(TrainingPhaseOf(iteration_, config_), writes);
  pool_size_ = pool;
  generate_shard_size_ = shard_size;
  // Freeze: give every accepted pair its position in the (seed, iteration) shuffle.
  writes->push_back([iteration = iteration_, seed = config_.run.seed, pairs](SqliteDb& db) {
    SRLM_ASSIGN_OR_RETURN(Statement * select,
                          db.Prepare("SELECT prompt_id FROM results WHERE iteration = ? AND has_pair = 1 "
                                     "ORDER BY prompt_id"));
    select->Bind(1, iteration);
    std::vector<int64_t> prompt_ids;
    while (true) {
      SRLM_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      prompt_ids.push_back(select->ColumnInt(0));
    }
    select->Reset();
    if (static_cast<int64_t>(prompt_ids.size()) != pairs) {
      return absl::InternalError(absl::StrCat("freeze: ", prompt_ids.size(), " pairs stored, ", pairs,
                                              " counted"));
    }
    std::vector<int64_t> positions = ShuffledPositions(pairs, seed, iteration);
    SRLM_ASSIGN_OR_RETURN(Statement * update,
                          db.Prepare("UPDATE results SET position = ? WHERE iteration = ? AND prompt_id = ?"));
    for (size_t i = 0; i < prompt_ids.size(); ++i) {
      update->Reset();
      SRLM_RETURN_IF_ERROR(update->Bind(1, positions[i]).Bind(2, iteration).Bind(3, prompt_ids[i]).Run());
    }
    return PutRunValue(db, "frozen_pairs", absl::StrCat(pairs));
  });
}

uint64_t RunCoordinator::EnqueueLocked(std::vector<GroupCommitter::Write> writes) {
  ++state_version_;
  if (writes.empty()) return committer_->LastEnqueued();
  if (writes.size() == 1) return committer_->Enqueue(std::move(writes[0]));
  return committer_->Enqueue([writes = std::move(writes)](SqliteDb& db) {
    for (const GroupCommitter::Write& write : writes) SRLM_RETURN_IF_ERROR(write(db));
    return absl::OkStatus();
  });
}

absl::Status RunCoordinator::CheckWorkerLocked(const std::string& worker_id) const {
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id is empty");
  if (!workers_.count(worker_id)) {
    return absl::NotFoundError(absl::StrCat("unknown worker_id '", worker_id, "': RegisterWorker first"));
  }
  return absl::OkStatus();
}

void RunCoordinator::CountResultLocked(int64_t candidates, int64_t judgements, bool has_pair, int drop_reason) {
  ++results_accepted_;
  candidates_ += candidates;
  judgements_ += judgements;
  if (has_pair) {
    ++pairs_;
  } else if (drop_reason == v1::DROP_REASON_TIE) {
    ++ties_;
  } else if (drop_reason == v1::DROP_REASON_TOO_LONG) {
    ++too_long_;
  } else if (drop_reason == v1::DROP_REASON_TOO_FEW_ANSWERS) {
    ++too_few_answers_;
  } else {
    ++unparsable_;
  }
}

const std::string& RunCoordinator::ReportedCheckpointDirLocked() const {
  auto it = checkpoint_dirs_.find(0);
  return it != checkpoint_dirs_.end() ? it->second : checkpoint_dirs_.begin()->second;
}

void RunCoordinator::AddScoresLocked(const v1::PromptResult& result) {
  const double lo = config_.judge.min_score, hi = config_.judge.max_score;
  for (double score : result.mean_scores()) {
    if (score < lo) continue;  // a candidate with no parsed judgement (sent as min_score - 1)
    int bucket = hi > lo ? static_cast<int>((score - lo) / (hi - lo) * kHistogramBuckets) : 0;
    bucket = std::clamp(bucket, 0, kHistogramBuckets - 1);
    ++score_histogram_[bucket];
  }
}

int64_t RunCoordinator::ShardSeed(int64_t iteration, char kind, int64_t shard) const {
  uint64_t x = static_cast<uint64_t>(config_.run.seed) * 0x9E3779B97F4A7C15ULL;
  x ^= static_cast<uint64_t>(iteration) * 0xBF58476D1CE4E5B9ULL + static_cast<uint64_t>(kind);
  x ^= static_cast<uint64_t>(shard) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<int64_t>(x & 0x7fffffffffffffffULL);
}

// --- RPCs ------------------------------------------------------------------------------------

absl::StatusOr<v1::RegisterWorkerResponse> RunCoordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  if (request.world_size() < 1) return absl::InvalidArgumentError("world_size must be >= 1");
  if (request.rank() < 0 || request.rank() >= request.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", request.rank(), " is outside [0, world_size ",
                                                   request.world_size(), ")"));
  }
  v1::RegisterWorkerResponse response;
  uint64_t sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (checkpoint_world_size_ > 0 && request.world_size() != checkpoint_world_size_) {
      // Ranks of a launch with checkpoint_world_size_ ranks reported M_{t+1}; only ranks of that
      // world size can report the rest (a smaller launch would wait for ever, a larger one fail later).
      return absl::FailedPreconditionError(absl::StrCat(
          "iteration ", iteration_, " is being committed: ", checkpoint_dirs_.size(), " of ",
          checkpoint_world_size_, " ranks reported checkpoint ", ReportedCheckpointDirLocked(),
          " before the job ended; relaunch with ", checkpoint_world_size_, " ranks (this launch has ",
          request.world_size(), ") so that the others report it too"));
    }
    const int64_t now = Now();
    std::string worker_id = absl::StrCat("r", request.rank(), "-w", next_worker_number_++);
    std::vector<GroupCommitter::Write> writes;
    // A relaunch of this rank, and ranks past this launch's world size (an earlier, larger launch):
    // their leases go back to the pool at once, and they are no longer listed.
    std::vector<std::string> superseded;
    for (auto it = worker_by_rank_.begin(); it != worker_by_rank_.end();) {
      if (it->first == request.rank() || it->first >= request.world_size()) {
        superseded.push_back(it->second);
        it = worker_by_rank_.erase(it);
      } else {
        ++it;
      }
    }
    int32_t released_leases = 0;
    for (const std::string& old : superseded) {
      released_leases += static_cast<int32_t>(shards_.Release(old).size());
      writes.push_back([old](SqliteDb& db) {
        SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                              db.Prepare("UPDATE leases SET state = 'released' "
                                         "WHERE worker_id = ? AND state = 'active'"));
        return stmt->Bind(1, old).Run();
      });
    }
    response.set_released_leases(released_leases);
    WorkerInfo info;
    info.rank = request.rank();
    info.world_size = request.world_size();
    info.hostname = request.hostname();
    info.pid = request.pid();
    info.device = request.device();
    info.last_heartbeat_ms = now;
    info.heard_since_start = true;
    workers_[worker_id] = info;
    worker_by_rank_[request.rank()] = worker_id;
    writes.push_back([worker_id, info, now](SqliteDb& db) {
      SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                            db.Prepare("INSERT INTO workers(worker_id, rank, world_size, hostname, pid, "
                                       "device, registered_ms) VALUES(?, ?, ?, ?, ?, ?, ?)"));
      SRLM_RETURN_IF_ERROR(stmt->Bind(1, worker_id).Bind(2, int64_t{info.rank}).Bind(3, int64_t{info.world_size})
                               .Bind(4, info.hostname).Bind(5, info.pid).Bind(6, info.device).Bind(7, now).Run());
      return AddEvent(db, now, "worker_registered",
                      absl::StrCat(worker_id, " ", info.hostname, " pid ", info.pid, " ", info.device));
    });
    sequence = EnqueueLocked(std::move(writes));
    response.set_worker_id(worker_id);
    response.set_run_config_yaml(config_yaml_);
    response.set_iteration(iteration_);
    response.set_phase(phase_);
    response.set_model_dir(model_dir_);
    response.set_run_id(run_id_);
    response.set_heartbeat_seconds(config_.coordinator.heartbeat_seconds);
    response.set_lease_seconds(config_.coordinator.lease_seconds);
    response.set_run_seed(config_.run.seed);
  }
  committer_->WaitDurable(sequence);
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> RunCoordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
  const int64_t now = Now();
  WorkerInfo& worker = workers_[request.worker_id()];
  worker.last_heartbeat_ms = now;
  worker.heard_since_start = true;
  ++state_version_;
  if (request.has_stats()) worker.stats = request.stats();
  const int64_t expiry = now + static_cast<int64_t>(config_.coordinator.lease_seconds * 1000);
  v1::HeartbeatResponse response;
  std::function<bool(int64_t, int32_t)> keep;
  std::set<std::pair<int64_t, int32_t>> named;
  const char kind = phase_ == v1::PHASE_PROMPTS ? 'P' : 'G';
  for (const std::string& lease_id : request.lease_ids()) {
    absl::StatusOr<LeaseKey> key = ParseLeaseId(lease_id);
    if (!key.ok()) return key.status();
    if (key->iteration == iteration_ && key->kind == kind) named.insert({key->shard, key->attempt});
  }
  if (request.lease_ids_size() > 0) {
    keep = [&named](int64_t shard, int32_t attempt) { return named.count({shard, attempt}) > 0; };
  }
  std::vector<int64_t> extended = shards_.Extend(request.worker_id(), expiry, keep);
  response.set_leases_extended(static_cast<int32_t>(extended.size()));
  if (!extended.empty()) {
    // Persisted without waiting: a lost extension only shortens a lease after a crash.
    std::vector<std::string> lease_ids;
    for (int64_t shard : extended) {
      lease_ids.push_back(MakeLeaseId(iteration_, kind, shard, shards_.slot(shard).attempt));
    }
    EnqueueLocked({[lease_ids, expiry](SqliteDb& db) {
      SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                            db.Prepare("UPDATE leases SET expiry_ms = ? WHERE lease_id = ? AND state = 'active'"));
      for (const std::string& id : lease_ids) {
        stmt->Reset();
        SRLM_RETURN_IF_ERROR(stmt->Bind(1, expiry).Bind(2, id).Run());
      }
      return absl::OkStatus();
    }});
  }
  response.set_lease_expiry_unix_ms(expiry);
  response.set_iteration(iteration_);
  response.set_phase(phase_);
  response.set_model_dir(model_dir_);
  return response;
}

absl::StatusOr<v1::LeaseShardResponse> RunCoordinator::LeaseShard(const v1::LeaseShardRequest& request) {
  v1::LeaseShardResponse response;
  uint64_t sequence = 0;
  int64_t first_prompt = 0, end_prompt = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
    const WorkerInfo& worker = workers_[request.worker_id()];
    const int64_t now = Now();
    response.set_iteration(iteration_);
    response.set_phase(phase_);
    response.set_model_dir(model_dir_);
    // What the answer shows must be durable before it is sent: another call's transition may be in
    // memory and still committing (a rank told DONE, say, would leave before the run is done on disk).
    sequence = committer_->LastEnqueued();
    may_be_training_.erase(request.worker_id());  // it asks for work, so it is not training
    if (!AnswerStopLocked(request, &response, &sequence)) switch (phase_) {
      case v1::PHASE_SFT:
      case v1::PHASE_TRAIN:
      case v1::PHASE_COMMIT:
        if (checkpoint_dirs_.count(worker.rank)) {
          response.mutable_wait()->set_wait_ms(kWaitMs);
          response.mutable_wait()->set_reason("this rank reported its checkpoint; waiting for the others");
        } else {
          v1::TrainPhase* train = response.mutable_train();
          train->set_iteration(iteration_);
          train->set_phase(TrainingPhaseOf(iteration_, config_));
          train->set_num_pairs(pairs_);
          train->set_model_dir(model_dir_);
          if (!checkpoint_dirs_.empty()) {
            train->set_written_checkpoint_dir(ReportedCheckpointDirLocked());
          } else {
            may_be_training_.insert(request.worker_id());  // it trains: collectives with the others
          }
        }
        break;
      case v1::PHASE_DONE:
        response.mutable_done()->set_final_model_dir(model_dir_);
        break;
      case v1::PHASE_PROMPTS:
      case v1::PHASE_GENERATE:
        sequence = LeaseLocked(request.worker_id(), now, &response, &first_prompt, &end_prompt);
        break;
      default:
        return absl::InternalError("coordinator in an unknown phase");
    }
  }
  committer_->WaitDurable(sequence);
  if (response.has_generate()) {
    SRLM_RETURN_IF_ERROR(ReadShardPrompts(response.iteration(), first_prompt, end_prompt,
                                          response.mutable_generate()));
  }
  return response;
}

absl::Status RunCoordinator::CheckReporterLocked(const v1::ReportCheckpointRequest& request) const {
  // The commit counts ranks: a report must be for the rank and world size the worker registered
  // with, else one rank could complete the others' part of the commit.
  const WorkerInfo& worker = workers_.at(request.worker_id());
  if (request.rank() != worker.rank || request.world_size() != worker.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the report is for rank ", request.rank(), " of ", request.world_size(), " but worker ",
        request.worker_id(), " registered as rank ", worker.rank, " of ", worker.world_size));
  }
  return absl::OkStatus();
}

bool RunCoordinator::IsCurrentWorkerLocked(const std::string& worker_id) const {
  const auto worker = workers_.find(worker_id);
  if (worker == workers_.end()) return false;
  const auto listed = worker_by_rank_.find(worker->second.rank);
  return listed != worker_by_rank_.end() && listed->second == worker_id;
}

bool RunCoordinator::AnswerStopLocked(const v1::LeaseShardRequest& request, v1::LeaseShardResponse* response,
                                      uint64_t* sequence) {
  const bool training_phase = phase_ == v1::PHASE_SFT || phase_ == v1::PHASE_TRAIN;
  if (request.stopping()) {
    if (departed_.insert(request.worker_id()).second) {
      // Durable before the answer: a restart must still keep the launch's other ranks from training.
      *sequence = EnqueueLocked({[worker_id = request.worker_id(), now = Now()](SqliteDb& db) {
        SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                              db.Prepare("INSERT OR IGNORE INTO departures(worker_id, departed_ms) VALUES(?, ?)"));
        return stmt->Bind(1, worker_id).Bind(2, now).Run();
      }});
    }
    const bool others_train = training_phase && absl::c_any_of(may_be_training_, [&](const std::string& id) {
                                return IsCurrentWorkerLocked(id);
                              });
    v1::StopWork* stop = response->mutable_stop();
    stop->set_end_job(others_train);
    stop->set_reason(others_train ? "other ranks of this launch are training and would wait for this one"
                                  : "stop requested");
    SRLM_LOG(INFO) << "worker " << request.worker_id() << " (rank " << workers_[request.worker_id()].rank
                   << ") leaves on a stop request" << (others_train ? ", ending the job: others are training" : "");
    return true;
  }
  // Training needs every rank: once one has left, no other rank of the launch starts training.
  if (!training_phase) return false;
  for (const std::string& gone : departed_) {
    if (!IsCurrentWorkerLocked(gone)) continue;  // a relaunch registered its rank again
    response->mutable_stop()->set_reason(absl::StrCat("rank ", workers_[gone].rank,
                                                      " of this launch has stopped, and training needs every rank"));
    return true;
  }
  return false;
}

// A PROMPTS or GENERATE answer: a lease of the next shard, or a wait when every shard is leased or
// done. Returns the sequence to wait for before answering.
uint64_t RunCoordinator::LeaseLocked(const std::string& worker_id, int64_t now, v1::LeaseShardResponse* out,
                                     int64_t* first_prompt, int64_t* end_prompt) {
  v1::LeaseShardResponse& response = *out;
  const bool prompts = phase_ == v1::PHASE_PROMPTS;
  const char kind = prompts ? 'P' : 'G';
  if (!shards_.ExpireLeases(now).empty()) ++state_version_;
  if (prompts && shards_.waiting() == 0) {
    const int64_t wanted = config_.prompts.per_iteration;
    const int64_t shard_size = std::max<int64_t>(1, config_.prompts.shard_size);
    const int64_t budget = kPromptShardBudget * ((wanted + shard_size - 1) / shard_size);
    // Held shards count as supply: their prompts (at most a shard's worth each) are coming.
    const int64_t held_supply = std::min(prompt_order_.held_prompts(), prompt_order_.held() * shard_size);
    if (prompts_accepted_ + shards_.leased() * shard_size + held_supply < wanted &&
        shards_.total() < budget) {
      shards_.AddShard();
    }
  }
  const int64_t expiry = now + static_cast<int64_t>(config_.coordinator.lease_seconds * 1000);
  std::optional<int64_t> shard = shards_.LeaseNext(worker_id, expiry);
  if (!shard) {
    response.mutable_wait()->set_wait_ms(kWaitMs);
    response.mutable_wait()->set_reason(absl::StrCat("every shard of ", v1::Phase_Name(phase_),
                                                     " is leased or done"));
    return committer_->LastEnqueued();
  }
  const int32_t attempt = shards_.slot(*shard).attempt;
  const std::string lease_id = MakeLeaseId(iteration_, kind, *shard, attempt);
  v1::ShardLease* lease = response.mutable_lease();
  lease->set_shard_id(*shard);
  lease->set_lease_id(lease_id);
  lease->set_attempt(attempt);
  lease->set_expiry_unix_ms(expiry);
  lease->set_iteration(iteration_);
  const int64_t seed = ShardSeed(iteration_, kind, *shard);
  if (prompts) {
    response.mutable_prompts()->set_num_prompts(std::max<int64_t>(1, config_.prompts.shard_size));
    response.mutable_prompts()->set_seed(static_cast<uint64_t>(seed));
  } else {
    response.mutable_generate()->set_seed(static_cast<uint64_t>(seed));
    *first_prompt = *shard * generate_shard_size_;
    *end_prompt = std::min(pool_size_, *first_prompt + generate_shard_size_);
  }
  std::vector<GroupCommitter::Write> writes;
  writes.push_back([lease_id, iteration = iteration_, kind, shard = *shard, attempt,
                    worker_id, expiry](SqliteDb& db) {
    if (attempt > 1) {
      SRLM_ASSIGN_OR_RETURN(Statement * older,
                            db.Prepare("UPDATE leases SET state = 'released' WHERE iteration = ? AND "
                                       "kind = ? AND shard_id = ? AND state = 'active'"));
      SRLM_RETURN_IF_ERROR(older->Bind(1, iteration).Bind(2, std::string(1, kind)).Bind(3, shard).Run());
    }
    SRLM_ASSIGN_OR_RETURN(Statement * insert,
                          db.Prepare("INSERT INTO leases(lease_id, iteration, kind, shard_id, attempt, "
                                     "worker_id, expiry_ms, state) VALUES(?, ?, ?, ?, ?, ?, ?, 'active')"));
    return insert->Bind(1, lease_id).Bind(2, iteration).Bind(3, std::string(1, kind)).Bind(4, shard)
        .Bind(5, int64_t{attempt}).Bind(6, worker_id).Bind(7, expiry).Run();
  });
  return EnqueueLocked(std::move(writes));
}

absl::Status RunCoordinator::ReadShardPrompts(int64_t iteration, int64_t first, int64_t end,
                                              v1::GenerateShard* shard) {
  std::lock_guard<std::mutex> lock(reader_mutex_);
  SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                        reader_db_->Prepare("SELECT prompt_id, text FROM prompts WHERE iteration = ? "
                                            "AND prompt_id >= ? AND prompt_id < ? ORDER BY prompt_id"));
  stmt->Bind(1, iteration).Bind(2, first).Bind(3, end);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    v1::PoolPrompt* prompt = shard->add_prompts();
    prompt->set_prompt_id(stmt->ColumnInt(0));
    prompt->set_text(stmt->ColumnText(1));
  }
  stmt->Reset();
  if (shard->prompts_size() != end - first) {
    return absl::DataLossError(absl::StrCat("iteration ", iteration, ": prompts [", first, ", ", end,
                                            ") missing from the pool"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SubmitShardResponse> RunCoordinator::SubmitShard(
    const v1::SubmitShardRequest& request) {
  SRLM_ASSIGN_OR_RETURN(LeaseKey key, ParseLeaseId(request.lease_id()));
  if (request.result_case() == v1::SubmitShardRequest::RESULT_NOT_SET) {
    return absl::InvalidArgumentError("submission carries neither prompts nor generate results");
  }
  if ((key.kind == 'P') != (request.result_case() == v1::SubmitShardRequest::kPrompts)) {
    return absl::InvalidArgumentError(absl::StrCat("lease ", request.lease_id(), " is a ",
                                                   key.kind == 'P' ? "PROMPTS" : "GENERATE",
                                                   " lease but the submission carries the other kind"));
  }
  uint64_t sequence = 0;
  absl::StatusOr<v1::SubmitShardResponse> response;
  bool look_up_finished_phase = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
    const char current_kind = phase_ == v1::PHASE_PROMPTS ? 'P' : phase_ == v1::PHASE_GENERATE ? 'G' : 0;
    if (key.iteration != iteration_ || key.kind != current_kind) {
      look_up_finished_phase = true;
      sequence = committer_->LastEnqueued();
    } else {
      switch (shards_.Check(key.shard, key.attempt)) {
        case SubmissionCheck::kUnknown:
          return absl::NotFoundError(absl::StrCat("unknown lease ", request.lease_id()));
        case SubmissionCheck::kHandedOn:
          return absl::FailedPreconditionError(absl::StrCat(
              "lease ", request.lease_id(), " expired and its shard was handed on (attempt ",
              shards_.slot(key.shard).attempt, ")"));
        case SubmissionCheck::kDoneByOther:
          return absl::FailedPreconditionError(absl::StrCat(
              "shard ", key.shard, " was completed by attempt ", shards_.slot(key.shard).completed_attempt,
              "; lease ", request.lease_id(), " is void"));
        case SubmissionCheck::kDuplicate: {
          v1::SubmitShardResponse duplicate;
          duplicate.set_duplicate(true);
          duplicate.set_iteration(iteration_);
          duplicate.set_phase(phase_);
          response = duplicate;
          sequence = committer_->LastEnqueued();  // the first copy may still be committing
          break;
        }
        case SubmissionCheck::kAccept:
          // Lease ids are predictable: only the holder may complete a live lease (the worker takes
          // FAILED_PRECONDITION as "result no longer wanted").
          if (const std::string& holder = shards_.slot(key.shard).worker_id; holder != request.worker_id()) {
            return absl::FailedPreconditionError(absl::StrCat("lease ", request.lease_id(), " is held by worker ",
                                                              holder, ", not ", request.worker_id()));
          }
          response = key.kind == 'P' ? SubmitPromptsLocked(request, key.shard, key.attempt, &sequence)
                                     : SubmitGenerateLocked(request, key.shard, key.attempt, &sequence);
          if (!response.ok()) return response.status();
          break;
      }
    }
  }
  committer_->WaitDurable(sequence);
  if (!look_up_finished_phase) return response;
  // The lease belongs to a finished phase: OK only if this very lease's result was accepted.
  std::string state;
  {
    std::lock_guard<std::mutex> lock(reader_mutex_);
    SRLM_ASSIGN_OR_RETURN(Statement * stmt, reader_db_->Prepare("SELECT state FROM leases WHERE lease_id = ?"));
    stmt->Bind(1, request.lease_id());
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (row) state = stmt->ColumnText(0);
    stmt->Reset();
  }
  if (state.empty()) return absl::NotFoundError(absl::StrCat("unknown lease ", request.lease_id()));
  v1::SubmitShardResponse duplicate;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    duplicate.set_duplicate(true);
    duplicate.set_iteration(iteration_);
    duplicate.set_phase(phase_);
    // The phase shown may come from another call's transition still committing: shown once durable.
    sequence = committer_->LastEnqueued();
  }
  committer_->WaitDurable(sequence);
  if (state == "completed") return duplicate;
  return absl::FailedPreconditionError(absl::StrCat(
      "lease ", request.lease_id(), " belongs to a phase that has ended (the run is at iteration ",
      duplicate.iteration(), ", ", v1::Phase_Name(duplicate.phase()), ")"));
}

absl::StatusOr<v1::SubmitShardResponse> RunCoordinator::SubmitPromptsLocked(
    const v1::SubmitShardRequest& request, int64_t shard, int32_t attempt, uint64_t* sequence) {
  const int64_t now = Now();
  const int64_t wanted = config_.prompts.per_iteration;
  shards_.Complete(shard);
  workers_[request.worker_id()].shards_submitted++;
  ShardSubmission submission{shard, request.lease_id(),
                             {request.prompts().prompts().begin(), request.prompts().prompts().end()}};
  // A shard ahead of the order is held: its prompts are stored until the missing one arrives.
  std::vector<std::string> held_prompts;
  if (shard != prompt_order_.next_shard()) held_prompts = submission.prompts;
  std::vector<ShardSubmission> released = prompt_order_.Add(std::move(submission));
  // What the filter did with each released shard, for its lease row and the response.
  struct Entered {
    std::string lease_id;
    int64_t shard = 0;
    std::vector<std::pair<int64_t, std::string>> accepted;  // (prompt id, text)
    int64_t duplicate = 0, near_duplicate = 0, length = 0;
  };
  std::vector<Entered> entered;
  v1::SubmitShardResponse response;
  for (const ShardSubmission& next : released) {
    Entered shard_entered{next.lease_id, next.shard, {}};
    for (const std::string& text : next.prompts) {
      if (prompts_accepted_ >= wanted) break;  // the pool is full; the rest is surplus
      switch (prompt_filter_->Offer(text)) {
        case PromptVerdict::kAccepted:
          shard_entered.accepted.emplace_back(prompts_accepted_++, std::string(TrimPrompt(text)));
          break;
        case PromptVerdict::kDuplicate: ++shard_entered.duplicate; break;
        case PromptVerdict::kNearDuplicate: ++shard_entered.near_duplicate; break;
        case PromptVerdict::kLength: ++shard_entered.length; break;
      }
    }
    response.set_prompts_accepted(response.prompts_accepted() + shard_entered.accepted.size());
    response.set_prompts_dropped_duplicate(response.prompts_dropped_duplicate() + shard_entered.duplicate);
    response.set_prompts_dropped_near_duplicate(response.prompts_dropped_near_duplicate() +
                                                shard_entered.near_duplicate);
    response.set_prompts_dropped_length(response.prompts_dropped_length() + shard_entered.length);
    entered.push_back(std::move(shard_entered));
  }
  dropped_duplicate_ += response.prompts_dropped_duplicate();
  dropped_near_duplicate_ += response.prompts_dropped_near_duplicate();
  dropped_length_ += response.prompts_dropped_length();
  phase_rate_.Record(now, prompts_accepted_);
  std::vector<GroupCommitter::Write> writes;
  writes.push_back([iteration = iteration_, shard, lease_id = request.lease_id(), held_prompts, entered,
                    now](SqliteDb& db) {
    SRLM_ASSIGN_OR_RETURN(Statement * completed,
                          db.Prepare("UPDATE leases SET state = 'completed', completed_ms = ? WHERE lease_id = ?"));
    SRLM_RETURN_IF_ERROR(completed->Bind(1, now).Bind(2, lease_id).Run());
    SRLM_ASSIGN_OR_RETURN(Statement * hold,
                          db.Prepare("INSERT INTO held_prompts(iteration, shard_id, position, lease_id, text) "
                                     "VALUES(?, ?, ?, ?, ?)"));
    for (size_t i = 0; i < held_prompts.size(); ++i) {
      hold->Reset();
      SRLM_RETURN_IF_ERROR(hold->Bind(1, iteration).Bind(2, shard).Bind(3, static_cast<int64_t>(i))
                               .Bind(4, lease_id).Bind(5, held_prompts[i]).Run());
    }
    SRLM_ASSIGN_OR_RETURN(Statement * insert,
                          db.Prepare("INSERT INTO prompts(iteration, prompt_id, text, lease_id) VALUES(?, ?, ?, ?)"));
    SRLM_ASSIGN_OR_RETURN(Statement * counts,
                          db.Prepare("UPDATE leases SET prompts_accepted = prompts_accepted + ?, "
                                     "dropped_duplicate = dropped_duplicate + ?, dropped_near_duplicate = "
                                     "dropped_near_duplicate + ?, dropped_length = dropped_length + ? "
                                     "WHERE lease_id = ?"));
    SRLM_ASSIGN_OR_RETURN(Statement * unhold,
                          db.Prepare("DELETE FROM held_prompts WHERE iteration = ? AND shard_id = ?"));
    for (const Entered& shard_entered : entered) {
      for (const auto& [id, text] : shard_entered.accepted) {
        insert->Reset();
        SRLM_RETURN_IF_ERROR(
            insert->Bind(1, iteration).Bind(2, id).Bind(3, text).Bind(4, shard_entered.lease_id).Run());
      }
      counts->Reset();
      SRLM_RETURN_IF_ERROR(counts->Bind(1, static_cast<int64_t>(shard_entered.accepted.size()))
                               .Bind(2, shard_entered.duplicate).Bind(3, shard_entered.near_duplicate)
                               .Bind(4, shard_entered.length).Bind(5, shard_entered.lease_id).Run());
      unhold->Reset();
      SRLM_RETURN_IF_ERROR(unhold->Bind(1, iteration).Bind(2, shard_entered.shard).Run());
    }
    return absl::OkStatus();
  });
  if (PromptsPhaseCompleteLocked()) StartGenerateLocked(&writes);  // drops surplus held shards
  *sequence = EnqueueLocked(std::move(writes));
  response.set_shards_held(prompt_order_.held());
  response.set_iteration(iteration_);
  response.set_phase(phase_);
  return response;
}

absl::StatusOr<v1::SubmitShardResponse> RunCoordinator::SubmitGenerateLocked(
    const v1::SubmitShardRequest& request, int64_t shard, int32_t attempt, uint64_t* sequence) {
  const int64_t first = shard * generate_shard_size_;
  const int64_t end = std::min(pool_size_, first + generate_shard_size_);
  const v1::GenerateResult& submitted = request.generate();
  if (submitted.results_size() != end - first) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", shard, " holds ", end - first,
                                                   " prompts but the submission has ",
                                                   submitted.results_size(), " results"));
  }
  std::vector<v1::PromptResult> results(submitted.results().begin(), submitted.results().end());
  std::vector<bool> seen(end - first, false);
  for (v1::PromptResult& result : results) {
    const int64_t id = result.prompt_id();
    if (id < first || id >= end) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_id ", id, " is not in shard ", shard,
                                                     " (prompts ", first, "..", end - 1, ")"));
    }
    if (seen[id - first]) return absl::InvalidArgumentError(absl::StrCat("prompt_id ", id, " appears twice"));
    seen[id - first] = true;
    SRLM_RETURN_IF_ERROR(ValidatePromptResult(&result));
  }
  // Valid: apply.
  const int64_t now = Now();
  v1::SubmitShardResponse response;
  for (const v1::PromptResult& result : results) {
    CountResultLocked(result.candidates_size(), result.judgements_size(), result.has_pair(), result.drop_reason());
    response.set_pairs_accepted(response.pairs_accepted() + (result.has_pair() ? 1 : 0));
    AddScoresLocked(result);
  }
  response.set_results_accepted(static_cast<int64_t>(results.size()));
  shards_.Complete(shard);
  workers_[request.worker_id()].shards_submitted++;
  phase_rate_.Record(now, results_accepted_);
  std::vector<GroupCommitter::Write> writes;
  writes.push_back([iteration = iteration_, shard, lease_id = request.lease_id(),
                    worker_id = request.worker_id(), results = std::move(results), now](SqliteDb& db) {
    SRLM_ASSIGN_OR_RETURN(
        Statement * insert,
        db.Prepare("INSERT INTO results(iteration, prompt_id, shard_id, lease_id, worker_id, has_pair, "
                   "drop_reason, chosen, rejected, chosen_score, rejected_score, ref_chosen_logprob, "
                   "ref_rejected_logprob, chosen_num_tokens, rejected_num_tokens, num_candidates, "
                   "num_judgements, mean_scores, detail, accepted_ms) "
                   "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    std::string detail;
    for (const v1::PromptResult& result : results) {
      insert->Reset();
      insert->Bind(1, iteration).Bind(2, result.prompt_id()).Bind(3, shard).Bind(4, lease_id)
          .Bind(5, worker_id).Bind(6, int64_t{result.has_pair()}).Bind(7, int64_t{result.drop_reason()});
      if (result.has_pair()) {
        const v1::PreferencePair& pair = result.pair();
        insert->Bind(8, pair.chosen()).Bind(9, pair.rejected()).Bind(10, pair.chosen_score())
            .Bind(11, pair.rejected_score()).Bind(12, pair.ref_chosen_logprob())
            .Bind(13, pair.ref_rejected_logprob()).Bind(14, pair.chosen_num_tokens())
            .Bind(15, pair.rejected_num_tokens());
      }
      detail.clear();
      result.SerializeToString(&detail);
      insert->Bind(16, int64_t{result.candidates_size()}).Bind(17, int64_t{result.judgements_size()})
          .Bind(18, MeanScoresText(result.mean_scores())).BindBlob(19, detail).Bind(20, now);
      SRLM_RETURN_IF_ERROR(insert->Run());
    }
    SRLM_ASSIGN_OR_RETURN(Statement * lease,
                          db.Prepare("UPDATE leases SET state = 'completed', completed_ms = ? WHERE lease_id = ?"));
    return lease->Bind(1, now).Bind(2, lease_id).Run();
  });
  if (shards_.done() == shards_.total()) FinishGenerateLocked(&writes);
  *sequence = EnqueueLocked(std::move(writes));
  response.set_iteration(iteration_);
  response.set_phase(phase_);
  return response;
}

absl::Status RunCoordinator::StreamPairs(const v1::StreamPairsRequest& request,
                                         const std::function<bool(const v1::TrainingPair&)>& emit) {
  if (request.world_size() < 1) return absl::InvalidArgumentError("world_size must be >= 1");
  if (request.rank() < 0 || request.rank() >= request.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", request.rank(), " is outside [0, ",
                                                   request.world_size(), ")"));
  }
  uint64_t sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
    const bool frozen = request.iteration() < iteration_ ||
                        (request.iteration() == iteration_ &&
                         (phase_ == v1::PHASE_TRAIN || phase_ == v1::PHASE_COMMIT || phase_ == v1::PHASE_SFT));
    if (request.iteration() < 0 || !frozen) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the pairs of iteration ", request.iteration(), " are not frozen (the run is at iteration ",
          iteration_, ", ", v1::Phase_Name(phase_), ")"));
    }
    sequence = committer_->LastEnqueued();
  }
  committer_->WaitDurable(sequence);  // the freeze (positions) has committed
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                        SqliteDb::Open(database_path(), SqliteDb::Mode::kReadOnly));
  SRLM_RETURN_IF_ERROR(db->Exec("BEGIN"));  // one snapshot for the count and the rows
  SRLM_ASSIGN_OR_RETURN(int64_t total,
                        db->QueryInt(absl::StrCat("SELECT COUNT(*) FROM results WHERE iteration = ",
                                                  request.iteration(), " AND position IS NOT NULL"), 0));
  SRLM_ASSIGN_OR_RETURN(
      Statement * stmt,
      db->Prepare("SELECT r.position, r.prompt_id, p.text, r.chosen, r.rejected, r.chosen_score, "
                  "r.rejected_score, r.ref_chosen_logprob, r.ref_rejected_logprob, r.chosen_num_tokens, "
                  "r.rejected_num_tokens FROM results r JOIN prompts p ON p.iteration = r.iteration AND "
                  "p.prompt_id = r.prompt_id WHERE r.iteration = ? AND r.position IS NOT NULL AND "
                  "r.position % ? = ? ORDER BY r.position"));
  stmt->Bind(1, request.iteration()).Bind(2, int64_t{request.world_size()}).Bind(3, int64_t{request.rank()});
  v1::TrainingPair pair;
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    pair.set_position(stmt->ColumnInt(0));
    pair.set_total(total);
    pair.set_prompt_id(stmt->ColumnInt(1));
    pair.set_prompt(stmt->ColumnText(2));
    pair.set_chosen(stmt->ColumnText(3));
    pair.set_rejected(stmt->ColumnText(4));
    pair.set_chosen_score(stmt->ColumnDouble(5));
    pair.set_rejected_score(stmt->ColumnDouble(6));
    pair.set_ref_chosen_logprob(stmt->ColumnDouble(7));
    pair.set_ref_rejected_logprob(stmt->ColumnDouble(8));
    pair.set_chosen_num_tokens(stmt->ColumnInt(9));
    pair.set_rejected_num_tokens(stmt->ColumnInt(10));
    if (!emit(pair)) break;
  }
  stmt->Reset();
  return db->Exec("COMMIT");
}

absl::StatusOr<v1::ReportTrainStepResponse> RunCoordinator::ReportTrainStep(
    const v1::ReportTrainStepRequest& request) {
  if (request.step() < 0 || request.total_steps() < 0) {
    return absl::InvalidArgumentError("step and total_steps must be >= 0");
  }
  if (request.tokens() < 0) return absl::InvalidArgumentError("tokens must be >= 0");
  // A step that every rank skipped for a non-finite gradient may carry a non-finite loss. It moves
  // the step shown on, keeps the last finite loss, and is not stored: train_steps.loss is REAL NOT
  // NULL, SQLite stores NaN as NULL, and a commit that fails ends the coordinator.
  const bool finite_loss = Finite(request.loss());
  v1::ReportTrainStepResponse response;
  uint64_t sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
    if (request.iteration() != iteration_ ||
        (phase_ != v1::PHASE_SFT && phase_ != v1::PHASE_TRAIN && phase_ != v1::PHASE_COMMIT)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "iteration ", request.iteration(), " is not training (the run is at iteration ", iteration_,
          ", ", v1::Phase_Name(phase_), ")"));
    }
    const int64_t now = Now();
    if (request.step() >= train_step_) {
      train_step_ = request.step();
      train_total_steps_ = request.total_steps();
      if (finite_loss) train_loss_ = request.loss();
    }
    phase_rate_.Record(now, train_step_);
    response.set_iteration(iteration_);
    response.set_phase(phase_);
    if (!finite_loss) {
      ++state_version_;  // status shows the new step
      return response;
    }
    std::string metrics;
    for (const auto& [name, value] : request.metrics()) absl::StrAppend(&metrics, name, "=", value, " ");
    sequence = EnqueueLocked({[request, metrics, now](SqliteDb& db) {
      SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                            db.Prepare("INSERT INTO train_steps(iteration, step, total_steps, worker_id, loss, "
                                       "metrics, tokens, reported_ms) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
      return stmt->Bind(1, request.iteration()).Bind(2, request.step()).Bind(3, request.total_steps())
          .Bind(4, request.worker_id()).Bind(5, request.loss()).Bind(6, metrics).Bind(7, request.tokens())
          .Bind(8, now).Run();
    }});
  }
  committer_->WaitDurable(sequence);
  return response;
}

absl::StatusOr<v1::ReportCheckpointResponse> RunCoordinator::ReportCheckpoint(
    const v1::ReportCheckpointRequest& request) {
  if (request.world_size() < 1) return absl::InvalidArgumentError("world_size must be >= 1");
  if (request.rank() < 0 || request.rank() >= request.world_size()) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", request.rank(), " is outside [0, ",
                                                   request.world_size(), ")"));
  }
  if (request.checkpoint_dir().empty()) return absl::InvalidArgumentError("checkpoint_dir is empty");
  if (request.eval_correct() < 0 || request.eval_correct() > request.eval_total()) {
    return absl::InvalidArgumentError(absl::StrCat("eval_correct ", request.eval_correct(), " is outside [0, eval_total ",
                                                   request.eval_total(), "]"));
  }
  // Stored as M_{t+1} for every rank and every later resume: a relative path would depend on the
  // working directory of whoever reads it.
  if (request.checkpoint_dir()[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint_dir '", request.checkpoint_dir(), "' is not an absolute path"));
  }
  v1::ReportCheckpointResponse response;
  uint64_t sequence;
  // A refusal that reads the run's state (the iteration, the rank's registration) is durable too
  // before it is sent: the transition it saw may still be committing.
  absl::Status refusal;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SRLM_RETURN_IF_ERROR(CheckWorkerLocked(request.worker_id()));
    SRLM_RETURN_IF_ERROR(CheckReporterLocked(request));
    sequence = committer_->LastEnqueued();  // what every answer but a new report shows
    auto fill = [&] {
      response.set_iteration(iteration_);
      response.set_phase(phase_);
      response.set_ranks_reported(static_cast<int32_t>(checkpoint_dirs_.size()));
      response.set_world_size(checkpoint_world_size_ > 0 ? checkpoint_world_size_ : request.world_size());
      response.set_model_dir(model_dir_);
    };
    if (request.iteration() < iteration_) {  // committed already: a retry after the commit
      response.set_committed(true);
      fill();
    } else if (request.iteration() > iteration_ ||
               (phase_ != v1::PHASE_SFT && phase_ != v1::PHASE_TRAIN && phase_ != v1::PHASE_COMMIT)) {
      refusal = absl::FailedPreconditionError(absl::StrCat(
          "iteration ", request.iteration(), " has nothing to checkpoint (the run is at iteration ",
          iteration_, ", ", v1::Phase_Name(phase_), ")"));
    } else if (!IsCurrentWorkerLocked(request.worker_id())) {
      // A relaunch registered the rank again (or a smaller launch dropped it): the old process's
      // report would stand for a rank whose current process has not reported.
      refusal = absl::FailedPreconditionError(absl::StrCat(
          "worker ", request.worker_id(), " is no longer rank ", request.rank(),
          "'s registration (the rank was registered again, or a smaller launch replaced it)"));
    } else if (checkpoint_world_size_ > 0 && checkpoint_world_size_ != request.world_size()) {
      refusal = absl::FailedPreconditionError(absl::StrCat(
          "world_size ", request.world_size(), " differs from the ", checkpoint_world_size_,
          " of the ranks that already reported iteration ", iteration_));
    } else {
      const int64_t now = Now();
      checkpoint_world_size_ = request.world_size();
      checkpoint_dirs_[request.rank()] = request.checkpoint_dir();
      evaluations_[request.rank()] = {request.eval_correct(), request.eval_total()};
      std::vector<GroupCommitter::Write> writes;
      writes.push_back([request, now](SqliteDb& db) {
        SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                              db.Prepare("INSERT OR REPLACE INTO checkpoints(iteration, rank, world_size, dir, "
                                         "worker_id, reported_ms) VALUES(?, ?, ?, ?, ?, ?)"));
        SRLM_RETURN_IF_ERROR(stmt->Bind(1, request.iteration()).Bind(2, int64_t{request.rank()})
            .Bind(3, int64_t{request.world_size()}).Bind(4, request.checkpoint_dir())
            .Bind(5, request.worker_id()).Bind(6, now).Run());
        SRLM_ASSIGN_OR_RETURN(Statement * eval,
                              db.Prepare("INSERT OR REPLACE INTO evaluations(iteration, rank, correct, total) "
                                         "VALUES(?, ?, ?, ?)"));
        return eval->Bind(1, request.iteration()).Bind(2, int64_t{request.rank()})
            .Bind(3, request.eval_correct()).Bind(4, request.eval_total()).Run();
      });
      if (static_cast<int32_t>(checkpoint_dirs_.size()) == checkpoint_world_size_) {
        // Every rank holds the checkpoint durable: commit the iteration.
        const int64_t committed = iteration_;
        const std::string dir = ReportedCheckpointDirLocked();
        response.set_ranks_reported(checkpoint_world_size_);
        v1::IterationSummary& summary = committed_iterations_.emplace_back();
        summary.set_iteration(committed);
        summary.set_prompts(prompts_accepted_);
        summary.set_results(results_accepted_);
        summary.set_pairs(pairs_);
        summary.set_dropped_ties(ties_);
        summary.set_dropped_unparsable(unparsable_);
        summary.set_dropped_too_long(too_long_);
        summary.set_dropped_too_few_answers(too_few_answers_);
        for (const auto& [rank, counts] : evaluations_) {
          summary.set_eval_correct(summary.eval_correct() + counts.first);
          summary.set_eval_total(summary.eval_total() + counts.second);
        }
        summary.set_train_loss(train_loss_);
        summary.set_model_dir(dir);
        summary.set_committed_unix_ms(now);
        model_dir_ = dir;
        ++iteration_;
        writes.push_back([committed, dir, now](SqliteDb& db) {
          SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                                db.Prepare("INSERT OR REPLACE INTO commits(iteration, model_dir, committed_ms) "
                                           "VALUES(?, ?, ?)"));
          return stmt->Bind(1, committed).Bind(2, dir).Bind(3, now).Run();
        });
        SetPhaseLocked(iteration_ > config_.run.iterations ? v1::PHASE_DONE : v1::PHASE_PROMPTS, &writes);
        response.set_committed(true);
        response.set_iteration(iteration_);
        response.set_phase(phase_);
        response.set_world_size(request.world_size());
        response.set_model_dir(model_dir_);
      } else {
        if (phase_ != v1::PHASE_COMMIT) SetPhaseLocked(v1::PHASE_COMMIT, &writes);
        fill();
      }
      sequence = EnqueueLocked(std::move(writes));
    }
  }
  committer_->WaitDurable(sequence);
  if (!refusal.ok()) return refusal;
  return response;
}

int64_t RunCoordinator::LastPhaseChange() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return phase_change_sequence_;
}

std::vector<RunCoordinator::PhaseChange> RunCoordinator::WaitForPhaseChanges(
    int64_t after_sequence, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mutex_);
  phase_changed_.wait_until(lock, deadline, [&] { return phase_change_sequence_ > after_sequence; });
  std::vector<PhaseChange> changes;
  for (const PhaseChange& change : phase_changes_) {
    if (change.sequence > after_sequence) changes.push_back(change);
  }
  return changes;
}

v1::GetStatusResponse RunCoordinator::GetStatus() {
  v1::GetStatusResponse answer;
  uint64_t sequence = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    answer = StatusLocked();
    sequence = committer_->LastEnqueued();
  }
  // Only durable state is shown: a transition still committing could be undone by a crash, and a
  // watcher would then have seen a phase or a worker that the restarted coordinator never had.
  committer_->WaitDurable(sequence);
  return answer;
}

const v1::GetStatusResponse& RunCoordinator::StatusLocked() {
  const int64_t now = Now();
  if (!shards_.ExpireLeases(now).empty()) ++state_version_;
  if (cached_status_version_ == state_version_ && now - cached_status_ms_ < 100 && now >= cached_status_ms_) {
    cached_status_.set_server_time_unix_ms(now);
    return cached_status_;
  }
  v1::GetStatusResponse& status = cached_status_;
  status.Clear();
  cached_status_version_ = state_version_;
  cached_status_ms_ = now;
  status.set_iteration(iteration_);
  status.set_phase(phase_);
  status.set_run_id(run_id_);
  status.set_total_iterations(config_.run.iterations);
  status.set_model_dir(model_dir_);
  v1::ShardCounts* shards = status.mutable_shards();
  shards->set_total(shards_.total());
  shards->set_done(shards_.done());
  shards->set_leased(shards_.leased());
  shards->set_waiting(shards_.waiting());
  shards->set_held(prompt_order_.held());
  status.set_prompts_wanted(config_.prompts.per_iteration);
  status.set_prompts_accepted(prompts_accepted_);
  status.set_prompts_dropped_duplicate(dropped_duplicate_);
  status.set_prompts_dropped_near_duplicate(dropped_near_duplicate_);
  status.set_prompts_dropped_length(dropped_length_);
  status.set_candidates(candidates_);
  status.set_judgements(judgements_);
  status.set_pairs(pairs_);
  status.set_dropped_ties(ties_);
  status.set_dropped_unparsable(unparsable_);
  status.set_dropped_too_long(too_long_);
  status.set_dropped_too_few_answers(too_few_answers_);
  for (int64_t count : score_histogram_) status.add_score_histogram(count);
  status.set_score_min(config_.judge.min_score);
  status.set_score_max(config_.judge.max_score);
  status.set_results_accepted(results_accepted_);
  for (const v1::IterationSummary& summary : committed_iterations_) *status.add_committed_iterations() = summary;
  double tokens_per_second = 0;
  const int64_t alive_ms = static_cast<int64_t>(3000 * config_.coordinator.heartbeat_seconds);
  for (const auto& [id, worker] : workers_) {
    auto listed = worker_by_rank_.find(worker.rank);
    if (listed == worker_by_rank_.end() || listed->second != id) continue;  // superseded (a relaunch)
    v1::WorkerStatus* w = status.add_workers();
    w->set_worker_id(id);
    w->set_hostname(worker.hostname);
    w->set_rank(worker.rank);
    w->set_device(worker.device);
    // A worker of before a coordinator restart has not been heard from yet: no heartbeat time (0),
    // rather than the restart's, which made a dead rank look alive.
    w->set_last_heartbeat_unix_ms(worker.heard_since_start ? worker.last_heartbeat_ms : 0);
    w->set_tokens_per_second(worker.stats.tokens_per_second());
    w->set_tokens_generated(worker.stats.tokens_generated());
    w->set_shards_submitted(worker.shards_submitted);
    w->set_leases_held(shards_.LeasesHeldBy(id));
    w->set_activity(worker.stats.activity());
    // The worker's own count at its last heartbeat, plus the time since (no clock skew between hosts).
    w->set_activity_seconds(worker.stats.seconds_since_progress() + (now - worker.last_heartbeat_ms) / 1000.0);
    if (worker.heard_since_start && now - worker.last_heartbeat_ms <= alive_ms) {
      tokens_per_second += worker.stats.tokens_per_second();
    }
  }
  status.set_tokens_per_second(tokens_per_second);
  double done = 0, total = 0;
  switch (phase_) {
    case v1::PHASE_PROMPTS: done = prompts_accepted_; total = config_.prompts.per_iteration; break;
    case v1::PHASE_GENERATE:
      done = results_accepted_;
      total = pool_size_;
      status.set_results_per_second(phase_rate_.Rate());
      break;
    case v1::PHASE_SFT:
    case v1::PHASE_TRAIN: done = train_step_; total = train_total_steps_; break;
    case v1::PHASE_COMMIT:
      done = checkpoint_dirs_.size();
      total = checkpoint_world_size_;
      break;
    case v1::PHASE_DONE: done = total = 1; break;
    default: break;
  }
  status.set_phase_progress(total > 0 ? std::min(1.0, done / total) : 0.0);
  const double rate = phase_rate_.Rate();
  status.set_phase_eta_seconds(total > 0 && rate > 0 ? std::max(0.0, (total - done) / rate)
                               : phase_ == v1::PHASE_DONE ? 0.0 : -1.0);
  status.set_train_step(train_step_);
  status.set_train_total_steps(train_total_steps_);
  status.set_train_loss(train_loss_);
  status.set_ranks_reported(static_cast<int32_t>(checkpoint_dirs_.size()));
  status.set_world_size(checkpoint_world_size_);
  status.set_server_time_unix_ms(now);
  status.set_phase_started_unix_ms(phase_started_ms_);
  return status;
}

absl::Status RunCoordinator::ExportPairs(int64_t iteration,
                                         const std::function<bool(const v1::ExportedPair&)>& emit) {
  if (iteration < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("iteration ", iteration, ": pairs belong to iterations 1 and up (iteration 0 is SFT)"));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (iteration > std::min<int64_t>(iteration_, config_.run.iterations) ||
        (iteration == iteration_ && phase_ == v1::PHASE_PROMPTS)) {
      return absl::NotFoundError(absl::StrCat("iteration ", iteration, " has no pairs: the run has ",
                                              config_.run.iterations, " iteration(s) and is at iteration ",
                                              iteration_, ", ", v1::Phase_Name(phase_)));
    }
    // The pairs are frozen when GENERATE ends; before, an export is a part of them.
    if (iteration == iteration_ && phase_ == v1::PHASE_GENERATE) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the pairs of iteration ", iteration, " are still being generated (", results_accepted_, " of ",
          pool_size_, " prompts' results in); export them once GENERATE has ended (status shows TRAIN)"));
    }
  }
  committer_->WaitDurable(committer_->LastEnqueued());
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                        SqliteDb::Open(database_path(), SqliteDb::Mode::kReadOnly));
  SRLM_RETURN_IF_ERROR(db->Exec("BEGIN"));
  std::string model_dir = config_.model.path;
  {
    SRLM_ASSIGN_OR_RETURN(Statement * stmt, db->Prepare("SELECT model_dir FROM commits WHERE iteration = ?"));
    stmt->Bind(1, iteration - 1);
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (row) model_dir = stmt->ColumnText(0);
    stmt->Reset();
  }
  SRLM_ASSIGN_OR_RETURN(
      Statement * stmt,
      db->Prepare("SELECT r.prompt_id, p.text, r.chosen, r.rejected, r.chosen_score, r.rejected_score, "
                  "r.ref_chosen_logprob, r.ref_rejected_logprob, r.chosen_num_tokens, r.rejected_num_tokens, "
                  "r.shard_id, r.lease_id, r.worker_id, r.accepted_ms, r.mean_scores FROM results r JOIN "
                  "prompts p ON p.iteration = r.iteration AND p.prompt_id = r.prompt_id "
                  "WHERE r.iteration = ? AND r.has_pair = 1 ORDER BY r.prompt_id"));
  stmt->Bind(1, iteration);
  v1::ExportedPair pair;
  while (true) {
    SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (!row) break;
    pair.Clear();
    pair.set_iteration(iteration);
    pair.set_prompt_id(stmt->ColumnInt(0));
    pair.set_prompt(stmt->ColumnText(1));
    pair.set_chosen(stmt->ColumnText(2));
    pair.set_rejected(stmt->ColumnText(3));
    pair.set_chosen_score(stmt->ColumnDouble(4));
    pair.set_rejected_score(stmt->ColumnDouble(5));
    pair.set_ref_chosen_logprob(stmt->ColumnDouble(6));
    pair.set_ref_rejected_logprob(stmt->ColumnDouble(7));
    pair.set_chosen_num_tokens(stmt->ColumnInt(8));
    pair.set_rejected_num_tokens(stmt->ColumnInt(9));
    pair.set_shard_id(stmt->ColumnInt(10));
    pair.set_lease_id(stmt->ColumnText(11));
    absl::StatusOr<LeaseKey> key = ParseLeaseId(pair.lease_id());
    if (key.ok()) pair.set_attempt(key->attempt);
    pair.set_worker_id(stmt->ColumnText(12));
    pair.set_model_dir(model_dir);
    pair.set_accepted_unix_ms(stmt->ColumnInt(13));
    for (absl::string_view piece : absl::StrSplit(stmt->ColumnText(14), ',', absl::SkipEmpty())) {
      double score;
      if (absl::SimpleAtod(piece, &score)) pair.add_candidate_scores(score);
    }
    if (!emit(pair)) break;
  }
  stmt->Reset();
  return db->Exec("COMMIT");
}

}  // namespace srlm::coordinator
