// Implementation of coordinator/run_coordinator.h: the phase state machine (phase changes, the
// PROMPTS -> GENERATE -> TRAIN/SFT transitions and the freeze of the pairs) and the *Locked helpers
// that the RPCs and the start-up share: queueing writes, worker checks, result counters.
// The RPCs and Open are in run_coordinator_*.cc.
#include "coordinator/run_coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/int_math.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/pair_shuffle.h"
#include "coordinator/run_cycle.h"
#include "coordinator/run_schema.h"

namespace srlm::coordinator {
namespace {

constexpr int kHistogramBuckets = 10;

}  // namespace

std::string RunCoordinator::database_path() const { return run_dir_ + "/state.db"; }

void RunCoordinator::ResetPhaseLocked(v1::Phase phase) {
  shards_ = ShardPool();
  prompt_order_.Clear();
  phase_rate_.Reset();
  // Only PROMPTS offers prompts (SubmitShard takes a PROMPTS submission in PROMPTS alone): phase_,
  // not `phase`, as LoadPhaseState resets the counters with PROMPTS in any phase.
  prompt_filter_ = phase_ == v1::PHASE_PROMPTS ? NewPromptFilter() : nullptr;
  if (phase == v1::PHASE_PROMPTS || phase == v1::PHASE_SFT || phase == v1::PHASE_DONE) {
    pool_size_ = 0;
    prompts_accepted_ = dropped_duplicate_ = dropped_near_duplicate_ = dropped_length_ = dropped_seen_ = 0;
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
  return prompts_accepted_ >= config_.prompts.per_iteration ||
         (shards_.total() >= PromptShardLimit(config_) && shards_.done() == shards_.total());
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
  shards_ = ShardPool(CeilDiv(pool_size_, generate_shard_size_));
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

bool RunCoordinator::IsCurrentWorkerLocked(const std::string& worker_id) const {
  const auto worker = workers_.find(worker_id);
  if (worker == workers_.end()) return false;
  const auto listed = worker_by_rank_.find(worker->second.rank);
  return listed != worker_by_rank_.end() && listed->second == worker_id;
}

}  // namespace srlm::coordinator
