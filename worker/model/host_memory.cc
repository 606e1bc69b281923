// Implementation of worker/model/host_memory.h.
#include "worker/model/host_memory.h"

#include <malloc.h>

#include "absl/strings/str_cat.h"

namespace srlm {

absl::Status KeepFreedHostMemoryForReuse() {
  if (mallopt(M_MMAP_THRESHOLD, kMallocMmapThresholdBytes) != 1) {
    return absl::InternalError(absl::StrCat("mallopt(M_MMAP_THRESHOLD, ", kMallocMmapThresholdBytes,
                                            ") was refused by the C library"));
  }
  if (mallopt(M_TRIM_THRESHOLD, kMallocTrimThresholdBytes) != 1) {
    return absl::InternalError(absl::StrCat("mallopt(M_TRIM_THRESHOLD, ", kMallocTrimThresholdBytes,
                                            ") was refused by the C library"));
  }
  return absl::OkStatus();
}

}  // namespace srlm
