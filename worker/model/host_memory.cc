// Implementation of worker/model/host_memory.h.
#include "worker/model/host_memory.h"

#include <malloc.h>

namespace srlm {

absl::Status KeepFreedHostMemoryForReuse() {
  constexpr int kMmapThreshold = 32 << 20;  // glibc's maximum on 64-bit (HEAP_MAX_SIZE / 2)
  constexpr int kTrimThreshold = 1 << 30;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1) {
    return absl::InternalError("mallopt(M_MMAP_THRESHOLD, 32 MiB) was refused by the C library");
  }
  if (mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1) {
    return absl::InternalError("mallopt(M_TRIM_THRESHOLD, 1 GiB) was refused by the C library");
  }
  return absl::OkStatus();
}

}  // namespace srlm
