// Implementation of common/config_reader.h on yaml-cpp.
#include "common/config_reader.h"

#include <sys/stat.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/utf8.h"

namespace srlm {

struct ConfigReader::Impl {
  std::string source;
  YAML::Node root;
  std::set<std::string> known_keys;      // every key some Read asked for
  std::set<std::string> known_sections;  // every proper prefix of those ("prompts", "prompts.sampling")
  std::set<std::string> not_mappings;    // sections given a scalar or a list, reported once each
  std::vector<std::string> errors;

  // Finds `key`; returns an undefined node when absent. Records an error (once per section) when a
  // parent is present but not a map; a null parent (a section with every key commented out) is empty.
  // A key present with no value (`key:` or `key: ~`) is recorded as an error at the key's line and
  // returned as undefined: leaving the key out is the way to take the default.
  YAML::Node Find(const std::string& key) {
    known_keys.insert(key);
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
      known_sections.insert(key.substr(0, dot));
    }
    // YAML::Node's operator= writes through to the document; reset() rebinds.
    YAML::Node node;
    node.reset(root);
    std::string walked;
    for (absl::string_view part : absl::StrSplit(key, '.')) {
      if (!node.IsMap()) {
        if (node.IsDefined() && !node.IsNull() && not_mappings.insert(walked).second) {
          errors.push_back(absl::StrCat(Where(node), "key '", walked, "': expected a mapping, got ",
                                        node.IsScalar() ? absl::StrCat("'", node.Scalar(), "'") : "a sequence"));
        }
        return YAML::Node(YAML::NodeType::Undefined);
      }
      walked = walked.empty() ? std::string(part) : absl::StrCat(walked, ".", part);
      YAML::Node child = node[std::string(part)];
      if (!child.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
      if (child.IsNull() && walked == key) {
        errors.push_back(absl::StrCat(WhereKey(node, std::string(part)), "key '", key,
                                      "' has no value; remove the key to take the default"));
        return YAML::Node(YAML::NodeType::Undefined);
      }
      node.reset(child);
    }
    return node;
  }

  // Where the key `name` of the mapping `map` is written: a null value has no line of its own (that
  // of `key:` is the next line's).
  std::string WhereKey(const YAML::Node& map, const std::string& name) const {
    for (const auto& kv : map) {
      if (kv.first.IsScalar() && kv.first.Scalar() == name) return Where(kv.first);
    }
    return Where(map);
  }

  std::string Where(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    if (mark.line < 0) return absl::StrCat(source, ": ");
    return absl::StrCat(source, ":", mark.line + 1, ": ");
  }

  template <typename T>
  void ReadScalar(const std::string& key, T* value, const char* expected) {
    YAML::Node node = Find(key);
    if (!node.IsDefined()) return;
    if (!node.IsScalar()) {
      errors.push_back(absl::StrCat(Where(node), "key '", key, "': expected ", expected,
                                    ", got a ", node.IsMap() ? "mapping" : "sequence"));
      return;
    }
    try {
      *value = node.as<T>();
    } catch (const YAML::Exception&) {
      errors.push_back(absl::StrCat(Where(node), "key '", key, "': expected ", expected, ", got '",
                                    node.Scalar(), "'"));
    }
  }

  // Collects the dotted paths of every leaf (and every null or empty mapping) under the mapping
  // `node`, each with its key's node: a null value has no line of its own.
  // A key that is not a scalar (`? [a, b]: 1`) is a problem of its own.
  void CollectKeys(const YAML::Node& node, const std::string& prefix,
                   std::vector<std::pair<std::string, YAML::Node>>* out, std::vector<std::string>* problems) const {
    std::map<std::string, YAML::Node> seen;  // yaml-cpp keeps a repeated key, and lookups find the first
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        problems->push_back(absl::StrCat(Where(kv.first), "a key ", prefix.empty() ? "" : absl::StrCat("under '", prefix, "' "),
                                         "is not a plain name"));
        continue;
      }
      const std::string name = kv.first.Scalar();
      const std::string path = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
      if (auto [first, inserted] = seen.emplace(name, kv.first); !inserted) {
        problems->push_back(absl::StrCat(Where(kv.first), "key '", path, "' is given twice (first on line ",
                                         first->second.Mark().line + 1, "); only one value can hold"));
        continue;
      }
      if (kv.second.IsMap() && kv.second.size() > 0) {
        CollectKeys(kv.second, path, out, problems);
      } else {
        out->emplace_back(path, kv.first);
      }
    }
  }
};

namespace {

// Records where each YAML document of a stream starts (its `---`, else its first token).
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

ConfigReader::ConfigReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigReader::ConfigReader(ConfigReader&&) noexcept = default;
ConfigReader& ConfigReader::operator=(ConfigReader&&) noexcept = default;
ConfigReader::~ConfigReader() = default;

absl::StatusOr<ConfigReader> ConfigReader::FromFile(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("config file '", path, "' is a directory"));
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be opened"));
  std::stringstream text;
  text << in.rdbuf();
  return FromString(text.str(), path);
}

absl::StatusOr<ConfigReader> ConfigReader::FromString(const std::string& text,
                                                      const std::string& source_name) {
  // YAML is Unicode text, and every string of the configuration travels in protobuf strings, which
  // must be UTF-8: a path in Latin-1 was accepted here and then failed every RPC that carried it.
  if (const size_t bad = utf8::FirstInvalidOffset(text); bad != std::string_view::npos) {
    const size_t newline_before = bad == 0 ? std::string::npos : text.rfind('\n', bad - 1);
    const size_t column = newline_before == std::string::npos ? bad + 1 : bad - newline_before;
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d: not UTF-8 (byte 0x%02X at column %d); write the file as UTF-8", source_name,
        std::count(text.begin(), text.begin() + bad, '\n') + 1, static_cast<unsigned char>(text[bad]), column));
  }
  auto impl = std::make_unique<Impl>();
  impl->source = source_name;
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  // A second document (`---` and keys after the first) used to be dropped without a word; one that
  // holds nothing (a trailing `---`, or only comments after it) says nothing and is let be.
  for (size_t i = 1; i < documents.size(); ++i) {
    if (documents[i].IsNull()) continue;
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentStarts starts;
    while (parser.HandleNextDocument(starts)) {
    }
    const int line = i < starts.marks.size() ? starts.marks[i].line : documents[i].Mark().line;
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ":", line + 1,
        ": a second YAML document starts here; a configuration is one document (remove this '---' "
        "and put its keys in the first)"));
  }
  if (!documents.empty()) impl->root = documents[0];
  if (impl->root.IsNull() || !impl->root.IsDefined()) {
    impl->root = YAML::Node(YAML::NodeType::Map);  // an empty file: every default applies
  }
  if (!impl->root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ": the top level must be a mapping of sections"));
  }
  return ConfigReader(std::move(impl));
}

void ConfigReader::Read(const std::string& key, std::string* value) {
  impl_->ReadScalar(key, value, "a string");
}
void ConfigReader::Read(const std::string& key, int64_t* value) {
  impl_->ReadScalar(key, value, "an integer");
}
void ConfigReader::Read(const std::string& key, int* value) {
  impl_->ReadScalar(key, value, "an integer");
}
void ConfigReader::Read(const std::string& key, double* value) {
  impl_->ReadScalar(key, value, "a number");
}
void ConfigReader::Read(const std::string& key, bool* value) {
  impl_->ReadScalar(key, value, "true or false");
}

void ConfigReader::Read(const std::string& key, std::vector<std::string>* value) {
  YAML::Node node = impl_->Find(key);
  if (!node.IsDefined()) return;
  if (!node.IsSequence()) {
    impl_->errors.push_back(
        absl::StrCat(impl_->Where(node), "key '", key, "': expected a list of strings"));
    return;
  }
  std::vector<std::string> items;
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      impl_->errors.push_back(
          absl::StrCat(impl_->Where(item), "key '", key, "': expected a list of strings"));
      return;
    }
    items.push_back(item.Scalar());
  }
  *value = std::move(items);
}

absl::Status ConfigReader::Finish() const {
  std::vector<std::string> problems = impl_->errors;
  std::vector<std::pair<std::string, YAML::Node>> present;
  impl_->CollectKeys(impl_->root, "", &present, &problems);
  for (const auto& [key, key_node] : present) {
    if (impl_->known_keys.count(key)) continue;
    // A known section that is null or an empty mapping takes every default; one given a scalar or a
    // list was reported by Find.
    if (impl_->known_sections.count(key)) continue;
    std::string nearest;
    size_t best = 4;  // suggest only close matches; keys before sections on a tie
    for (const auto* names : {&impl_->known_keys, &impl_->known_sections}) {
      for (const std::string& known : *names) {
        const size_t d = EditDistance(key, known);
        if (d < best) best = d, nearest = known;
      }
    }
    problems.push_back(absl::StrCat(impl_->Where(key_node), "unknown key '", key, "'",
                                    nearest.empty() ? "" : absl::StrCat(" (did you mean '", nearest, "'?)")));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

const std::string& ConfigReader::source_name() const { return impl_->source; }

}  // namespace srlm
