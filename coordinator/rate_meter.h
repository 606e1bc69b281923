// A rate over a sliding window: record a cumulative count with its time; Rate() is the slope over
// the last `window_ms` (at least two samples apart). Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

namespace srlm::coordinator {

class RateMeter {
 public:
  explicit RateMeter(int64_t window_ms = 20000) : window_ms_(window_ms) {}
  void Reset() { samples_.clear(); }
  void Record(int64_t now_ms, int64_t cumulative) {
    if (!samples_.empty() && now_ms - samples_.back().first < 100) {
      samples_.back().second = cumulative;  // coalesce samples closer than 100 ms
    } else {
      samples_.emplace_back(now_ms, cumulative);
    }
    while (samples_.size() > 2 && now_ms - samples_[1].first > window_ms_) samples_.pop_front();
  }
  // Units per second; 0 when fewer than two samples span some time.
  double Rate() const {
    if (samples_.size() < 2) return 0.0;
    int64_t dt = samples_.back().first - samples_.front().first;
    if (dt <= 0) return 0.0;
    return 1000.0 * static_cast<double>(samples_.back().second - samples_.front().second) / dt;
  }

 private:
  int64_t window_ms_;
  std::deque<std::pair<int64_t, int64_t>> samples_;
};

}  // namespace srlm::coordinator
