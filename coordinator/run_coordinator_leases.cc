// Implementation of coordinator/run_coordinator.h: workers and their leases: RegisterWorker,
// Heartbeat (extending leases), LeaseShard (the answer for each phase, a PROMPTS or GENERATE lease,
// and stop requests) and reading a GENERATE shard's prompts.
#include "coordinator/run_coordinator.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/lease_id.h"
#include "coordinator/run_cycle.h"
#include "coordinator/run_schema.h"

namespace srlm::coordinator {
namespace {

constexpr int64_t kWaitMs = 200;             // "nothing now" back-off handed to workers

}  // namespace

int64_t RunCoordinator::ShardSeed(int64_t iteration, char kind, int64_t shard) const {
  uint64_t x = static_cast<uint64_t>(config_.run.seed) * 0x9E3779B97F4A7C15ULL;
  x ^= static_cast<uint64_t>(iteration) * 0xBF58476D1CE4E5B9ULL + static_cast<uint64_t>(kind);
  x ^= static_cast<uint64_t>(shard) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<int64_t>(x & 0x7fffffffffffffffULL);
}

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
  if (request.lease_ids_size() > 0 || request.lists_every_lease()) {
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
    const int64_t shard_size = PromptShardSize(config_);
    // Held shards count as supply: their prompts (at most a shard's worth each) are coming.
    const int64_t held_supply = std::min(prompt_order_.held_prompts(), prompt_order_.held() * shard_size);
    if (prompts_accepted_ + shards_.leased() * shard_size + held_supply < wanted &&
        shards_.total() < PromptShardLimit(config_)) {
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
    response.mutable_prompts()->set_num_prompts(PromptShardSize(config_));
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

}  // namespace srlm::coordinator
