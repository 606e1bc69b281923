// Status macros for absl::Status / absl::StatusOr (abseil 20220623 ships none).
//   SRLM_RETURN_IF_ERROR(expr);            returns the status of `expr` when it is not OK.
//   SRLM_ASSIGN_OR_RETURN(lhs, expr);      evaluates a StatusOr, returns its status on error,
//                                          otherwise moves the value into `lhs` (may declare it).
//   SRLM_RETURN_IF_ERROR_CTX(expr, ctx);   the same, prefixing the message with `ctx: `.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace srlm::internal {

inline absl::Status AsStatus(absl::Status s) { return s; }
template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Returns `s` with `context: ` in front of its message, keeping the code.
inline absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

}  // namespace srlm::internal

#define SRLM_STATUS_CONCAT_INNER_(a, b) a##b
#define SRLM_STATUS_CONCAT_(a, b) SRLM_STATUS_CONCAT_INNER_(a, b)

#define SRLM_RETURN_IF_ERROR(expr)                                              \
  do {                                                                          \
    ::absl::Status srlm_status_ = ::srlm::internal::AsStatus((expr));           \
    if (!srlm_status_.ok()) return srlm_status_;                                \
  } while (0)

#define SRLM_RETURN_IF_ERROR_CTX(expr, context)                                 \
  do {                                                                          \
    ::absl::Status srlm_status_ = ::srlm::internal::AsStatus((expr));           \
    if (!srlm_status_.ok()) return ::srlm::internal::Annotate(srlm_status_, (context)); \
  } while (0)

#define SRLM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()

#define SRLM_ASSIGN_OR_RETURN(lhs, expr) \
  SRLM_ASSIGN_OR_RETURN_IMPL_(SRLM_STATUS_CONCAT_(srlm_statusor_, __LINE__), lhs, expr)
