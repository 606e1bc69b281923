// Tests of ClaimCheckpointRoot: a new root, the same run again, another run refused, a root written
// by an older build adopted, and claims racing in threads and in processes.
#include "worker/loop/checkpoint_root.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"

namespace srlm {
namespace {

using testing_util::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  ::closedir(d);
  return names;
}

TEST(CheckpointRootTest, ANewRootIsMadeWithItsParentsAndNamesTheRun) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch / "run/checkpoints";
  auto claim = ClaimCheckpointRoot(root, "run-a");
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ(*claim, CheckpointRootClaim::kNew);
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-a\n");
  EXPECT_EQ(Names(root), (std::set<std::string>{"srlm-run-id"}));  // no temporary left behind
}

TEST(CheckpointRootTest, TheSameRunClaimsItAgain) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch.path();
  ASSERT_TRUE(ClaimCheckpointRoot(root, "run-a").ok());
  for (const std::string& spelling : {root, root + "/"}) {
    auto claim = ClaimCheckpointRoot(spelling, "run-a");
    ASSERT_TRUE(claim.ok()) << claim.status();
    EXPECT_EQ(*claim, CheckpointRootClaim::kOurs);
  }
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-a\n");
}

TEST(CheckpointRootTest, AnotherRunIsRefusedWithTheFolderBothRunsAndTheFix) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch.path();
  ASSERT_TRUE(ClaimCheckpointRoot(root, "run-a").ok());
  ASSERT_EQ(::mkdir((root + "/iter-1").c_str(), 0755), 0);
  std::ofstream(root + "/iter-1/model.safetensors") << "run-a's M1";

  auto claim = ClaimCheckpointRoot(root, "run-b");
  ASSERT_FALSE(claim.ok());
  EXPECT_EQ(claim.status().code(), absl::StatusCode::kFailedPrecondition) << claim.status();
  const std::string message(claim.status().message());
  for (const std::string& part :
       {"checkpoint root " + root + " belongs to run run-a", std::string("this run run-b"),
        std::string("--checkpoint-root of its own"), std::string("RUN_DIR/checkpoints")}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << " not in: " << message;
  }
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-a\n");
  EXPECT_EQ(ReadFile(root + "/iter-1/model.safetensors"), "run-a's M1");
}

TEST(CheckpointRootTest, ARootFromAnOlderBuildIsAdoptedThenKeptForThatRun) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch.path();
  for (const char* name : {"iter-1", "iter-2"})
    ASSERT_EQ(::mkdir((root + "/" + name).c_str(), 0755), 0);
  auto claim = ClaimCheckpointRoot(root, "run-old");
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ(*claim, CheckpointRootClaim::kAdopted);
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-old\n");
  EXPECT_EQ(ClaimCheckpointRoot(root, "run-new").status().code(),
            absl::StatusCode::kFailedPrecondition);

  // A crashed writer's temporary or a stray file is no checkpoint: such a root is new.
  const TempDir other_scratch("checkpoint_root_");
  const std::string other = other_scratch.path();
  ASSERT_EQ(::mkdir((other + "/.iter-1.tmp-77").c_str(), 0755), 0);
  std::ofstream(other + "/notes.txt") << "x";
  auto fresh = ClaimCheckpointRoot(other, "run-a");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(*fresh, CheckpointRootClaim::kNew);
}

TEST(CheckpointRootTest, BadRootsAndMarkersAreRefusedWithThePath) {
  EXPECT_EQ(ClaimCheckpointRoot("", "run-a").status().code(), absl::StatusCode::kInvalidArgument);
  const TempDir scratch("checkpoint_root_");
  const std::string dir = scratch.path();
  EXPECT_EQ(ClaimCheckpointRoot(dir, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClaimCheckpointRoot(dir, "run-a\nrun-b").status().code(),
            absl::StatusCode::kInvalidArgument);

  std::ofstream(dir + "/file") << "x";
  auto in_the_way = ClaimCheckpointRoot(dir + "/file", "run-a");
  ASSERT_FALSE(in_the_way.ok());
  EXPECT_NE(in_the_way.status().message().find(dir + "/file is not a folder"), std::string::npos)
      << in_the_way.status();

  const TempDir root_scratch("checkpoint_root_");
  const std::string root = root_scratch.path();
  std::ofstream(root + "/srlm-run-id") << "\n";
  auto empty = ClaimCheckpointRoot(root, "run-a");  // waits 2 s for a line that never comes
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(empty.status().message().find(root + "/srlm-run-id is empty"), std::string::npos)
      << empty.status();
}

// Every rank of a run claims the root at once: all succeed, exactly one wrote the marker, and no
// temporary is left.
TEST(CheckpointRootTest, RanksOfOneRunRacingInThreadsAllSucceed) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch / "checkpoints";
  constexpr int kRanks = 16;
  std::atomic<bool> go{false};
  std::vector<absl::StatusOr<CheckpointRootClaim>> claims(kRanks, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kRanks; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      claims[i] = ClaimCheckpointRoot(root, "run-a");
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  int wrote = 0;
  for (const auto& claim : claims) {
    ASSERT_TRUE(claim.ok()) << claim.status();
    wrote += *claim == CheckpointRootClaim::kNew;
  }
  EXPECT_EQ(wrote, 1);
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-a\n");
  EXPECT_EQ(Names(root), (std::set<std::string>{"srlm-run-id"}));
}

// Two runs (here eight) started at once on one root: the first writer owns it, every other is
// refused.
TEST(CheckpointRootTest, RunsRacingInProcessesLeaveOneOwner) {
  const TempDir scratch("checkpoint_root_");
  const std::string root = scratch / "checkpoints";
  constexpr int kRuns = 8;
  std::vector<pid_t> children;
  for (int i = 0; i < kRuns; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto claim = ClaimCheckpointRoot(root, "run-" + std::to_string(i));
      if (claim.ok()) ::_exit(0);
      ::_exit(claim.status().code() == absl::StatusCode::kFailedPrecondition ? 1 : 2);
    }
    children.push_back(pid);
  }
  std::vector<int> owners;
  for (int i = 0; i < kRuns; ++i) {
    int status = 0;
    ASSERT_EQ(::waitpid(children[i], &status, 0), children[i]);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 2) << "run " << i;
    if (WEXITSTATUS(status) == 0) owners.push_back(i);
  }
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(ReadFile(root + "/srlm-run-id"), "run-" + std::to_string(owners[0]) + "\n");
  EXPECT_EQ(Names(root), (std::set<std::string>{"srlm-run-id"}));
}

}  // namespace
}  // namespace srlm
