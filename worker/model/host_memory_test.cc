// Tests worker/model/host_memory.h: after the policy, a freed block is reused without page faults.
#include "worker/model/host_memory.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>

namespace srlm {
namespace {

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer replaces malloc, and its mallopt takes none of glibc's settings: the policy must
// report that (the worker logs it) rather than claim to be in force.
TEST(HostMemory, SanitizerAllocatorRefusesThePolicyAndSaysSo) {
  EXPECT_EQ(KeepFreedHostMemoryForReuse().code(), absl::StatusCode::kInternal);
}
#else
long MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Allocates `bytes`, writes one byte per page (through volatile, so nothing is elided), frees it;
// returns the minor page faults that took.
long FaultsToTouch(size_t bytes) {
  const long before = MinorFaults();
  volatile char* block = static_cast<volatile char*>(std::malloc(bytes));
  for (size_t i = 0; i < bytes; i += 4096) block[i] = 1;
  std::free(const_cast<char*>(block));
  return MinorFaults() - before;
}

TEST(HostMemory, FreedBlockIsReusedWithoutFaults) {
  ASSERT_TRUE(KeepFreedHostMemoryForReuse().ok());
  constexpr size_t kBytes = 24 << 20;  // an activation-sized block, under the 32 MiB mmap threshold
  FaultsToTouch(kBytes);               // the first touch faults each page in
  // Without the policy each round maps (or re-grows the heap) and faults ~6,000 pages again.
  for (int round = 0; round < 3; ++round) EXPECT_LT(FaultsToTouch(kBytes), 100) << "round " << round;
}
#endif

}  // namespace
}  // namespace srlm
