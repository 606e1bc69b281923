// Implementation of common/jsonl.h. POSIX calls only (no std::filesystem: linked into libtorch
// programs).
#include "common/jsonl.h"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/json_text.h"

namespace srlm {
namespace {

// Whether the JSON text `line` nests arrays and objects deeper than `limit`: a scan that skips
// strings, with no recursion (nlohmann's parser would take the line, its serializer not).
bool NestedDeeperThan(const std::string& line, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : line) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

absl::StatusOr<nlohmann::json> ParseLine(const std::string& text) {
  if (NestedDeeperThan(text, kMaxJsonlDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("nested deeper than ", kMaxJsonlDepth, " levels of arrays and objects"));
  }
  // "not a JSON object" first, as before, then why: the parser's reason and column, or the kind of
  // value the line holds.
  absl::StatusOr<nlohmann::json> line = ParseJsonText(text, /*one_line=*/true);
  if (!line.ok()) return absl::InvalidArgumentError(absl::StrCat("not a JSON object: ", line.status().message()));
  if (!line->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("not a JSON object: the line holds ", JsonKindName(*line)));
  }
  return line;
}

// `error` (an errno value, read before anything else can change it) as a Status naming what failed;
// EIO when the failure left no errno.
absl::Status OsError(int error, const char* what, const std::string& path) {
  return absl::ErrnoToStatus(error != 0 ? error : EIO, absl::StrCat(what, path));
}

}  // namespace

absl::Status ForEachJsonlLine(const std::string& path,
                              const std::function<absl::Status(int64_t, absl::StatusOr<nlohmann::json>)>& visit) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return OsError(errno, "cannot open ", path);
  if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, " is a directory, not a JSONL file"));
  std::ifstream in(path);
  if (!in) return OsError(errno, "cannot open ", path);
  std::string text;
  for (int64_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (absl::Status visited = visit(number, ParseLine(text)); !visited.ok()) return visited;
  }
  // A stream can fail without errno (a line too long to hold): still an error, never a short read.
  if (in.bad()) return OsError(errno, "reading ", path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<nlohmann::json>> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  absl::Status read = ForEachJsonlLine(path, [&](int64_t number, absl::StatusOr<nlohmann::json> line) {
    if (!line.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": ", line.status().message()));
    lines.push_back(*std::move(line));
    return absl::OkStatus();
  });
  if (!read.ok()) return read;
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat("no lines in ", path));
  return lines;
}

absl::StatusOr<std::vector<std::vector<std::string>>> ReadJsonlStrings(const std::string& path, const std::string& key,
                                                                       const std::vector<std::string>& keys,
                                                                       const std::vector<std::string>& not_blank) {
  if (path.empty()) return absl::FailedPreconditionError(absl::StrCat(key, " is not set in the run configuration"));
  std::vector<std::vector<std::string>> rows;
  const absl::Status read =
      ForEachJsonlLine(path, [&](int64_t number, absl::StatusOr<nlohmann::json> row) -> absl::Status {
        const std::string where = absl::StrCat(path, ":", number, ": ");
        if (!row.ok()) return absl::InvalidArgumentError(absl::StrCat(where, row.status().message()));
        std::vector<std::string>& fields = rows.emplace_back();
        for (const std::string& name : keys) {
          const auto field = row->find(name);
          if (field == row->end() || !field->is_string()) {
            return absl::InvalidArgumentError(absl::StrCat(where, "no string '", name, "'"));
          }
          fields.push_back(field->get<std::string>());
          if (absl::c_linear_search(not_blank, name) && absl::StripAsciiWhitespace(fields.back()).empty()) {
            return absl::InvalidArgumentError(absl::StrCat(where, "'", name, "' is empty"));
          }
        }
        return absl::OkStatus();
      });
  if (!read.ok()) return absl::Status(read.code(), absl::StrCat(key, ": ", read.message()));
  return rows;
}

absl::Status WriteJsonl(const std::string& path, const std::vector<nlohmann::json>& lines) {
  return WriteFileAtomically(path, [&](const ByteSink& sink) {
    std::string buffer;
    for (size_t i = 0; i < lines.size(); ++i) {
      buffer += lines[i].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      buffer += '\n';
      if (buffer.size() >= (1 << 20) || i + 1 == lines.size()) {
        if (absl::Status written = sink(buffer); !written.ok()) return written;
        buffer.clear();
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace srlm
