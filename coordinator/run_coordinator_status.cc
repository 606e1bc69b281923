// Implementation of coordinator/run_coordinator.h: what the run shows: GetStatus (built under the
// lock, cached for up to 100 ms, answered once durable), the phase-change history that status
// streams follow, and ExportPairs (an iteration's frozen pairs with provenance).
#include "coordinator/run_coordinator.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "coordinator/lease_id.h"

namespace srlm::coordinator {

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
  status.set_prompts_dropped_seen(dropped_seen_);
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
    // (At start every worker's heartbeat time is the start's: one not heard from since goes silent
    // alike.)
    w->set_silent(now - worker.last_heartbeat_ms > alive_ms);
    if (worker.heard_since_start && !w->silent()) tokens_per_second += worker.stats.tokens_per_second();
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
  SRLM_ASSIGN_OR_RETURN(Transaction snapshot, Transaction::Begin(*db));
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
  return snapshot.Commit();
}

}  // namespace srlm::coordinator
