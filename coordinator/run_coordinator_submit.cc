// Implementation of coordinator/run_coordinator.h: SubmitShard: a PROMPTS shard's prompts through
// the shard order and the prompt filter into the pool, a GENERATE shard's checked results into the
// results table, a duplicate or a lease of an ended phase answered from the database.
#include "coordinator/run_coordinator.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/lease_id.h"

namespace srlm::coordinator {
namespace {

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

}  // namespace

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
      // Every answer reads the shard's state, which another call may have changed in memory and
      // still be committing (a hand-on, the other attempt's result): a refusal, too, is sent only
      // once that state is durable. Sent before, a crash could undo the hand-on, and the refused
      // lease would be the shard's newest again, held by a worker that dropped its result.
      sequence = committer_->LastEnqueued();
      switch (shards_.Check(key.shard, key.attempt)) {
        case SubmissionCheck::kUnknown:
          response = absl::NotFoundError(absl::StrCat("unknown lease ", request.lease_id()));
          break;
        case SubmissionCheck::kHandedOn:
          response = absl::FailedPreconditionError(absl::StrCat(
              "lease ", request.lease_id(), " expired and its shard was handed on (attempt ",
              shards_.slot(key.shard).attempt, ")"));
          break;
        case SubmissionCheck::kDoneByOther:
          response = absl::FailedPreconditionError(absl::StrCat(
              "shard ", key.shard, " was completed by attempt ", shards_.slot(key.shard).completed_attempt,
              "; lease ", request.lease_id(), " is void"));
          break;
        case SubmissionCheck::kDuplicate: {
          v1::SubmitShardResponse duplicate;
          duplicate.set_duplicate(true);
          duplicate.set_iteration(iteration_);
          duplicate.set_phase(phase_);
          response = duplicate;  // the first copy may still be committing
          break;
        }
        case SubmissionCheck::kAccept:
          // Lease ids are predictable: only the holder may complete a live lease (the worker takes
          // FAILED_PRECONDITION as "result no longer wanted").
          if (const std::string& holder = shards_.slot(key.shard).worker_id; holder != request.worker_id()) {
            response = absl::FailedPreconditionError(absl::StrCat(
                "lease ", request.lease_id(), " is held by worker ", holder, ", not ", request.worker_id()));
            break;
          }
          response = key.kind == 'P' ? SubmitPromptsLocked(request, key.shard, key.attempt, &sequence)
                                     : SubmitGenerateLocked(request, key.shard, key.attempt, &sequence);
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
    int64_t duplicate = 0, near_duplicate = 0, length = 0, seen = 0;
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
        case PromptVerdict::kSeen: ++shard_entered.seen; break;
      }
    }
    response.set_prompts_accepted(response.prompts_accepted() + shard_entered.accepted.size());
    response.set_prompts_dropped_duplicate(response.prompts_dropped_duplicate() + shard_entered.duplicate);
    response.set_prompts_dropped_near_duplicate(response.prompts_dropped_near_duplicate() +
                                                shard_entered.near_duplicate);
    response.set_prompts_dropped_length(response.prompts_dropped_length() + shard_entered.length);
    response.set_prompts_dropped_seen(response.prompts_dropped_seen() + shard_entered.seen);
    entered.push_back(std::move(shard_entered));
  }
  dropped_duplicate_ += response.prompts_dropped_duplicate();
  dropped_near_duplicate_ += response.prompts_dropped_near_duplicate();
  dropped_length_ += response.prompts_dropped_length();
  dropped_seen_ += response.prompts_dropped_seen();
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
                                     "dropped_near_duplicate + ?, dropped_length = dropped_length + ?, "
                                     "dropped_seen = dropped_seen + ? WHERE lease_id = ?"));
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
                               .Bind(4, shard_entered.length).Bind(5, shard_entered.seen)
                               .Bind(6, shard_entered.lease_id).Run());
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

}  // namespace srlm::coordinator
