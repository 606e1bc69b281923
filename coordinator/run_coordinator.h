// The run's state machine, knowing nothing of gRPC: registration, heartbeats, shard leases and
// submissions, the frozen pair set, training progress and checkpoint commits, over the iteration
// cycle (SFT at iteration 0) -> PROMPTS -> GENERATE -> TRAIN -> COMMIT -> next iteration or DONE.
// Every transition changes memory under one lock and queues its SQL to the group committer in the
// same critical section; a call returns only after that SQL committed, so an acknowledged
// transition survives a crash. Status counters live in memory, rebuilt from the database at Open;
// a status answer, too, waits until what it shows has committed.
// Thread-safe.
// Implemented in run_coordinator.cc (the phase state machine), run_coordinator_open.cc (Open),
// run_coordinator_restore.cc (the state rebuilt at Open), run_coordinator_leases.cc (workers and
// leases), run_coordinator_submit.cc (SubmitShard), run_coordinator_train.cc (pairs, training
// steps, checkpoints and the commit) and run_coordinator_status.cc (status, phase changes, export).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "coordinator/group_committer.h"
#include "coordinator/prompt_filter.h"
#include "coordinator/rate_meter.h"
#include "coordinator/run_dir_lock.h"
#include "coordinator/seen_prompt_index.h"
#include "coordinator/shard_order.h"
#include "coordinator/shard_pool.h"
#include "coordinator/sqlite_db.h"
#include "srlm/v1/coordinator.pb.h"

namespace srlm::coordinator {

struct RunCoordinatorOptions {
  std::string run_dir;                  // created if missing; holds state.db
  std::optional<RunConfig> config;      // --config; nullopt: the stored one (or defaults, first start)
  bool force_config = false;            // replace a stored config that differs from `config`
  // A new run (nothing stored yet) needs `config`, naming model.path (and data.ift with run.sft);
  // srlm-coordinator sets it, so that a mistyped --run-dir is an error, not a run on defaults.
  bool require_config_for_new_run = false;
  std::function<int64_t()> clock_ms;    // wall clock in Unix ms; default the system clock
  size_t max_writes_per_transaction = 0;  // group commit: 0 unlimited; 1 turns it off (benchmarks)
};

class RunCoordinator {
 public:
  static absl::StatusOr<std::unique_ptr<RunCoordinator>> Open(RunCoordinatorOptions options);
  ~RunCoordinator();

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& request);
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& request);
  // Calls `emit` for each of the rank's pairs in position order; stops early when it returns false.
  absl::Status StreamPairs(const v1::StreamPairsRequest& request,
                           const std::function<bool(const v1::TrainingPair&)>& emit);
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(
      const v1::ReportTrainStepRequest& request);
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(
      const v1::ReportCheckpointRequest& request);
  // The run as it stands, once every transition it shows has committed.
  v1::GetStatusResponse GetStatus();
  // Every phase transition gets the next sequence number; the last kPhaseChangeHistory are kept in
  // memory so that a status stream can send each phase, however short, in order.
  struct PhaseChange {
    int64_t sequence = 0;
    int64_t iteration = 0;
    v1::Phase phase = v1::PHASE_UNSPECIFIED;
  };
  static constexpr size_t kPhaseChangeHistory = 64;
  int64_t LastPhaseChange() const;
  // The transitions after `after_sequence` (oldest first; empty if there were none by `deadline`).
  std::vector<PhaseChange> WaitForPhaseChanges(int64_t after_sequence,
                                               std::chrono::steady_clock::time_point deadline) const;
  // The iteration's accepted pairs in prompt-id order, with provenance.
  absl::Status ExportPairs(int64_t iteration,
                           const std::function<bool(const v1::ExportedPair&)>& emit);

  const RunConfig& config() const { return config_; }
  const std::string& run_dir() const { return run_dir_; }
  std::string database_path() const;
  // Group-commit statistics (transactions, writes).
  uint64_t transactions() const { return committer_->transactions(); }
  uint64_t writes_committed() const { return committer_->writes_committed(); }

 private:
  struct WorkerInfo {
    int32_t rank = 0;
    int32_t world_size = 1;
    std::string hostname, device;
    int64_t pid = 0;
    int64_t last_heartbeat_ms = 0;  // for a worker loaded at a restart: the restart (its lease's grace)
    bool heard_since_start = false;  // registered or heartbeated since this coordinator started
    v1::WorkerStats stats;
    int64_t shards_submitted = 0;
  };

  explicit RunCoordinator(RunCoordinatorOptions options);
  absl::Status Initialize();
  absl::Status LoadPhaseState(SqliteDb& db);
  absl::Status LoadCommittedIterations(SqliteDb& db);
  // Each worker's accepted submissions (its completed leases), for status.
  absl::Status LoadShardsSubmitted(SqliteDb& db);
  // PROMPTS whose pool is complete under the configuration (one replaced by --force-config, say):
  // goes on to GENERATE in Open's transaction.
  absl::Status EndCompletePromptsPhase(SqliteDb& db);
  // PROMPTS: the shards that are done but not yet in the pool, after the shard pool was restored.
  absl::Status LoadHeldPrompts(SqliteDb& db);
  int64_t Now() const { return clock_(); }
  // Whether the run has a PROMPTS phase current or still ahead (its filter needs the seen prompts):
  // not DONE, and in SFT or PROMPTS or below the last iteration.
  bool PromptsPhaseAhead() const;

  // All *Locked methods need mutex_ held.
  void ResetPhaseLocked(v1::Phase phase);
  // The filter of a new prompt pool: the configuration's rules, consulting seen_prompts_. Every
  // filter is built here (a new PROMPTS phase, and the pool's rebuild at Open), so a restarted
  // coordinator gives the verdicts the first would have. Costs nothing per seen prompt.
  std::unique_ptr<PromptFilter> NewPromptFilter() const;
  void SetPhaseLocked(v1::Phase phase, std::vector<GroupCommitter::Write>* writes);
  void StartGenerateLocked(std::vector<GroupCommitter::Write>* writes);
  void FinishGenerateLocked(std::vector<GroupCommitter::Write>* writes);
  bool PromptsPhaseCompleteLocked() const;
  uint64_t EnqueueLocked(std::vector<GroupCommitter::Write> writes);
  absl::Status CheckWorkerLocked(const std::string& worker_id) const;
  void AddScoresLocked(const v1::PromptResult& result);
  // Counts one accepted GENERATE result: a pair, or its drop reason (a tie, too long, too few
  // answers, and anything else with the unparsable), the same live and when rebuilt from the
  // database.
  void CountResultLocked(int64_t candidates, int64_t judgements, bool has_pair, int drop_reason);
  // The checkpoint directory a rank reported for the current iteration (rank 0's when it did).
  const std::string& ReportedCheckpointDirLocked() const;
  // The answer to a stopping rank, or to any rank of a launch that one rank has left (see
  // coordinator.proto StopWork). Returns false when neither applies.
  bool AnswerStopLocked(const v1::LeaseShardRequest& request, v1::LeaseShardResponse* response,
                        uint64_t* sequence);
  // A checkpoint report's rank and world size must be those its worker registered with.
  absl::Status CheckReporterLocked(const v1::ReportCheckpointRequest& request) const;
  // Whether `worker_id` is its rank's latest registration.
  bool IsCurrentWorkerLocked(const std::string& worker_id) const;
  // Builds the status answer (or reuses the cached one); GetStatus waits for it to be durable.
  const v1::GetStatusResponse& StatusLocked();
  absl::StatusOr<v1::SubmitShardResponse> SubmitPromptsLocked(
      const v1::SubmitShardRequest& request, int64_t shard, int32_t attempt, uint64_t* sequence);
  absl::StatusOr<v1::SubmitShardResponse> SubmitGenerateLocked(
      const v1::SubmitShardRequest& request, int64_t shard, int32_t attempt, uint64_t* sequence);
  uint64_t LeaseLocked(const std::string& worker_id, int64_t now, v1::LeaseShardResponse* out, int64_t* first_prompt,
                       int64_t* end_prompt);
  absl::Status ReadShardPrompts(int64_t iteration, int64_t first, int64_t end,
                                v1::GenerateShard* shard);
  int64_t ShardSeed(int64_t iteration, char kind, int64_t shard) const;

  // Fixed at Open.
  std::string run_dir_;
  RunCoordinatorOptions options_;
  std::function<int64_t()> clock_;
  RunConfig config_;
  std::string config_yaml_;
  std::string run_id_;
  std::unique_ptr<RunDirLock> lock_;      // held from Open to destruction
  std::unique_ptr<SqliteDb> writer_db_;   // owned by the committer's thread after Open
  std::unique_ptr<GroupCommitter> committer_;
  std::mutex reader_mutex_;
  std::unique_ptr<SqliteDb> reader_db_;   // lease-time prompt reads
  // The prompts of data.ift and data.eval (seen_prompts.h), indexed once: every prompt filter
  // consults it. Null when the run has no PROMPTS phase left (PromptsPhaseAhead() at Open).
  std::shared_ptr<const SeenPromptIndex> seen_prompts_;

  mutable std::mutex mutex_;
  mutable std::condition_variable phase_changed_;  // notified with mutex_ held by SetPhaseLocked
  std::deque<PhaseChange> phase_changes_;           // the most recent kPhaseChangeHistory
  int64_t phase_change_sequence_ = 0;
  // Run.
  int64_t iteration_ = 0;
  v1::Phase phase_ = v1::PHASE_UNSPECIFIED;
  std::string model_dir_;
  int64_t phase_started_ms_ = 0;
  int64_t next_worker_number_ = 1;
  std::map<std::string, WorkerInfo> workers_;
  std::map<int32_t, std::string> worker_by_rank_;
  // Workers that left on a stop request (table `departures`, so a restart remembers them).
  std::set<std::string> departed_;
  // Phase.
  ShardPool shards_;
  ShardOrder prompt_order_;        // PROMPTS: shards enter the pool in shard order
  std::unique_ptr<PromptFilter> prompt_filter_;  // PROMPTS only (null in every other phase)
  int64_t pool_size_ = 0;          // GENERATE and later: prompts in the iteration's pool
  int64_t generate_shard_size_ = 1;
  int64_t prompts_accepted_ = 0, dropped_duplicate_ = 0, dropped_near_duplicate_ = 0,
          dropped_length_ = 0, dropped_seen_ = 0;
  int64_t results_accepted_ = 0, candidates_ = 0, judgements_ = 0, pairs_ = 0, ties_ = 0,
          unparsable_ = 0, too_long_ = 0,
          too_few_answers_ = 0;
  std::vector<int64_t> score_histogram_;
  std::map<int32_t, std::string> checkpoint_dirs_;  // rank -> dir, for the current iteration
  // SFT/TRAIN: the workers that may be in this phase's collectives: those given a training answer,
  // and, after a restart in SFT/TRAIN, those registered before it (they may be training without
  // having asked this process). A worker that asks for work is not training, and leaves the set.
  std::set<std::string> may_be_training_;
  std::map<int32_t, std::pair<int64_t, int64_t>> evaluations_;  // rank -> (correct, total), likewise
  int32_t checkpoint_world_size_ = 0;
  int64_t train_step_ = 0, train_total_steps_ = 0;
  double train_loss_ = 0;
  RateMeter phase_rate_;           // units of phase progress per second
  std::vector<v1::IterationSummary> committed_iterations_;  // oldest first; rebuilt at Open
  // GetStatus reuses its last answer while nothing changed (state_version_) for up to 100 ms.
  uint64_t state_version_ = 1;
  uint64_t cached_status_version_ = 0;
  int64_t cached_status_ms_ = 0;
  v1::GetStatusResponse cached_status_;
};

}  // namespace srlm::coordinator
