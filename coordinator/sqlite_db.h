// A thin RAII wrapper over one SQLite connection: open with the coordinator's durability pragmas,
// execute SQL, cached prepared statements with typed binding, and transactions that roll back
// unless committed. Errors are absl::Status values
// naming the SQL that failed. Not thread-safe: one connection per thread (or under a mutex).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace srlm::coordinator {

// One prepared statement; Reset() before reuse. Column getters index from 0, binders from 1.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);
  // Steps once: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps until done (for statements that return no rows).
  absl::Status Run();
  void Reset();

  int64_t ColumnInt(int column) const;
  double ColumnDouble(int column) const;
  std::string ColumnText(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  absl::Status bind_error_;
};

class SqliteDb {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  // Opens (creating when kReadWrite) `path` with WAL journaling, synchronous=FULL, foreign keys on
  // and a busy timeout, so readers on other connections never block the writer.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, Mode mode);
  ~SqliteDb();

  absl::Status Exec(std::string_view sql);
  // A cached prepared statement, reset and with bindings cleared.
  absl::StatusOr<Statement*> Prepare(const std::string& sql);
  // Runs `sql` and returns the first column of the first row as an integer (default when no row).
  absl::StatusOr<int64_t> QueryInt(const std::string& sql, int64_t default_value);
  sqlite3* raw() { return db_; }

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::map<std::string, std::unique_ptr<Statement>> statements_;
};

// A transaction that rolls back unless committed: every way out before Commit() (an error, a
// refusal) ends it, so the connection is never left inside it. Movable, not copyable.
class Transaction {
 public:
  // Runs `begin_sql` ("BEGIN", or "BEGIN IMMEDIATE" to take the write lock at once).
  static absl::StatusOr<Transaction> Begin(SqliteDb& db, std::string_view begin_sql = "BEGIN");
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();  // ROLLBACK when neither committed nor moved from

  // COMMIT. The transaction is over afterwards: one whose COMMIT failed is rolled back (SQLite
  // leaves it open on SQLITE_BUSY). FAILED_PRECONDITION when it is already over.
  absl::Status Commit();

 private:
  explicit Transaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_;  // null once over
};

}  // namespace srlm::coordinator
