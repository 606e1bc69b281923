// Implementation of worker/train/atomic_dir.h. Plain POSIX calls: libtorch exports its own copy of
// std::filesystem's out-of-line functions, and its remove_all crashes when called from our code.
#include "worker/train/atomic_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

absl::Status Errno(const std::string& what) { return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno))); }

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Names in a folder, without "." and ".."; none when it does not exist, an error when it cannot be
// read.
absl::StatusOr<std::vector<std::string>> ReadNames(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    return Errno("cannot list " + dir);
  }
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// ReadNames for best-effort walks: a folder that cannot be read has no names.
std::vector<std::string> ListNames(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = ReadNames(dir);
  return names.ok() ? *std::move(names) : std::vector<std::string>();
}

// fsyncs every file and folder under `dir` (depth first), then `dir`.
absl::Status FsyncTree(const std::string& dir) {
  for (const std::string& name : ListNames(dir)) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return Errno("stat " + path);
    if (S_ISDIR(st.st_mode)) {
      SRLM_RETURN_IF_ERROR(FsyncTree(path));
    } else if (S_ISREG(st.st_mode)) {
      SRLM_RETURN_IF_ERROR(FsyncPath(path));
    }
  }
  return FsyncPath(dir);
}

// The folder `final_dir` is written into, and its own name.
std::pair<std::string, std::string> ParentAndName(std::string target) {
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  const size_t slash = target.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  const std::string name = slash == std::string::npos ? target : target.substr(slash + 1);
  return {parent, name};
}

}  // namespace

absl::Status FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path + " for fsync");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync ", path, ": ", std::strerror(saved)));
  return absl::OkStatus();
}

void RemoveTree(const std::string& path) {
  ::nftw(path.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 16,
         FTW_DEPTH | FTW_PHYS);
}

absl::Status CheckDirectoryWritable(const std::string& final_dir) {
  const auto [parent, name] = ParentAndName(final_dir);
  SRLM_RETURN_IF_ERROR(MakeDirs(parent));
  const std::string probe = parent + "/." + name + ".write-probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir " + probe);
  if (::rmdir(probe.c_str()) != 0) return Errno("rmdir " + probe);
  return absl::OkStatus();
}

absl::Status WriteDirectoryAtomically(const std::string& final_dir,
                                      const std::function<absl::Status(const std::string& tmp_dir)>& write_contents) {
  const auto [parent, name] = ParentAndName(final_dir);
  const std::string target = parent == "/" ? "/" + name : (parent + "/" + name);
  const std::string prefix = "." + name + ".tmp-", old_prefix = "." + name + ".old-";
  const std::string tmp = parent + "/" + prefix + std::to_string(::getpid());
  SRLM_RETURN_IF_ERROR(MakeDirs(parent));
  for (const std::string& entry : ListNames(parent)) {  // crashed writers' leftovers
    if (entry.rfind(prefix, 0) == 0 || entry.rfind(old_prefix, 0) == 0) RemoveTree(parent + "/" + entry);
  }
  if (::mkdir(tmp.c_str(), 0755) != 0) return Errno("mkdir " + tmp);

  // A failed write leaves no temporary behind (the next writer would remove it, but a reader of the
  // folder should not find half a checkpoint lying there meanwhile).
  absl::Status written = write_contents(tmp);
  if (written.ok()) written = FsyncTree(tmp);
  if (!written.ok()) {
    RemoveTree(tmp);
    return internal::Annotate(written, absl::StrCat("writing ", final_dir));
  }

  if (Exists(target)) {
    // rename(2) cannot replace a non-empty folder. Swapping the two in one step leaves `target` whole
    // at every instant (a crash after it leaves the old contents under the temporary name, which the
    // next writer removes); file systems without RENAME_EXCHANGE (older NFS) move the old one aside
    // first, and a crash between the two renames leaves no `target` until the next write.
    // Test hook: SRLM_TEST_NO_RENAME_EXCHANGE takes the path of such file systems.
    const bool exchange = std::getenv("SRLM_TEST_NO_RENAME_EXCHANGE") == nullptr;
    if (exchange && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      RemoveTree(tmp);
    } else if (!exchange || errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
      const std::string old = parent + "/" + old_prefix + std::to_string(::getpid());
      if (::rename(target.c_str(), old.c_str()) != 0) return Errno("rename " + target);
      if (::rename(tmp.c_str(), target.c_str()) != 0) return Errno("rename " + tmp + " -> " + target);
      RemoveTree(old);
    } else {
      return Errno("renameat2 " + tmp + " <-> " + target);
    }
  } else if (::rename(tmp.c_str(), target.c_str()) != 0) {
    return Errno("rename " + tmp + " -> " + target);
  }
  return FsyncPath(parent);
}

std::string CheckpointDir(const std::string& out_dir, int64_t step) {
  return absl::StrCat(out_dir, "/checkpoint-", step);
}

absl::StatusOr<std::optional<int64_t>> FindLatestCheckpointStep(const std::string& out_dir,
                                                                 const std::string& marker_file) {
  // A folder that cannot be read is an error, not "none": a --resume would start over.
  SRLM_ASSIGN_OR_RETURN(const std::vector<std::string> names, ReadNames(out_dir));
  std::optional<int64_t> best;
  for (const std::string& name : names) {
    int64_t step = 0;
    if (name.rfind("checkpoint-", 0) != 0 || !absl::SimpleAtoi(name.substr(11), &step)) continue;
    const std::string dir = out_dir + "/" + name;
    if (dir != CheckpointDir(out_dir, step) || !Exists(dir + "/" + marker_file)) continue;  // "checkpoint-07"
    if (!best.has_value() || step > *best) best = step;
  }
  return best;
}

}  // namespace srlm
