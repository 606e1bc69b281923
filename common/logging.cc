// Implementation of common/logging.h.
#include "common/logging.h"

#include <sys/time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace srlm {
namespace {

std::mutex& LogMutex() {
  static std::mutex mu;
  return mu;
}

std::string& Identity() {
  static std::string identity = "srlm";
  return identity;
}

LogSeverity InitialSeverity() {
  const char* env = std::getenv("SRLM_LOG_LEVEL");
  if (env == nullptr) return LogSeverity::kINFO;
  if (!strcasecmp(env, "debug")) return LogSeverity::kDEBUG;
  if (!strcasecmp(env, "warning")) return LogSeverity::kWARNING;
  if (!strcasecmp(env, "error")) return LogSeverity::kERROR;
  return LogSeverity::kINFO;
}

LogSeverity& MinSeverityRef() {
  static LogSeverity severity = InitialSeverity();
  return severity;
}

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

void SetLogIdentity(const std::string& role, int rank) {
  std::lock_guard<std::mutex> lock(LogMutex());
  Identity() = rank >= 0 ? role + " r" + std::to_string(rank) : role;
}

void SetMinLogSeverity(LogSeverity severity) { MinSeverityRef() = severity; }
LogSeverity MinLogSeverity() { return MinSeverityRef(); }

LogMessage::LogMessage(LogSeverity severity, const char* file, int line) : severity_(severity) {
  static const char kLetters[] = {'D', 'I', 'W', 'E', 'F'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm local;
  localtime_r(&tv.tv_sec, &local);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &local);
  char millis[8];
  std::snprintf(millis, sizeof(millis), ".%03d", static_cast<int>(tv.tv_usec / 1000));
  std::string identity;
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    identity = Identity();
  }
  stream_ << when << millis << " [" << identity << "] " << kLetters[static_cast<int>(severity)]
          << ' ' << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string text = stream_.str();
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  }
  if (severity_ == LogSeverity::kFATAL) std::abort();
}

}  // namespace srlm
