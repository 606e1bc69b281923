// Implementation of coordinator/run_coordinator.h: rebuilding the run's state from the database
// inside Open's transaction: the current phase's counters, shard pool (lease clocks moved on by the
// downtime) and held PROMPTS shards, each worker's submissions, the committed iterations, and a
// PROMPTS phase that a replaced configuration finds complete.
#include "coordinator/run_coordinator.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/int_math.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/lease_id.h"
#include "coordinator/run_schema.h"

namespace srlm::coordinator {

absl::Status RunCoordinator::LoadPhaseState(SqliteDb& db) {
  ResetPhaseLocked(v1::PHASE_PROMPTS);  // every counter from zero, then from the database
  // PROMPTS counters of the iteration.
  SRLM_ASSIGN_OR_RETURN(Statement * counts,
                        db.Prepare("SELECT COALESCE(SUM(dropped_duplicate),0), "
                                   "COALESCE(SUM(dropped_near_duplicate),0), COALESCE(SUM(dropped_length),0), "
                                   "COALESCE(SUM(dropped_seen),0) "
                                   "FROM leases WHERE iteration = ? AND kind = 'P' AND state = 'completed'"));
  counts->Bind(1, iteration_);
  SRLM_ASSIGN_OR_RETURN(bool has_counts, counts->Step());
  if (has_counts) {
    dropped_duplicate_ = counts->ColumnInt(0);
    dropped_near_duplicate_ = counts->ColumnInt(1);
    dropped_length_ = counts->ColumnInt(2);
    dropped_seen_ = counts->ColumnInt(3);
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
    if (kind == 'G') shards_ = ShardPool(CeilDiv(pool_size_, generate_shard_size_));
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

}  // namespace srlm::coordinator
