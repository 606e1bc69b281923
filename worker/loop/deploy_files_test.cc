// Keeps the shipped files honest: deploy/config/example.yaml and docs/CONFIG.md match the field
// list of common/run_config.h, and the bundled demo data matches its judge template and generator.
// SRLM_UPDATE_GOLDEN=1 rewrites example.yaml and the generated part of docs/CONFIG.md.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/run_config.h"
#include "common/testing/file_text.h"
#include "worker/loop/config_docs.h"
#include "common/judge.h"

namespace srlm {
namespace {

using testing_util::ReadFileText;

std::string SourceDir() {
  const char* dir = std::getenv("SRLM_SOURCE_DIR");
  return dir ? dir : SRLM_SOURCE_DIR_FALLBACK;
}

bool UpdateGolden() {
  const char* v = std::getenv("SRLM_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

constexpr char kBegin[] = "<!-- BEGIN GENERATED: RunConfigMarkdownReference -->\n";
constexpr char kEnd[] = "<!-- END GENERATED -->\n";

TEST(DeployFilesTest, ExampleYamlIsTheDocumentedDefaultsAndParses) {
  const std::string path = SourceDir() + "/deploy/config/example.yaml";
  const std::string expected = RunConfigToYaml(RunConfig{});
  if (UpdateGolden()) std::ofstream(path, std::ios::binary) << expected;
  const std::string actual = ReadFileText(path);
  EXPECT_EQ(actual, expected) << path << " is out of date: rerun this test with SRLM_UPDATE_GOLDEN=1";
  auto parsed = ParseRunConfig(actual, path);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  // Parsing the example gives the defaults back: its YAML is identical.
  EXPECT_EQ(RunConfigToYaml(*parsed), expected);
}

TEST(DeployFilesTest, ConfigDocListsEveryKeyWithItsDefault) {
  const std::string path = SourceDir() + "/docs/CONFIG.md";
  std::string doc = ReadFileText(path);
  const size_t begin = doc.find(kBegin), end = doc.find(kEnd);
  ASSERT_NE(begin, std::string::npos) << path << " lacks " << kBegin;
  ASSERT_NE(end, std::string::npos) << path << " lacks " << kEnd;
  const std::string generated = RunConfigMarkdownReference(RunConfig{});
  const std::string current = doc.substr(begin + sizeof(kBegin) - 1, end - begin - (sizeof(kBegin) - 1));
  if (UpdateGolden() && current != generated) {
    doc = doc.substr(0, begin + sizeof(kBegin) - 1) + generated + doc.substr(end);
    std::ofstream(path, std::ios::binary) << doc;
  } else {
    EXPECT_EQ(current, generated) << path << " is out of date: rerun with SRLM_UPDATE_GOLDEN=1";
  }
  // Spot checks against the struct, independent of the generator.
  EXPECT_NE(generated.find("| `dpo.beta` | number | `0.1` |"), std::string::npos);
  EXPECT_NE(generated.find("| `generate.candidates` | int | `4` |"), std::string::npos);
  EXPECT_NE(generated.find("| `judge.samples` | int | `3` |"), std::string::npos);
}

TEST(DeployFilesTest, DemoJudgeDataMatchesTemplateAndParser) {
  const std::string demo = SourceDir() + "/deploy/demo";
  auto judge = JudgeTemplate::FromFile(demo + "/judge_template.txt");
  ASSERT_TRUE(judge.ok()) << judge.status();
  RunConfig defaults;
  auto parser = JudgeScoreParser::Create(defaults.judge.score_pattern, defaults.judge.min_score,
                                         defaults.judge.max_score);
  ASSERT_TRUE(parser.ok());
  std::ifstream in(demo + "/data/eft.jsonl");
  ASSERT_TRUE(in) << "missing demo EFT data";
  std::string line;
  int lines = 0, correct = 0;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line);
    ++lines;
    ASSERT_EQ(row["prompt"].get<std::string>(),
              judge->Render(row["task"].get<std::string>(), row["answer"].get<std::string>()))
        << "line " << lines;
    JudgeScore score = parser->Parse(row["response"].get<std::string>());
    ASSERT_TRUE(score.ok()) << "line " << lines << ": " << JudgeParseFailureName(score.failure);
    EXPECT_EQ(*score.score, row["score"].get<double>()) << "line " << lines;
    if (*score.score == 5) ++correct;
  }
  EXPECT_EQ(lines, 1200);
  // The generator makes about half the judged answers correct.
  EXPECT_GT(correct, 500);
  EXPECT_LT(correct, 700);
}

TEST(DeployFilesTest, DemoDataIsWhatTheGeneratorWrites) {
  const char* python = std::getenv("SRLM_VENV_PYTHON");
  if (python == nullptr || std::string(python).empty()) python = "python3";
  const std::string cmd = std::string(python) + " " + SourceDir() +
                          "/deploy/demo/make_data.py --check > /dev/null";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace srlm
