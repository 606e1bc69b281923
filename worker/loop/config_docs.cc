// Implementation of worker/loop/config_docs.h.
#include "worker/loop/config_docs.h"

#include <sstream>

#include "absl/strings/str_join.h"

namespace srlm {
namespace {

class MarkdownVisitor : public ConfigVisitor {
 public:
  void Section(const std::string& name, const std::string& comment) override {
    out_ << "\n### `" << name << "`\n\n" << comment << "\n\n"
         << "| key | type | default | meaning |\n|---|---|---|---|\n";
  }
  void Field(const std::string& k, std::string* v, const std::string& c) override {
    Row(k, "string", v->empty() ? "`\"\"`" : "`" + Escape(*v) + "`", c);
  }
  void Field(const std::string& k, int64_t* v, const std::string& c) override {
    Row(k, "int", "`" + std::to_string(*v) + "`", c);
  }
  void Field(const std::string& k, double* v, const std::string& c) override {
    std::ostringstream s;
    s << *v;
    Row(k, "number", "`" + s.str() + "`", c);
  }
  void Field(const std::string& k, bool* v, const std::string& c) override {
    Row(k, "bool", *v ? "`true`" : "`false`", c);
  }
  void Field(const std::string& k, std::vector<std::string>* v, const std::string& c) override {
    Row(k, "list of strings", "`[" + Escape(absl::StrJoin(*v, ", ")) + "]`", c);
  }
  std::string str() const { return out_.str(); }

 private:
  static std::string Escape(const std::string& s) {
    std::string out;
    for (char ch : s) {
      if (ch == '|') out += "\\";
      out += ch;
    }
    return out;
  }
  void Row(const std::string& key, const std::string& type, const std::string& value,
           const std::string& comment) {
    out_ << "| `" << key << "` | " << type << " | " << value << " | " << Escape(comment) << " |\n";
  }
  std::ostringstream out_;
};

}  // namespace

std::string RunConfigMarkdownReference(const RunConfig& defaults) {
  RunConfig copy = defaults;
  MarkdownVisitor visitor;
  VisitRunConfig(&copy, &visitor);
  return visitor.str();
}

}  // namespace srlm
