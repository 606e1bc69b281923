// In-memory bookkeeping of one phase's shards and their leases: which shards wait, which are leased
// (to whom, which attempt, until when) and which are done. Expired leases return their shard to the
// waiting queue; a submission is valid only on a shard's newest lease. Durable state lives in the
// leases table; this is its fast view, rebuilt at start-up. Not thread-safe (the coordinator's lock).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace srlm::coordinator {

enum class ShardState { kWaiting, kLeased, kDone };

struct ShardSlot {
  ShardState state = ShardState::kWaiting;
  int32_t attempt = 0;           // newest lease's attempt (0: never leased)
  int32_t completed_attempt = 0; // the attempt whose result was accepted
  std::string worker_id;         // holder of the newest lease
  int64_t expiry_ms = 0;
};

// What a submission on (shard, attempt) means now.
enum class SubmissionCheck {
  kAccept,      // the shard's newest lease: take the result
  kDuplicate,   // this very lease was already accepted: answer OK, change nothing
  kHandedOn,    // the lease expired and a newer one exists: refuse
  kDoneByOther, // another lease's result was accepted: refuse
  kUnknown,     // no such shard or attempt
};

class ShardPool {
 public:
  ShardPool() = default;
  // `count` shards, all waiting.
  explicit ShardPool(int64_t count);

  // Adds one waiting shard (PROMPTS creates them on demand); returns its id.
  int64_t AddShard();
  // Returns every lease with expiry <= now_ms to the waiting queue; returns their shard ids.
  std::vector<int64_t> ExpireLeases(int64_t now_ms);
  // Leases the oldest waiting shard to `worker_id`; nullopt when none waits.
  std::optional<int64_t> LeaseNext(const std::string& worker_id, int64_t expiry_ms);
  // Extends the leases held by `worker_id` (those whose (shard, attempt) `keep` accepts, or all
  // when `keep` is empty) to `expiry_ms`; returns the extended shard ids.
  std::vector<int64_t> Extend(const std::string& worker_id, int64_t expiry_ms,
                              const std::function<bool(int64_t, int32_t)>& keep = {});
  // Returns every lease held by `worker_id` to the waiting queue; returns their shard ids.
  std::vector<int64_t> Release(const std::string& worker_id);
  SubmissionCheck Check(int64_t shard, int32_t attempt) const;
  // Marks the shard done by its newest lease (after Check said kAccept).
  void Complete(int64_t shard);

  // Start-up: restores a shard's state from the leases table.
  void Restore(int64_t shard, ShardState state, int32_t attempt, int32_t completed_attempt,
               const std::string& worker_id, int64_t expiry_ms);

  const ShardSlot& slot(int64_t shard) const { return slots_[shard]; }
  int64_t total() const { return static_cast<int64_t>(slots_.size()); }
  int64_t done() const { return done_; }
  int64_t leased() const { return static_cast<int64_t>(by_expiry_.size()); }
  int64_t waiting() const { return total() - done_ - leased(); }
  int32_t LeasesHeldBy(const std::string& worker_id) const;

 private:
  void ToWaiting(int64_t shard);

  std::vector<ShardSlot> slots_;
  std::deque<int64_t> waiting_;                       // may hold stale ids; skipped when popped
  std::set<std::pair<int64_t, int64_t>> by_expiry_;   // (expiry_ms, shard) of leased shards
  std::set<std::pair<std::string, int64_t>> by_worker_;     // (worker, shard) of leased shards
  int64_t done_ = 0;
};

}  // namespace srlm::coordinator
