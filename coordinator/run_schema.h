// The coordinator's SQLite schema (one database, state.db, in the run directory) and small helpers
// for the run table's key/value rows. Tables: run (config, iteration, phase, model dir, ...),
// workers, leases (one row per lease; also the per-shard PROMPTS filter counts), prompts (each
// iteration's pool), results (one accepted result per prompt: candidates, judgements, scores, pair,
// reference log-probabilities, shuffled position once frozen), checkpoints (one row per rank
// report), commits (the model each committed iteration produced), train_steps and events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {

// Creates the tables and indexes that are missing, and adds to an older run's tables the columns a
// later build added (kAddedColumns in run_schema.cc).
absl::Status CreateSchema(SqliteDb& db);
absl::Status PutRunValue(SqliteDb& db, const std::string& key, const std::string& value);
absl::StatusOr<std::optional<std::string>> GetRunValue(SqliteDb& db, const std::string& key);
absl::Status AddEvent(SqliteDb& db, int64_t unix_ms, const std::string& kind,
                      const std::string& detail);

}  // namespace srlm::coordinator
