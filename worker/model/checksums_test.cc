// Tests for worker/model/checksums.h: a process hashes an unchanged, verified file once; any write
// to it (also one that keeps its size and sets its mtime back) makes the next verification read it.
#include "worker/model/checksums.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"

namespace srlm {
namespace {

using testing_util::TempDir;
using testing_util::WriteFileText;

// Lets the files' change times fall out of the window in which a verified digest is not remembered.
void LetFileTimesSettle() { std::this_thread::sleep_for(std::chrono::milliseconds(250)); }

TEST(ChecksumManifest, AnUnchangedFileIsHashedOncePerProcess) {
  TempDir dir("srlm_checksum_cache_");
  WriteFileText(dir.path() + "/a.bin", std::string(100000, 'a'));
  WriteFileText(dir.path() + "/b.json", "{\"x\": 1}");
  ASSERT_TRUE(WriteChecksumManifest(dir.path(), {"a.bin", "b.json"}).ok());
  LetFileTimesSettle();
  const int64_t before = FilesHashedForVerification();
  ASSERT_EQ(VerifyChecksumManifest(dir.path()).value_or(-1), 2);
  EXPECT_EQ(FilesHashedForVerification() - before, 2);
  ASSERT_EQ(VerifyChecksumManifest(dir.path()).value_or(-1), 2);
  EXPECT_EQ(FilesHashedForVerification() - before, 2) << "unchanged files were read again";
}

TEST(ChecksumManifest, AFileInPlaceOfTheDirectoryIsSaidToBeOne) {
  // Said "<file>/checksums.sha256 exists but cannot be read"; no manifest (ENOENT) is still none.
  TempDir dir("srlm_checksum_path_");
  WriteFileText(dir.path() + "/p.jsonl", "{}\n");
  const auto file = VerifyChecksumManifest(dir.path() + "/p.jsonl");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(std::string(file.status().message()).find("cannot check " + dir.path() + "/p.jsonl/checksums.sha256"),
            std::string::npos)
      << file.status();
  EXPECT_NE(std::string(file.status().message()).find("Not a directory"), std::string::npos) << file.status();
  EXPECT_EQ(VerifyChecksumManifest(dir.path()).value_or(-1), 0);
}

TEST(ChecksumManifest, AWriteThatKeepsSizeAndMtimeIsStillCaught) {
  TempDir dir("srlm_checksum_cache_");
  const std::string file = dir.path() + "/weights.bin";
  WriteFileText(file, std::string(4096, 'w'));
  ASSERT_TRUE(WriteChecksumManifest(dir.path(), {"weights.bin"}).ok());
  LetFileTimesSettle();
  ASSERT_EQ(VerifyChecksumManifest(dir.path()).value_or(-1), 1);
  struct stat original;
  ASSERT_EQ(::stat(file.c_str(), &original), 0);
  {  // one byte flipped in place, then the modification time set back to what it was
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('W');
  }
  const struct timespec times[2] = {original.st_atim, original.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0);
  struct stat changed;
  ASSERT_EQ(::stat(file.c_str(), &changed), 0);
  ASSERT_EQ(changed.st_size, original.st_size);
  ASSERT_EQ(changed.st_mtim.tv_nsec, original.st_mtim.tv_nsec);
  const int64_t before = FilesHashedForVerification();
  absl::StatusOr<int> verified = VerifyChecksumManifest(dir.path());
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kDataLoss) << verified.status();
  EXPECT_NE(verified.status().message().find("weights.bin changed after the checkpoint was written"),
            std::string::npos)
      << verified.status();
  EXPECT_EQ(FilesHashedForVerification() - before, 1);
}

TEST(ChecksumManifest, AFileReplacedUnderItsNameIsReadAgain) {
  TempDir dir("srlm_checksum_cache_");
  WriteFileText(dir.path() + "/shard.bin", "shard");
  ASSERT_TRUE(WriteChecksumManifest(dir.path(), {"shard.bin"}).ok());
  LetFileTimesSettle();
  ASSERT_EQ(VerifyChecksumManifest(dir.path()).value_or(-1), 1);
  const int64_t before = FilesHashedForVerification();
  WriteFileText(dir.path() + "/other.bin", "SHARD");  // same length, other bytes
  ASSERT_EQ(std::rename((dir.path() + "/other.bin").c_str(), (dir.path() + "/shard.bin").c_str()), 0);
  EXPECT_EQ(VerifyChecksumManifest(dir.path()).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(FilesHashedForVerification() - before, 1);
}

}  // namespace
}  // namespace srlm
