// Lease ids: the one spelling of a PROMPTS or GENERATE lease, "i<iteration>-<P|G>-s<shard>-a<attempt>"
// (i1-G-s0-a1), which the leases table keys on, and its parse. Pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace srlm::coordinator {

struct LeaseKey {
  int64_t iteration = 0;
  char kind = 'G';  // 'P' PROMPTS, 'G' GENERATE
  int64_t shard = 0;
  int32_t attempt = 0;
};

std::string MakeLeaseId(int64_t iteration, char kind, int64_t shard, int32_t attempt);
// InvalidArgument unless `lease_id` is exactly what MakeLeaseId spells for its parts.
absl::StatusOr<LeaseKey> ParseLeaseId(const std::string& lease_id);

}  // namespace srlm::coordinator
