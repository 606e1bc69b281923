// Learning-rate schedule: linear warm-up from 0 to the peak, then constant, linear or cosine decay
// to a floor (min_lr) at the last step. A pure function of the step: resuming needs only the step.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace srlm {

enum class LrScheduleKind { kConstant, kLinear, kCosine };

absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(const std::string& name);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kLinear;
  double peak_lr = 1e-6;
  double min_lr = 0.0;        // reached at the last step by linear and cosine decay
  int64_t warmup_steps = 0;   // step s < warmup_steps runs at peak * (s + 1) / warmup_steps
  int64_t total_steps = 1;

  // The learning rate of optimizer step `step` (0-based).
  double At(int64_t step) const;
};

}  // namespace srlm
