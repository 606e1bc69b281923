// Implementation of coordinator/lease_id.h.
#include "coordinator/lease_id.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace srlm::coordinator {

std::string MakeLeaseId(int64_t iteration, char kind, int64_t shard, int32_t attempt) {
  return absl::StrCat("i", iteration, "-", std::string(1, kind), "-s", shard, "-a", attempt);
}

absl::StatusOr<LeaseKey> ParseLeaseId(const std::string& lease_id) {
  // The id must round-trip through MakeLeaseId: that checks the i/s/a prefixes, and it refuses a
  // second spelling of a lease ("s02", "s+2"), which would match no row of the leases table.
  const std::vector<std::string> parts = absl::StrSplit(lease_id, '-');
  LeaseKey key;
  int64_t attempt = 0;
  const bool parsed = parts.size() == 4 && (parts[1] == "P" || parts[1] == "G") &&
                      absl::SimpleAtoi(absl::string_view(parts[0]).substr(1), &key.iteration) &&
                      absl::SimpleAtoi(absl::string_view(parts[2]).substr(1), &key.shard) &&
                      absl::SimpleAtoi(absl::string_view(parts[3]).substr(1), &attempt);
  if (parsed) {
    key.kind = parts[1][0];
    key.attempt = static_cast<int32_t>(attempt);
  }
  if (!parsed || MakeLeaseId(key.iteration, key.kind, key.shard, key.attempt) != lease_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_id '", lease_id, "' is malformed (expected e.g. i1-G-s0-a1)"));
  }
  return key;
}

}  // namespace srlm::coordinator
