// Implementation of worker/train/lr_schedule.h.
#include "worker/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace srlm {

absl::StatusOr<LrScheduleKind> ParseLrScheduleKind(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "linear") return LrScheduleKind::kLinear;
  if (name == "cosine") return LrScheduleKind::kCosine;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown lr schedule '", name, "': expected constant, linear or cosine"));
}

double LrSchedule::At(int64_t step) const {
  // Warm-up: step s < W gets peak * (s + 1) / W, so the first step already moves and step W-1 is at
  // the peak (HF's schedule gives 0 at step 0, a wasted step).
  if (step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == LrScheduleKind::kConstant) return peak_lr;
  // Decay from the peak at step W to min_lr at the last step (total_steps - 1).
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - 1 - warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps), 0.0, 1.0);
  const double factor = kind == LrScheduleKind::kLinear ? 1.0 - progress
                                                        : 0.5 * (1.0 + std::cos(M_PI * progress));
  return min_lr + (peak_lr - min_lr) * factor;
}

}  // namespace srlm
