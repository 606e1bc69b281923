// Tests of worker/train/shared_directory.h: one process plays one rank, and a scripted communicator
// plays the others' contributions to each all-reduce. tests/trainer_mpi_test.cc runs the same check
// with real ranks under mpirun, one of them in its own mount namespace.
#include "worker/train/shared_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "worker/train/atomic_dir.h"

namespace srlm {
namespace {

using ::testing::HasSubstr;

// Rank `rank` of `world`: each host all-reduce takes the element-wise max with the next scripted
// vector (what the other ranks sent), or with nothing when the script is spent.
class ScriptedRanks : public Communicator {
 public:
  ScriptedRanks(int rank, int world, std::deque<std::vector<double>> others)
      : rank_(rank), world_(world), others_(std::move(others)) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return rank_; }
  std::string backend_name() const override { return "scripted"; }
  absl::Status AllReduceSum(at::Tensor&) override { return absl::UnimplementedError("host values only"); }
  absl::Status Broadcast(at::Tensor&, int) override { return absl::UnimplementedError("host values only"); }
  absl::Status AllReduceSumHost(std::vector<double>*) override { return absl::UnimplementedError("max only"); }
  absl::Status AllReduceMaxHost(std::vector<double>* values) override {
    ++calls_;
    if (others_.empty()) return absl::OkStatus();
    const std::vector<double> theirs = others_.front();
    others_.pop_front();
    if (theirs.size() != values->size()) return absl::InternalError("scripted size differs");
    for (size_t i = 0; i < values->size(); ++i) (*values)[i] = std::max((*values)[i], theirs[i]);
    return absl::OkStatus();
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
  int calls() const { return calls_; }

 private:
  int rank_, world_;
  std::deque<std::vector<double>> others_;
  int calls_ = 0;
};

class SharedDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/srlm_shared_dir_test_XXXXXX";
    root_ = mkdtemp(pattern);
  }
  void TearDown() override { RemoveTree(root_); }
  static std::vector<std::string> Names(const std::string& dir) {
    std::vector<std::string> names;
    if (DIR* listing = opendir(dir.c_str()); listing != nullptr) {
      while (dirent* entry = readdir(listing)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      closedir(listing);
    }
    return names;
  }
  static void Touch(const std::string& path) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0) << path;
    close(fd);
  }
  // A whole checkpoint of `step` (marker file present) under `out`.
  static void MakeCheckpoint(const std::string& out, int step, bool whole = true) {
    mkdir(out.c_str(), 0755);
    const std::string dir = CheckpointDir(out, step);
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir;
    if (whole) Touch(dir + "/trainer_state.json");
  }
  std::string root_;
};

TEST_F(SharedDirectoryTest, AloneItMakesTheFolderAndLeavesNothingInIt) {
  const std::string dir = root_ + "/a/b/checkpoints";
  ScriptedRanks alone(0, 1, {});
  ASSERT_TRUE(CheckDirectorySharedByRanks(dir, "--out", alone, 0.1).ok());
  EXPECT_THAT(Names(dir), ::testing::IsEmpty());
  EXPECT_EQ(alone.calls(), 2);  // the probe's name, then who saw it
}

TEST_F(SharedDirectoryTest, AFolderThatCannotBeMadeFailsEveryRankWithThePath) {
  Touch(root_ + "/file");
  ScriptedRanks rank0(0, 2, {{0, 0}});
  const absl::Status status = CheckDirectorySharedByRanks(root_ + "/file/checkpoints", "--out", rank0, 0.1);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(root_ + "/file"));
  // Another rank learns it from the all-reduce, and stops there too.
  ScriptedRanks rank1(1, 2, {{12345, 1}});
  const absl::Status told = CheckDirectorySharedByRanks(root_ + "/elsewhere", "--out", rank1, 0.1);
  EXPECT_EQ(told.code(), absl::StatusCode::kFailedPrecondition) << told;
  EXPECT_THAT(told.message(), HasSubstr("rank 0 could not write to --out"));
  EXPECT_EQ(rank1.calls(), 1);
}

TEST_F(SharedDirectoryTest, ARankThatSeesRankZerosProbeGoesOn) {
  Touch(root_ + "/.srlm-shared-check-777");  // what rank 0 wrote
  ScriptedRanks rank1(1, 2, {{777, 0}, {0, 0}});
  EXPECT_TRUE(CheckDirectorySharedByRanks(root_, "--checkpoint-root", rank1, 5).ok());
}

TEST_F(SharedDirectoryTest, ARankThatCannotSeeTheProbeFailsAndEveryRankNamesIt) {
  // Rank 1's view: rank 0 wrote probe 777 into its own folder, which this one does not show.
  ScriptedRanks rank1(1, 2, {{777, 0}, {0, 0}});
  const absl::Status status = CheckDirectorySharedByRanks(root_, "--checkpoint-root", rank1, 0.3);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("rank(s) 1 of 2 cannot see " + root_));
  EXPECT_THAT(status.message(), HasSubstr("--checkpoint-root must be a folder that every rank's host shares"));

  // Rank 0's view of a world of 3 in which rank 2 did not see it: the same error, and its probe is gone.
  ScriptedRanks rank0(0, 3, {{0, 0}, {0, 0, 1}});
  const absl::Status told = CheckDirectorySharedByRanks(root_ + "/r0", "--checkpoint-root", rank0, 0.1);
  EXPECT_EQ(told.code(), absl::StatusCode::kFailedPrecondition) << told;
  EXPECT_THAT(told.message(), HasSubstr("rank(s) 2 of 3 cannot see " + root_ + "/r0"));
  EXPECT_THAT(Names(root_ + "/r0"), ::testing::IsEmpty());
}

TEST_F(SharedDirectoryTest, RankZeroChoosesTheNewestWholeCheckpoint) {
  const std::string out = root_ + "/out";
  MakeCheckpoint(out, 4);
  MakeCheckpoint(out, 8);
  MakeCheckpoint(out, 12, /*whole=*/false);  // killed half-way: never resumed from
  ScriptedRanks alone(0, 1, {});
  auto chosen = AgreeOnResumeCheckpoint(out, "trainer_state.json", alone, 0.1);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(chosen->value_or(""), CheckpointDir(out, 8));

  ScriptedRanks fresh(0, 1, {});
  auto none = AgreeOnResumeCheckpoint(root_ + "/nothing", "trainer_state.json", fresh, 0.1);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
}

TEST_F(SharedDirectoryTest, AnotherRankResumesFromRankZerosChoiceOrFails) {
  const std::string out = root_ + "/out";
  MakeCheckpoint(out, 4);
  MakeCheckpoint(out, 8);
  // Rank 0 chose step 4 (its view lags): this rank resumes from 4 too, although it sees 8.
  ScriptedRanks agrees(1, 2, {{4, 0}, {0, 0}});
  auto chosen = AgreeOnResumeCheckpoint(out, "trainer_state.json", agrees, 0.1);
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  EXPECT_EQ(chosen->value_or(""), CheckpointDir(out, 4));
  // Rank 0 chose step 16, which this rank does not see: no rank resumes from another one.
  ScriptedRanks lags(1, 2, {{16, 0}, {0, 0}});
  auto missing = AgreeOnResumeCheckpoint(out, "trainer_state.json", lags, 0.3);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("rank(s) 1 of 2 cannot see " + CheckpointDir(out, 16)));
  // Rank 0 found none: nor does this rank resume.
  ScriptedRanks none(1, 2, {{-1, 0}});
  auto fresh = AgreeOnResumeCheckpoint(out, "trainer_state.json", none, 0.1);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE(fresh->has_value());
}

}  // namespace
}  // namespace srlm
