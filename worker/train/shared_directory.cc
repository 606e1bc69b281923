// Implementation of worker/train/shared_directory.h.
#include "worker/train/shared_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/host_name.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "worker/train/atomic_dir.h"

namespace srlm {
namespace {

// Rank 0's probe: makes `dir`, then creates `path` holding the host name.
absl::Status WriteProbe(const std::string& dir, const std::string& path) {
  SRLM_RETURN_IF_ERROR(MakeDirs(dir));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  const std::string host = HostName() + "\n";
  const bool written = ::write(fd, host.data(), host.size()) == static_cast<ssize_t>(host.size());
  const int saved_errno = errno;
  if (::close(fd) != 0 || !written) {
    ::unlink(path.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(written ? errno : saved_errno)));
  }
  return absl::OkStatus();
}

// Whether `path` in `dir` shows up within `wait_seconds`. Opening the folder first makes a network
// file system revalidate it (close-to-open), so a cached listing does not hide the new name.
bool AppearsWithin(const std::string& dir, const std::string& path, double wait_seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  while (true) {
    if (DIR* listing = ::opendir(dir.c_str()); listing != nullptr) ::closedir(listing);
    if (::access(path.c_str(), F_OK) == 0) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Collective. The ranks (other than 0) on which `path` did not show up within `wait_seconds`; each
// such rank logs its host.
absl::StatusOr<std::vector<int>> RanksThatCannotSee(const std::string& dir, const std::string& path,
                                                    Communicator& comm, double wait_seconds) {
  std::vector<double> blind(static_cast<size_t>(comm.world_size()), 0);
  if (comm.rank() != 0 && !AppearsWithin(dir, path, wait_seconds)) {
    blind[static_cast<size_t>(comm.rank())] = 1;
    SRLM_LOG(ERROR) << "rank " << comm.rank() << " on host " << HostName() << " cannot see " << path
                    << ", which rank 0 sees";
  }
  SRLM_RETURN_IF_ERROR(comm.AllReduceMaxHost(&blind));
  std::vector<int> ranks;
  for (size_t r = 0; r < blind.size(); ++r) {
    if (blind[r] > 0) ranks.push_back(static_cast<int>(r));
  }
  return ranks;
}

absl::Status NotShared(const std::vector<int>& ranks, int world, const std::string& seen, double wait_seconds,
                       const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "rank(s) ", absl::StrJoin(ranks, ", "), " of ", world, " cannot see ", seen, " as rank 0 does (waited ",
      wait_seconds, " s): ", what, " must be a folder that every rank's host shares (a network file system), ",
      "not a path local to each node"));
}

// Collective. Rank 0's `value` (an integer of at most 53 bits: a double carries it exactly) on every
// rank. When rank 0 failed (`value` holds its error there), rank 0 returns that error and the other
// ranks FailedPrecondition(`failed_on_rank_zero`).
absl::StatusOr<int64_t> FromRankZero(const absl::StatusOr<int64_t>& value, Communicator& comm,
                                     const std::string& failed_on_rank_zero) {
  std::vector<double> sent = {std::numeric_limits<double>::lowest(), 0};  // {value, rank 0 failed}
  if (comm.rank() == 0) {
    if (value.ok()) sent[0] = static_cast<double>(*value);
    sent[1] = value.ok() ? 0 : 1;
  }
  SRLM_RETURN_IF_ERROR(comm.AllReduceMaxHost(&sent));
  if (comm.rank() == 0 && !value.ok()) return value.status();
  if (sent[1] > 0) return absl::FailedPreconditionError(failed_on_rank_zero);
  return static_cast<int64_t>(sent[0]);
}

}  // namespace

absl::Status CheckDirectorySharedByRanks(const std::string& dir, const std::string& what, Communicator& comm,
                                         double wait_seconds) {
  // The probe's name: a random 48-bit number from rank 0 (exact in a double).
  auto probe_path = [&](uint64_t number) { return absl::StrCat(dir, "/.srlm-shared-check-", number); };
  absl::StatusOr<int64_t> written = int64_t{0};
  if (comm.rank() == 0) {
    std::random_device entropy;
    const uint64_t number = ((uint64_t{entropy()} << 32) ^ entropy()) & ((uint64_t{1} << 48) - 1);
    absl::Status probe = WriteProbe(dir, probe_path(number));
    written = probe.ok() ? absl::StatusOr<int64_t>(static_cast<int64_t>(number)) : probe;
  }
  SRLM_ASSIGN_OR_RETURN(const int64_t number,
                        FromRankZero(written, comm, absl::StrCat("rank 0 could not write to ", what, " ", dir)));
  const std::string probe = probe_path(static_cast<uint64_t>(number));
  absl::StatusOr<std::vector<int>> blind = RanksThatCannotSee(dir, probe, comm, wait_seconds);
  if (comm.rank() == 0) ::unlink(probe.c_str());
  SRLM_RETURN_IF_ERROR(blind.status());
  if (blind->empty()) return absl::OkStatus();
  return NotShared(*blind, comm.world_size(), absl::StrCat(dir, " (a probe file rank 0 wrote in it)"), wait_seconds,
                   what);
}

absl::StatusOr<std::optional<std::string>> AgreeOnResumeCheckpoint(const std::string& out_dir,
                                                                   const std::string& marker_file,
                                                                   Communicator& comm, double wait_seconds) {
  absl::StatusOr<int64_t> found = int64_t{-1};  // rank 0's newest step, -1 for none
  if (comm.rank() == 0) {
    absl::StatusOr<std::optional<int64_t>> step = FindLatestCheckpointStep(out_dir, marker_file);
    found = step.ok() ? absl::StatusOr<int64_t>(step->value_or(-1)) : step.status();
  }
  SRLM_ASSIGN_OR_RETURN(const int64_t step, FromRankZero(found, comm, absl::StrCat("rank 0 could not list ", out_dir)));
  if (step < 0) return std::optional<std::string>();
  const std::string dir = CheckpointDir(out_dir, step);
  SRLM_ASSIGN_OR_RETURN(std::vector<int> blind, RanksThatCannotSee(out_dir, dir + "/" + marker_file, comm,
                                                                   wait_seconds));
  if (blind.empty()) return std::optional<std::string>(dir);
  return NotShared(blind, comm.world_size(), absl::StrCat(dir, ", the checkpoint to resume from,"), wait_seconds,
                   "--out");
}

}  // namespace srlm
