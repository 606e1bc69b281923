// Tests of coordinator/sqlite_db.h: Open names a file that is not a database; Transaction rolls
// back unless committed (an early return leaves nothing behind and the connection outside any
// transaction), commits once, and a moved-from transaction does nothing.
#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "common/testing/temp_dir.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

// A state.db that is not a database (damaged, or another file put in its place) is refused by
// Open with an error that names it, in both modes; it used to say only "file is not a database".
TEST(SqliteDbTest, OpenNamesAFileThatIsNotADatabase) {
  srlm::testing_util::TempDir dir;
  const std::string path = (dir / "state.db");
  std::ofstream(path) << std::string(8192, 'x');
  for (SqliteDb::Mode mode : {SqliteDb::Mode::kReadWrite, SqliteDb::Mode::kReadOnly}) {
    auto opened = SqliteDb::Open(path, mode);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
    EXPECT_THAT(std::string(opened.status().message()),
                ::testing::HasSubstr(path + " is not an SQLite database or is damaged"));
  }
}

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = SqliteDb::Open(dir_ / "t.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(opened.ok()) << opened.status();
    db_ = std::move(*opened);
    ASSERT_TRUE(db_->Exec("CREATE TABLE t (x INTEGER)").ok());
  }
  int64_t Rows() { return *db_->QueryInt("SELECT COUNT(*) FROM t", -1); }
  bool InTransaction() { return sqlite3_get_autocommit(db_->raw()) == 0; }

  srlm::testing_util::TempDir dir_;
  std::unique_ptr<SqliteDb> db_;
};

TEST_F(TransactionTest, RollsBackUnlessCommitted) {
  {
    auto transaction = Transaction::Begin(*db_, "BEGIN IMMEDIATE");
    ASSERT_TRUE(transaction.ok()) << transaction.status();
    ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES (1)").ok());
    EXPECT_TRUE(InTransaction());
  }  // a return before the commit
  EXPECT_FALSE(InTransaction());
  EXPECT_EQ(Rows(), 0);

  {
    auto transaction = Transaction::Begin(*db_);
    ASSERT_TRUE(transaction.ok());
    ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES (2)").ok());
    EXPECT_TRUE(transaction->Commit().ok());
    EXPECT_FALSE(InTransaction());
    EXPECT_EQ(Rows(), 1);
    const absl::Status again = transaction->Commit();
    EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
    ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES (3)").ok());  // outside it: autocommitted
  }  // the committed one's destructor rolls nothing back
  EXPECT_EQ(Rows(), 2);
}

TEST_F(TransactionTest, AMovedFromTransactionLeavesItToItsNewOwner) {
  std::optional<Transaction> owner;
  {
    auto first = Transaction::Begin(*db_);
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(db_->Exec("INSERT INTO t VALUES (1)").ok());
    owner.emplace(std::move(*first));
  }  // the moved-from one goes: no rollback
  EXPECT_TRUE(InTransaction());
  EXPECT_TRUE(owner->Commit().ok());
  EXPECT_EQ(Rows(), 1);
}

TEST_F(TransactionTest, ABeginThatFailsIsAnError) {
  auto outer = Transaction::Begin(*db_);
  ASSERT_TRUE(outer.ok());
  auto nested = Transaction::Begin(*db_);  // SQLite has no nested BEGIN
  EXPECT_FALSE(nested.ok());
  EXPECT_TRUE(InTransaction());  // the outer one is still there
}

}  // namespace
}  // namespace srlm::coordinator
