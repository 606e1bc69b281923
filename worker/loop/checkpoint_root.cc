// Implementation of worker/loop/checkpoint_root.h. Plain POSIX calls, as in
// worker/train/atomic_dir.cc: this library is linked into srlm-worker with libtorch, which exports
// its own copy of std::filesystem's out-of-line functions.
#include "worker/loop/checkpoint_root.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/make_dirs.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

// How long a reader waits for the line of a marker it finds empty: a writer on a file system
// without hard links creates the marker, then writes it.
constexpr double kEmptyMarkerWaitSeconds = 2;

absl::Status Errno(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

// The marker's content without surrounding white space; nullopt when there is no marker.
absl::StatusOr<std::optional<std::string>> ReadMarker(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return Errno("cannot open " + path, errno);
  }
  std::string content;
  char buffer[256];
  ssize_t n = 0;
  while (content.size() < 4096 && (n = ::read(fd, buffer, sizeof(buffer))) > 0)
    content.append(buffer, n);
  const int err = errno;
  ::close(fd);
  if (n < 0) return Errno("cannot read " + path, err);
  return std::string(absl::StripAsciiWhitespace(content));
}

// ReadMarker, waiting up to kEmptyMarkerWaitSeconds while the marker is empty.
absl::StatusOr<std::optional<std::string>> ReadMarkerLine(const std::string& path) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(kEmptyMarkerWaitSeconds);
  while (true) {
    SRLM_ASSIGN_OR_RETURN(std::optional<std::string> line, ReadMarker(path));
    if (!line.has_value() || !line->empty() || std::chrono::steady_clock::now() >= deadline)
      return line;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// How many checkpoints (iter-<t> folders) `root` holds; temporaries (".iter-<t>.tmp-...") do not
// count.
absl::StatusOr<int> CountCheckpoints(const std::string& root) {
  DIR* dir = ::opendir(root.c_str());
  if (dir == nullptr) return Errno("cannot list " + root, errno);
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (absl::StartsWith(name, "iter-") && name.size() > 5 &&
        name.find_first_not_of("0123456789", 5) == absl::string_view::npos) {
      ++count;
    }
  }
  ::closedir(dir);
  return count;
}

// Creates `path` (exclusively: AlreadyExists when it is there) holding `content`, fsynced. A failed
// write removes it.
absl::Status WriteNewFile(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(path);
    return Errno("cannot create " + path, errno);
  }
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == content.size() && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Errno("cannot write " + path, err);
  }
  return absl::OkStatus();
}

// Writes `line` to `marker` unless a marker is there already. True when this caller's line is the
// one there; false when another writer's came first (the caller reads it back either way).
absl::StatusOr<bool> CreateMarker(const std::string& root, const std::string& marker,
                                  const std::string& line) {
  static std::atomic<uint64_t> counter{0};
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "host");
  const std::string tmp = absl::StrCat(root, "/.", kCheckpointRootMarker, ".tmp-", host, "-",
                                       ::getpid(), "-", counter++);
  ::unlink(tmp.c_str());  // a leftover of a crashed process that had this pid
  SRLM_RETURN_IF_ERROR(WriteNewFile(tmp, line));
  const int linked = ::link(tmp.c_str(), marker.c_str());
  const int err = errno;
  ::unlink(tmp.c_str());
  if (linked == 0) {
    if (const int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); fd >= 0) {
      ::fsync(fd);  // the new name survives a crash
      ::close(fd);
    }
    return true;
  }
  if (err == EEXIST) return false;
  if (err == EPERM || err == EOPNOTSUPP || err == ENOTSUP || err == ENOSYS) {
    // No hard links on this file system: create the marker itself, exclusively. A reader may find
    // it empty for a moment (ReadMarkerLine waits for the line).
    absl::Status written = WriteNewFile(marker, line);
    if (absl::IsAlreadyExists(written)) return false;
    SRLM_RETURN_IF_ERROR(written);
    return true;
  }
  // NFS may report a link that was made as failed (a retransmitted request): the marker decides.
  struct stat st;
  if (::stat(marker.c_str(), &st) == 0) return false;
  return Errno(absl::StrCat("cannot link ", tmp, " to ", marker), err);
}

}  // namespace

absl::StatusOr<CheckpointRootClaim> ClaimCheckpointRoot(const std::string& root_in,
                                                        const std::string& run_id) {
  if (root_in.empty()) return absl::InvalidArgumentError("no checkpoint root");
  if (run_id.empty() || run_id != absl::StripAsciiWhitespace(run_id) ||
      run_id.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("run id '", run_id, "' cannot be written to a checkpoint root"));
  }
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (struct stat st; ::stat(root.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint root: ", root, " is not a folder"));
  }
  SRLM_RETURN_IF_ERROR_CTX(MakeDirs(root), "checkpoint root");
  const std::string marker = absl::StrCat(root == "/" ? "" : root, "/", kCheckpointRootMarker);

  CheckpointRootClaim claim = CheckpointRootClaim::kOurs;
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> owner, ReadMarkerLine(marker));
  int checkpoints = 0;
  if (!owner.has_value()) {
    SRLM_ASSIGN_OR_RETURN(checkpoints, CountCheckpoints(root));
    SRLM_ASSIGN_OR_RETURN(const bool wrote, CreateMarker(root, marker, run_id + "\n"));
    if (wrote) claim = checkpoints > 0 ? CheckpointRootClaim::kAdopted : CheckpointRootClaim::kNew;
    SRLM_ASSIGN_OR_RETURN(owner, ReadMarkerLine(marker));  // whoever won the race
    if (!owner.has_value())
      return absl::InternalError(absl::StrCat(marker, " vanished right after it was written"));
  }
  if (owner->empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint root ", root, ": ", marker, " is empty; it names the run the root belongs to. ",
        "Write that run's id in it (srlmctl status shows it), or give this run a ",
        "--checkpoint-root of its own"));
  }
  if (*owner != run_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint root ", root, " belongs to run ", *owner, " (", marker, "), not to this run ",
        run_id, ": two runs on one root overwrite each other's checkpoints (iter-<t>). ",
        "Relaunch this run's workers with a --checkpoint-root of its own, e.g. ",
        "RUN_DIR/checkpoints as deploy/mpirun/run.sh and deploy/slurm/srlm.sbatch pass; ",
        "nothing was written to ", root));
  }
  if (claim == CheckpointRootClaim::kAdopted) {
    SRLM_LOG(WARNING) << "checkpoint root " << root << " holds " << checkpoints
                      << " checkpoint(s) (iter-*) but no " << kCheckpointRootMarker
                      << " (an older build wrote them; whose they are cannot be told): adopting it "
                      << "for run " << run_id << ". If they are another run's, stop this one and "
                      << "relaunch its workers with a --checkpoint-root of its own";
  } else if (claim == CheckpointRootClaim::kNew) {
    SRLM_LOG(INFO) << "checkpoint root " << root << " claimed for run " << run_id << " (" << marker
                   << ")";
  }
  return claim;
}

}  // namespace srlm
