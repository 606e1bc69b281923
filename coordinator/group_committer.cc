// Implementation of coordinator/group_committer.h.
#include "coordinator/group_committer.h"

#include "common/logging.h"

namespace srlm::coordinator {

GroupCommitter::GroupCommitter(SqliteDb* db, size_t max_writes_per_transaction, Write stamp)
    : db_(db),
      max_writes_per_transaction_(max_writes_per_transaction),
      stamp_(std::move(stamp)),
      writer_([this] { WriterLoop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_all();
  writer_.join();
}

uint64_t GroupCommitter::Enqueue(Write write) {
  uint64_t sequence;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(write));
    sequence = ++last_enqueued_;
  }
  queued_.notify_one();
  return sequence;
}

void GroupCommitter::WaitDurable(uint64_t sequence) {
  std::unique_lock<std::mutex> lock(mutex_);
  durable_.wait(lock, [&] { return last_durable_ >= sequence; });
}

uint64_t GroupCommitter::LastEnqueued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_enqueued_;
}

uint64_t GroupCommitter::transactions() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return transactions_;
}

uint64_t GroupCommitter::writes_committed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_durable_;
}

void GroupCommitter::WriterLoop() {
  std::vector<Write> batch;
  while (true) {
    uint64_t batch_last;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      if (max_writes_per_transaction_ == 0 || queue_.size() <= max_writes_per_transaction_) {
        batch.swap(queue_);
      } else {
        auto end = queue_.begin() + static_cast<std::ptrdiff_t>(max_writes_per_transaction_);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
        queue_.erase(queue_.begin(), end);
      }
      batch_last = last_durable_ + batch.size();
    }
    absl::StatusOr<Transaction> transaction = Transaction::Begin(*db_, "BEGIN IMMEDIATE");
    absl::Status status = transaction.status();
    for (Write& write : batch) {
      if (!status.ok()) break;
      status = write(*db_);
    }
    if (status.ok() && stamp_) status = stamp_(*db_);
    if (status.ok()) status = transaction->Commit();
    if (!status.ok()) {
      // Memory already holds these transitions; continuing would serve state that is not durable.
      SRLM_LOG(FATAL) << "durable commit failed, stopping (restart resumes from the last commit): "
                      << status;
    }
    batch.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_durable_ = batch_last;
      ++transactions_;
    }
    durable_.notify_all();
  }
}

}  // namespace srlm::coordinator
