// Host-memory policy for a worker process: glibc malloc keeps the memory that tensors free and hands
// it to the next step, instead of returning it to the kernel and faulting it in again.
//
// Why: by default glibc returns the top of the heap to the kernel once 128 KiB are free there, and
// serves blocks above a (moving) mmap threshold with fresh mappings. A training step allocates and
// frees the same activations every step (the logits alone are 25-50 MB at the benchmark's batch), so
// each step paid ~25,000 page faults (zeroing ~100 MB) and 6-12% of its time in the kernel
// (docs/PERFORMANCE.md, "Host memory"). A worker owns its machine's memory for the whole run, as the
// CUDA caching allocator does on a GPU, so keeping the peak resident is the right trade.
#pragma once

#include "absl/status/status.h"

namespace srlm {

// glibc's M_MMAP_THRESHOLD at its largest value on 64-bit Linux (HEAP_MAX_SIZE / 2): blocks at
// least that big are still mapped and unmapped.
inline constexpr int kMallocMmapThresholdBytes = 32 << 20;
// M_TRIM_THRESHOLD: the heap is trimmed only when that much is free at its top.
inline constexpr int kMallocTrimThresholdBytes = 1 << 30;

// Sets the two thresholds above. Call once, early in main(), before any threads start.
absl::Status KeepFreedHostMemoryForReuse();

}  // namespace srlm
