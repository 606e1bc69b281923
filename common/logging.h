// Process-wide logging. Every line carries the time, the process's role and rank, the severity and
// the source location, e.g. `2026-11-28 10:00:00.123 [worker r1] I trainer.cc:42] step 3 loss 0.69`.
// Thread-safe: each message is written with one call under a mutex.
//   srlm::SetLogIdentity("worker", 1);
//   SRLM_LOG(INFO) << "step " << step;
//   SRLM_LOG(FATAL) << "..." ;   // logs, then aborts
#pragma once

#include <sstream>
#include <string>

namespace srlm {

enum class LogSeverity { kDEBUG = 0, kINFO = 1, kWARNING = 2, kERROR = 3, kFATAL = 4 };

// Sets the role (e.g. "coordinator", "worker", "srlmctl") and rank (-1: none) shown on every line.
void SetLogIdentity(const std::string& role, int rank);
// Messages below this severity are dropped. Default kINFO; SRLM_LOG_LEVEL=debug|info|warning|error.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Swallows the stream when a message is below the minimum severity.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace srlm

#define SRLM_LOG(severity)                                                              \
  (::srlm::LogSeverity::k##severity < ::srlm::MinLogSeverity())                          \
      ? (void)0                                                                         \
      : ::srlm::LogVoidify() &                                                          \
            ::srlm::LogMessage(::srlm::LogSeverity::k##severity, __FILE__, __LINE__).stream()
