// Implementation of coordinator/sqlite_db.h.
#include "coordinator/sqlite_db.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace srlm::coordinator {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  return absl::InternalError(absl::StrCat("sqlite: ", std::string(what), ": ", sqlite3_errstr(rc), " (",
                                          db ? sqlite3_errmsg(db) : "no connection", ")"));
}

}  // namespace

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql)
    : db_(db), stmt_(stmt), sql_(std::move(sql)) {}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = SqliteError(db_, rc, "bind " + sql_);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = SqliteError(db_, rc, "bind " + sql_);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = SqliteError(db_, rc, "bind " + sql_);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = SqliteError(db_, rc, "bind " + sql_);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, rc, sql_);
}

absl::Status Statement::Run() {
  while (true) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_error_ = absl::OkStatus();
}

int64_t Statement::ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::ColumnDouble(int column) const { return sqlite3_column_double(stmt_, column); }
std::string Statement::ColumnText(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  return data ? std::string(static_cast<const char*>(data), size) : std::string();
}
bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, Mode mode) {
  sqlite3* raw = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX |
              (mode == Mode::kReadOnly ? SQLITE_OPEN_READONLY
                                       : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = SqliteError(raw, rc, "open " + path);
    sqlite3_close(raw);
    return status;
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  sqlite3_busy_timeout(raw, 10000);
  // The first statements read the file: a damaged one (or another kind of file) fails here, and
  // the error names it.
  auto pragma = [&](const char* sql) -> absl::Status {
    absl::Status s = db->Exec(sql);
    if (s.ok()) return s;
    if (sqlite3_errcode(raw) == SQLITE_NOTADB || sqlite3_errcode(raw) == SQLITE_CORRUPT) {
      return absl::DataLossError(absl::StrCat(path, " is not an SQLite database or is damaged (", s.message(),
                                              "); restore it from a copy"));
    }
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  };
  if (mode == Mode::kReadWrite) {
    SRLM_RETURN_IF_ERROR(pragma("PRAGMA journal_mode=WAL"));
    // After a checkpoint the WAL is cut back to 64 MiB; it otherwise kept the size of the largest
    // phase's writes (about 470 MB for a GENERATE phase of 100k results) for the rest of the run.
    SRLM_RETURN_IF_ERROR(pragma("PRAGMA journal_size_limit=67108864"));
  }
  SRLM_RETURN_IF_ERROR(pragma("PRAGMA synchronous=FULL"));
  SRLM_RETURN_IF_ERROR(pragma("PRAGMA foreign_keys=ON"));
  return db;
}

SqliteDb::~SqliteDb() {
  statements_.clear();
  sqlite3_close(db_);
}

absl::Status SqliteDb::Exec(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("sqlite: ", text.substr(0, 200), ": ", error ? error : sqlite3_errstr(rc)));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<Statement*> SqliteDb::Prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "prepare " + sql);
  auto inserted = statements_.emplace(sql, std::make_unique<Statement>(db_, stmt, sql));
  return inserted.first->second.get();
}

absl::StatusOr<int64_t> SqliteDb::QueryInt(const std::string& sql, int64_t default_value) {
  absl::StatusOr<Statement*> stmt = Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  absl::StatusOr<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  int64_t value = (*row && !(*stmt)->ColumnIsNull(0)) ? (*stmt)->ColumnInt(0) : default_value;
  (*stmt)->Reset();
  return value;
}

absl::StatusOr<Transaction> Transaction::Begin(SqliteDb& db, std::string_view begin_sql) {
  absl::Status status = db.Exec(begin_sql);
  if (!status.ok()) return status;
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) db_->Exec("ROLLBACK").IgnoreError();
}

absl::Status Transaction::Commit() {
  if (db_ == nullptr) return absl::FailedPreconditionError("commit of a transaction that is over");
  absl::Status status = db_->Exec("COMMIT");
  if (!status.ok()) db_->Exec("ROLLBACK").IgnoreError();
  db_ = nullptr;
  return status;
}

}  // namespace srlm::coordinator
