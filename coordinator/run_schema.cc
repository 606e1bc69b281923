// Implementation of coordinator/run_schema.h.
#include "coordinator/run_schema.h"

#include "common/status_macros.h"

namespace srlm::coordinator {

namespace {

absl::Status CreateTables(SqliteDb& db) {
  return db.Exec(R"sql(
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
  worker_id TEXT PRIMARY KEY, rank INTEGER NOT NULL, world_size INTEGER NOT NULL,
  hostname TEXT NOT NULL, pid INTEGER NOT NULL, device TEXT NOT NULL, registered_ms INTEGER NOT NULL);
-- Workers that left on a stop request (LeaseShard.stopping): while one is still its rank's latest
-- registration, no rank of its launch is handed training. Kept so that a restart remembers it.
CREATE TABLE IF NOT EXISTS departures (worker_id TEXT PRIMARY KEY, departed_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  lease_id TEXT PRIMARY KEY, iteration INTEGER NOT NULL, kind TEXT NOT NULL,
  shard_id INTEGER NOT NULL, attempt INTEGER NOT NULL, worker_id TEXT NOT NULL,
  expiry_ms INTEGER NOT NULL, state TEXT NOT NULL,  -- active | completed | released
  completed_ms INTEGER, prompts_accepted INTEGER NOT NULL DEFAULT 0,
  dropped_duplicate INTEGER NOT NULL DEFAULT 0, dropped_near_duplicate INTEGER NOT NULL DEFAULT 0,
  dropped_length INTEGER NOT NULL DEFAULT 0, dropped_seen INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS leases_by_shard ON leases(iteration, kind, shard_id, attempt);
-- A relaunched rank's open leases (RegisterWorker releases them): without it every registration
-- scanned every lease of the run's history.
CREATE INDEX IF NOT EXISTS leases_active_by_worker ON leases(worker_id) WHERE state = 'active';
CREATE TABLE IF NOT EXISTS prompts (
  iteration INTEGER NOT NULL, prompt_id INTEGER NOT NULL, text TEXT NOT NULL, lease_id TEXT NOT NULL,
  PRIMARY KEY (iteration, prompt_id)) WITHOUT ROWID;
-- PROMPTS shards submitted ahead of an earlier shard: their prompts, in order, until the earlier
-- one arrives and they enter the pool (the pool fills in shard order).
CREATE TABLE IF NOT EXISTS held_prompts (
  iteration INTEGER NOT NULL, shard_id INTEGER NOT NULL, position INTEGER NOT NULL,
  lease_id TEXT NOT NULL, text TEXT NOT NULL,
  PRIMARY KEY (iteration, shard_id, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
  iteration INTEGER NOT NULL, prompt_id INTEGER NOT NULL, shard_id INTEGER NOT NULL,
  lease_id TEXT NOT NULL, worker_id TEXT NOT NULL, has_pair INTEGER NOT NULL,
  drop_reason INTEGER NOT NULL, chosen TEXT, rejected TEXT, chosen_score REAL, rejected_score REAL,
  ref_chosen_logprob REAL, ref_rejected_logprob REAL, chosen_num_tokens INTEGER,
  rejected_num_tokens INTEGER, num_candidates INTEGER NOT NULL, num_judgements INTEGER NOT NULL,
  mean_scores TEXT NOT NULL, detail BLOB NOT NULL, accepted_ms INTEGER NOT NULL, position INTEGER,
  PRIMARY KEY (iteration, prompt_id));
CREATE INDEX IF NOT EXISTS results_by_position ON results(iteration, position);
-- Covers the per-iteration counts a start reads for every committed iteration (pairs, ties,
-- unparsable, too long, too few answers) without reading the result rows themselves (kilobytes each).
CREATE INDEX IF NOT EXISTS results_outcome ON results(iteration, has_pair, drop_reason);
CREATE TABLE IF NOT EXISTS checkpoints (
  iteration INTEGER NOT NULL, rank INTEGER NOT NULL, world_size INTEGER NOT NULL,
  dir TEXT NOT NULL, worker_id TEXT NOT NULL, reported_ms INTEGER NOT NULL,
  PRIMARY KEY (iteration, rank));
CREATE TABLE IF NOT EXISTS evaluations (
  iteration INTEGER NOT NULL, rank INTEGER NOT NULL, correct INTEGER NOT NULL, total INTEGER NOT NULL,
  PRIMARY KEY (iteration, rank));
CREATE TABLE IF NOT EXISTS commits (
  iteration INTEGER PRIMARY KEY, model_dir TEXT NOT NULL, committed_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS train_steps (
  iteration INTEGER NOT NULL, step INTEGER NOT NULL, total_steps INTEGER NOT NULL,
  worker_id TEXT NOT NULL, loss REAL NOT NULL, metrics TEXT NOT NULL, tokens INTEGER NOT NULL,
  reported_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, unix_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  detail TEXT NOT NULL);
)sql");
}

// Columns added since the table was first written, with their definitions: a run directory that an
// older build made gets them when a newer one opens it (CREATE TABLE IF NOT EXISTS keeps its table).
struct AddedColumn {
  const char* table;
  const char* column;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"leases", "dropped_seen", "INTEGER NOT NULL DEFAULT 0"},
};

absl::StatusOr<bool> HasColumn(SqliteDb& db, const std::string& table, const std::string& column) {
  SRLM_ASSIGN_OR_RETURN(Statement * stmt, db.Prepare("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?"));
  stmt->Bind(1, table).Bind(2, column);
  SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
  const bool has = row && stmt->ColumnInt(0) > 0;
  stmt->Reset();
  return has;
}

absl::Status AddMissingColumns(SqliteDb& db) {
  for (const AddedColumn& added : kAddedColumns) {
    SRLM_ASSIGN_OR_RETURN(bool has, HasColumn(db, added.table, added.column));
    if (has) continue;
    SRLM_RETURN_IF_ERROR(db.Exec(std::string("ALTER TABLE ") + added.table + " ADD COLUMN " + added.column + " " +
                                 added.definition));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateSchema(SqliteDb& db) {
  SRLM_RETURN_IF_ERROR(CreateTables(db));
  return AddMissingColumns(db);
}

absl::Status PutRunValue(SqliteDb& db, const std::string& key, const std::string& value) {
  SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                        db.Prepare("INSERT INTO run(key, value) VALUES(?, ?) "
                                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  return stmt->Bind(1, key).Bind(2, value).Run();
}

absl::StatusOr<std::optional<std::string>> GetRunValue(SqliteDb& db, const std::string& key) {
  SRLM_ASSIGN_OR_RETURN(Statement * stmt, db.Prepare("SELECT value FROM run WHERE key = ?"));
  stmt->Bind(1, key);
  SRLM_ASSIGN_OR_RETURN(bool row, stmt->Step());
  std::optional<std::string> value;
  if (row) value = stmt->ColumnText(0);
  stmt->Reset();
  return value;
}

absl::Status AddEvent(SqliteDb& db, int64_t unix_ms, const std::string& kind,
                      const std::string& detail) {
  SRLM_ASSIGN_OR_RETURN(Statement * stmt,
                        db.Prepare("INSERT INTO events(unix_ms, kind, detail) VALUES(?, ?, ?)"));
  return stmt->Bind(1, unix_ms).Bind(2, kind).Bind(3, detail).Run();
}

}  // namespace srlm::coordinator
