// Tests for common/atomic_file.h: whole-file replacement that keeps old contents on failure, keeps
// symbolic links, and writes devices in place.
#include "common/atomic_file.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"

namespace srlm {
namespace {

using testing_util::ReadFileText;
using testing_util::TempDir;

int EntriesIn(const std::string& dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
    ::closedir(d);
  }
  return n;
}

TEST(AtomicFile, ReplacesWholeOrLeavesTheOldContents) {
  TempDir dir("srlm_atomic_file_");
  const std::string file = dir.path() + "/out.jsonl";
  ASSERT_TRUE(WriteFileAtomically(file, "first\n").ok());
  EXPECT_EQ(ReadFileText(file), "first\n");
  ASSERT_TRUE(WriteFileAtomically(file, "second\n").ok());
  EXPECT_EQ(ReadFileText(file), "second\n");
  const absl::Status failed = WriteFileAtomically(file, [](const ByteSink& sink) {
    if (absl::Status s = sink("half of a third"); !s.ok()) return s;
    return absl::DataLossError("the producer failed");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(failed.message().find("cannot write " + file), std::string::npos) << failed;
  EXPECT_EQ(ReadFileText(file), "second\n");
  EXPECT_EQ(EntriesIn(dir.path()), 1) << "a temporary was left behind";
}

// A symbolic link stays a link; its target gets the new contents (rename over the link replaced it).
TEST(AtomicFile, KeepsASymbolicLinkAndReplacesItsTarget) {
  TempDir dir("srlm_atomic_file_");
  const std::string target = dir.path() + "/real.jsonl", link = dir.path() + "/link.jsonl";
  ASSERT_TRUE(WriteFileAtomically(target, "old\n").ok());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomically(link, "new\n").ok());
  struct stat info;
  ASSERT_EQ(::lstat(link.c_str(), &info), 0);
  EXPECT_TRUE(S_ISLNK(info.st_mode));
  EXPECT_EQ(ReadFileText(target), "new\n");
}

// A device is written in place: renaming a temporary over /dev/null (as root) would replace it.
TEST(AtomicFile, WritesADeviceInPlace) {
  ASSERT_TRUE(WriteFileAtomically("/dev/null", "discarded\n").ok());
  struct stat info;
  ASSERT_EQ(::stat("/dev/null", &info), 0);
  EXPECT_TRUE(S_ISCHR(info.st_mode));
  EXPECT_TRUE(CheckFileWritable("/dev/null").ok());
}

TEST(AtomicFile, FoldersAndMissingFoldersAreClearErrors) {
  TempDir dir("srlm_atomic_file_");
  const absl::Status folder = WriteFileAtomically(dir.path(), "x");
  EXPECT_NE(folder.message().find("it is a directory"), std::string::npos) << folder;
  EXPECT_NE(CheckFileWritable(dir.path()).message().find("it is a directory"), std::string::npos);
  const absl::Status missing = CheckFileWritable(dir.path() + "/no/such/out.jsonl");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_NE(missing.message().find("No such file or directory"), std::string::npos) << missing;
  EXPECT_EQ(EntriesIn(dir.path()), 0);
}

TEST(AtomicFile, CheckFileWritableFailsEarlyWithTheReasonAndWritesNothing) {
  TempDir dir("srlm_jsonl_test_");
  const absl::Status missing = CheckFileWritable(dir.path() + "/no/such/folder/out.jsonl");
  EXPECT_NE(std::string(missing.message()).find("No such file or directory"), std::string::npos) << missing;
  const absl::Status folder = CheckFileWritable(dir.path());
  EXPECT_NE(std::string(folder.message()).find("is a directory"), std::string::npos) << folder;
  EXPECT_FALSE(CheckFileWritable(dir.path() + "/").ok());
  EXPECT_TRUE(CheckFileWritable(dir.path() + "/out.jsonl").ok());
  struct stat st;
  EXPECT_NE(::stat((dir.path() + "/out.jsonl").c_str(), &st), 0) << "the check created the file";
}

}  // namespace
}  // namespace srlm
