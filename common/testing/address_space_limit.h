// Test helper: limits the process's address space (setrlimit RLIMIT_AS) to what it uses now plus a
// headroom while alive, so that a larger allocation fails for real, the way it does when memory
// runs out (libtorch's CPU allocator then throws). Device memory is not in the address space.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace srlm::testing_util {

class AddressSpaceLimit {
 public:
  explicit AddressSpaceLimit(int64_t headroom_bytes) {
    ::getrlimit(RLIMIT_AS, &saved_);
    const int64_t used = VirtualMemoryBytes();
    struct rlimit limit = saved_;
    limit.rlim_cur = static_cast<rlim_t>(used + headroom_bytes);
    ok_ = used > 0 && ::setrlimit(RLIMIT_AS, &limit) == 0;
  }
  ~AddressSpaceLimit() { ::setrlimit(RLIMIT_AS, &saved_); }
  AddressSpaceLimit(const AddressSpaceLimit&) = delete;
  AddressSpaceLimit& operator=(const AddressSpaceLimit&) = delete;
  bool ok() const { return ok_; }

  // VmSize of /proc/self/status in bytes, or -1.
  static int64_t VirtualMemoryBytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmSize:", 0) == 0) return std::stoll(line.substr(7)) * 1024;  // "VmSize:  123 kB"
    }
    return -1;
  }

 private:
  struct rlimit saved_;
  bool ok_ = false;
};

}  // namespace srlm::testing_util
