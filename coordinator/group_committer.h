// Group commit: state transitions queue their SQL as closures; one writer thread applies every
// queued closure in a single SQLite transaction and then marks them durable, so many concurrent
// RPCs share one fsync. Callers enqueue while holding the state lock (so the order of the queue is
// the order of the in-memory transitions) and wait for durability after releasing it.
// Thread-safe. A failed commit is fatal: memory would no longer match the database, and a restart
// on the same run directory resumes from the last commit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {

class GroupCommitter {
 public:
  using Write = std::function<absl::Status(SqliteDb&)>;

  // `db` is used only by the writer thread from now on. `max_writes_per_transaction` 0 batches
  // everything queued; 1 gives one transaction (and one fsync) per write, the baseline without
  // group commit.
  // `stamp` (optional) runs last in every transaction (the coordinator records the commit time).
  explicit GroupCommitter(SqliteDb* db, size_t max_writes_per_transaction = 0, Write stamp = {});
  ~GroupCommitter();  // commits what is queued, then stops the writer

  // Queues `write`; returns its sequence number (1, 2, ...).
  uint64_t Enqueue(Write write);
  // Blocks until every write up to `sequence` has committed.
  void WaitDurable(uint64_t sequence);
  // The sequence number of the last queued write (0 when none).
  uint64_t LastEnqueued() const;
  // Statistics: transactions committed and writes in them.
  uint64_t transactions() const;
  uint64_t writes_committed() const;

 private:
  void WriterLoop();

  SqliteDb* db_;
  size_t max_writes_per_transaction_;
  Write stamp_;
  mutable std::mutex mutex_;
  std::condition_variable queued_;
  std::condition_variable durable_;
  std::vector<Write> queue_;
  uint64_t last_enqueued_ = 0;
  uint64_t last_durable_ = 0;
  uint64_t transactions_ = 0;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace srlm::coordinator
