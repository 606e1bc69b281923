// Puts PROMPTS shard submissions back into shard order. Ranks finish shards in whatever order
// timing gives, but the prompt filter's verdicts depend on the prompts it has already accepted, so
// the pool is the same from run to run only if shards enter it in shard order. A submission ahead of
// an earlier shard is held; the one that completes the order releases itself and every held shard
// after it, in order. Durable state lives in the held_prompts table; this is its view, rebuilt at
// start-up. Not thread-safe (the coordinator's lock).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace srlm::coordinator {

struct ShardSubmission {
  int64_t shard = 0;
  std::string lease_id;
  std::vector<std::string> prompts;
};

class ShardOrder {
 public:
  // Takes shard `submission.shard`'s result (each shard once: the shard pool refuses a second);
  // returns the submissions that may enter the pool now, in shard order: empty when an earlier shard
  // is still missing (this one is then held).
  std::vector<ShardSubmission> Add(ShardSubmission submission);
  // Start-up: shards before `next_shard` have entered the pool; `held` arrived after it. Refuses a
  // held shard that is not after `next_shard` or appears twice: the database is inconsistent.
  absl::Status Restore(int64_t next_shard, std::vector<ShardSubmission> held);
  void Clear();

  int64_t next_shard() const { return next_shard_; }   // the first shard not yet in the pool
  int64_t held() const { return static_cast<int64_t>(held_.size()); }
  int64_t held_prompts() const { return held_prompts_; }  // over the held shards
  bool IsHeld(int64_t shard) const { return held_.count(shard) > 0; }

 private:
  int64_t next_shard_ = 0;
  std::map<int64_t, ShardSubmission> held_;
  int64_t held_prompts_ = 0;
};

}  // namespace srlm::coordinator
