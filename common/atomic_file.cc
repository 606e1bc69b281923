// Implementation of common/atomic_file.h.
#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace srlm {
namespace {

struct Target {
  std::string path;      // the file to replace (symbolic links resolved)
  bool special = false;  // exists and is not a regular file: written in place
};

absl::StatusOr<Target> ResolveTarget(const std::string& path) {
  Target target{path};
  struct stat link;
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) != nullptr) target.path = resolved;  // a dangling link: replaced
  }
  struct stat info;
  if (::stat(target.path.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": it is a directory"));
    }
    target.special = !S_ISREG(info.st_mode);
  }
  const size_t slash = target.path.find_last_of('/');
  const std::string name = slash == std::string::npos ? target.path : target.path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("cannot write '", path, "': it names a folder, not a file"));
  }
  return target;
}

// "<folder>/.<name>.tmp-<pid>" beside `target`.
std::string TempBeside(const std::string& target) {
  const size_t slash = target.find_last_of('/');
  const std::string folder = slash == std::string::npos ? "" : target.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? target : target.substr(slash + 1);
  return absl::StrCat(folder, ".", name, ".tmp-", ::getpid());
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("writing ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::function<absl::Status(const ByteSink&)>& produce) {
  absl::StatusOr<Target> target = ResolveTarget(path);
  if (!target.ok()) return target.status();
  const std::string file = target->special ? target->path : TempBeside(target->path);
  const int fd = ::open(file.c_str(), target->special ? (O_WRONLY | O_CLOEXEC) : (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC),
                        0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path, " (opening ", file, ")"));
  absl::Status status = produce([&](std::string_view bytes) { return WriteAll(fd, bytes, file); });
  if (status.ok() && !target->special && ::fsync(fd) != 0) status = absl::ErrnoToStatus(errno, "fsync " + file);
  if (::close(fd) != 0 && status.ok()) status = absl::ErrnoToStatus(errno, "closing " + file);
  if (!target->special) {
    if (status.ok() && ::rename(file.c_str(), target->path.c_str()) != 0) {
      status = absl::ErrnoToStatus(errno, absl::StrCat("renaming ", file, " to ", target->path));
    }
    if (!status.ok()) ::unlink(file.c_str());
  }
  if (!status.ok()) return absl::Status(status.code(), absl::StrCat("cannot write ", path, ": ", status.message()));
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  return WriteFileAtomically(path, [contents](const ByteSink& sink) { return sink(contents); });
}

absl::Status CheckFileWritable(const std::string& path) {
  absl::StatusOr<Target> target = ResolveTarget(path);
  if (!target.ok()) return target.status();
  if (target->special) return ::access(target->path.c_str(), W_OK) == 0
                                  ? absl::OkStatus()
                                  : absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  const std::string probe = TempBeside(target->path);
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path, " (creating ", probe, ")"));
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

}  // namespace srlm
