// Implementation of coordinator/shard_pool.h.
#include "coordinator/shard_pool.h"

namespace srlm::coordinator {

ShardPool::ShardPool(int64_t count) : slots_(count) {
  for (int64_t i = 0; i < count; ++i) waiting_.push_back(i);
}

int64_t ShardPool::AddShard() {
  slots_.emplace_back();
  waiting_.push_back(total() - 1);
  return total() - 1;
}

void ShardPool::ToWaiting(int64_t shard) {
  ShardSlot& slot = slots_[shard];
  by_expiry_.erase({slot.expiry_ms, shard});
  by_worker_.erase({slot.worker_id, shard});
  slot.state = ShardState::kWaiting;
  waiting_.push_front(shard);  // returned work goes first: it is the oldest
}

std::vector<int64_t> ShardPool::ExpireLeases(int64_t now_ms) {
  std::vector<int64_t> expired;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now_ms) {
    int64_t shard = by_expiry_.begin()->second;
    ToWaiting(shard);
    expired.push_back(shard);
  }
  return expired;
}

std::optional<int64_t> ShardPool::LeaseNext(const std::string& worker_id, int64_t expiry_ms) {
  while (!waiting_.empty()) {
    int64_t shard = waiting_.front();
    waiting_.pop_front();
    ShardSlot& slot = slots_[shard];
    if (slot.state != ShardState::kWaiting) continue;  // stale: leased again or done since
    slot.state = ShardState::kLeased;
    slot.attempt += 1;
    slot.worker_id = worker_id;
    slot.expiry_ms = expiry_ms;
    by_expiry_.insert({expiry_ms, shard});
    by_worker_.insert({worker_id, shard});
    return shard;
  }
  return std::nullopt;
}

std::vector<int64_t> ShardPool::Extend(const std::string& worker_id, int64_t expiry_ms,
                                       const std::function<bool(int64_t, int32_t)>& keep) {
  std::vector<int64_t> extended;
  for (auto it = by_worker_.lower_bound({worker_id, INT64_MIN});
       it != by_worker_.end() && it->first == worker_id; ++it) {
    ShardSlot& slot = slots_[it->second];
    if (keep && !keep(it->second, slot.attempt)) continue;
    by_expiry_.erase({slot.expiry_ms, it->second});
    slot.expiry_ms = expiry_ms;
    by_expiry_.insert({expiry_ms, it->second});
    extended.push_back(it->second);
  }
  return extended;
}

std::vector<int64_t> ShardPool::Release(const std::string& worker_id) {
  std::vector<int64_t> shards;
  for (auto it = by_worker_.lower_bound({worker_id, INT64_MIN});
       it != by_worker_.end() && it->first == worker_id; ++it) {
    shards.push_back(it->second);
  }
  for (int64_t shard : shards) ToWaiting(shard);
  return shards;
}

SubmissionCheck ShardPool::Check(int64_t shard, int32_t attempt) const {
  if (shard < 0 || shard >= total() || attempt < 1) return SubmissionCheck::kUnknown;
  const ShardSlot& slot = slots_[shard];
  if (attempt > slot.attempt) return SubmissionCheck::kUnknown;
  if (slot.state == ShardState::kDone) {
    return slot.completed_attempt == attempt ? SubmissionCheck::kDuplicate
                                             : SubmissionCheck::kDoneByOther;
  }
  // An expired lease whose shard was not yet handed on is still the newest: its result is taken.
  return attempt == slot.attempt ? SubmissionCheck::kAccept : SubmissionCheck::kHandedOn;
}

void ShardPool::Complete(int64_t shard) {
  ShardSlot& slot = slots_[shard];
  if (slot.state == ShardState::kLeased) {
    by_expiry_.erase({slot.expiry_ms, shard});
    by_worker_.erase({slot.worker_id, shard});
  }
  slot.state = ShardState::kDone;
  slot.completed_attempt = slot.attempt;
  ++done_;
}

void ShardPool::Restore(int64_t shard, ShardState state, int32_t attempt, int32_t completed_attempt,
                        const std::string& worker_id, int64_t expiry_ms) {
  while (total() <= shard) AddShard();
  ShardSlot& slot = slots_[shard];
  slot.attempt = attempt;
  slot.completed_attempt = completed_attempt;
  slot.worker_id = worker_id;
  slot.expiry_ms = expiry_ms;
  slot.state = state;
  if (state == ShardState::kLeased) {
    by_expiry_.insert({expiry_ms, shard});
    by_worker_.insert({worker_id, shard});
  } else if (state == ShardState::kDone) {
    ++done_;
  }
  // Waiting shards are already queued by AddShard / the constructor; stale entries are skipped.
}

int32_t ShardPool::LeasesHeldBy(const std::string& worker_id) const {
  int32_t count = 0;
  for (auto it = by_worker_.lower_bound({worker_id, INT64_MIN});
       it != by_worker_.end() && it->first == worker_id; ++it) {
    ++count;
  }
  return count;
}

}  // namespace srlm::coordinator
