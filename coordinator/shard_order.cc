// Implementation of coordinator/shard_order.h.
#include "coordinator/shard_order.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace srlm::coordinator {

std::vector<ShardSubmission> ShardOrder::Add(ShardSubmission submission) {
  std::vector<ShardSubmission> released;
  const int64_t shard = submission.shard;
  if (shard < next_shard_) return released;  // already entered; the shard pool prevents this
  held_prompts_ += static_cast<int64_t>(submission.prompts.size());
  held_[shard] = std::move(submission);
  for (auto it = held_.find(next_shard_); it != held_.end(); it = held_.find(next_shard_)) {
    held_prompts_ -= static_cast<int64_t>(it->second.prompts.size());
    released.push_back(std::move(it->second));
    held_.erase(it);
    ++next_shard_;
  }
  return released;
}

absl::Status ShardOrder::Restore(int64_t next_shard, std::vector<ShardSubmission> held) {
  Clear();
  next_shard_ = next_shard;
  for (ShardSubmission& submission : held) {
    const int64_t shard = submission.shard;
    if (held_.count(shard)) {
      return absl::DataLossError(absl::StrCat("held PROMPTS shard ", shard, " is stored twice"));
    }
    if (shard <= next_shard) {
      return absl::DataLossError(absl::StrCat("held PROMPTS shard ", shard,
                                              " is not after the first missing shard ", next_shard));
    }
    held_prompts_ += static_cast<int64_t>(submission.prompts.size());
    held_[shard] = std::move(submission);
  }
  return absl::OkStatus();
}

void ShardOrder::Clear() {
  next_shard_ = 0;
  held_.clear();
  held_prompts_ = 0;
}

}  // namespace srlm::coordinator
