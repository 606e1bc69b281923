// Implementation of coordinator/run_coordinator.h: the training phases (SFT, TRAIN) and COMMIT:
// StreamPairs (a rank's share of the frozen pairs), ReportTrainStep, and ReportCheckpoint, whose
// last rank commits the iteration and moves the run to the next PROMPTS or DONE.
#include "coordinator/run_coordinator.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace srlm::coordinator {

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
  SRLM_ASSIGN_OR_RETURN(Transaction snapshot, Transaction::Begin(*db));  // one snapshot for the count and the rows
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
  return snapshot.Commit();
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
  const bool finite_loss = std::isfinite(request.loss());
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

}  // namespace srlm::coordinator
