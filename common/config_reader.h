// Typed reading of YAML configuration. The only place in srlm that parses YAML.
// A ConfigReader walks one document; each Read names a dotted key ("dpo.beta"). Errors name the
// file, the line, the key and what was expected; keys nobody read are reported as unknown, with the
// nearest known key as a suggestion. A section (a prefix of a key read, "model" of "model.path")
// that is null or an empty mapping takes every default; one given a scalar or a list is reported
// once. A key read with no value (`iterations:` or `iterations: ~`) is an error, not its default:
// to take the default, leave the key out. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace srlm {

class ConfigReader {
 public:
  // Loads `path`. NOT_FOUND when the file is missing; INVALID_ARGUMENT when it is not YAML, its
  // top level is not a mapping, or a second YAML document (after `---`) holds anything.
  static absl::StatusOr<ConfigReader> FromFile(const std::string& path);
  // Parses `text`; `source_name` stands for the file in messages.
  static absl::StatusOr<ConfigReader> FromString(const std::string& text,
                                                 const std::string& source_name);

  ConfigReader(ConfigReader&&) noexcept;
  ConfigReader& operator=(ConfigReader&&) noexcept;
  ~ConfigReader();

  // Each Read leaves *value unchanged when the key is absent, and records an error when the key is
  // present with no value (null) or the wrong type.
  void Read(const std::string& key, std::string* value);
  void Read(const std::string& key, int64_t* value);
  void Read(const std::string& key, int* value);
  void Read(const std::string& key, double* value);
  void Read(const std::string& key, bool* value);
  void Read(const std::string& key, std::vector<std::string>* value);

  // OK when every Read succeeded and every key of the document was read; otherwise
  // INVALID_ARGUMENT listing each problem on its own line.
  absl::Status Finish() const;

  const std::string& source_name() const;

 private:
  struct Impl;
  explicit ConfigReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace srlm
