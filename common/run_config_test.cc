// Tests of common/run_config.h: defaults, overrides, validation, and the documented YAML round trip.
#include "common/run_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace srlm {
namespace {

using ::testing::HasSubstr;

TEST(RunConfig, EmptyFileGivesPaperDefaults) {
  auto c = ParseRunConfig("", "empty.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->generate.candidates, 4);
  EXPECT_DOUBLE_EQ(c->generate.sampling.temperature, 0.7);
  EXPECT_DOUBLE_EQ(c->generate.sampling.top_p, 0.9);
  EXPECT_EQ(c->judge.samples, 3);
  EXPECT_DOUBLE_EQ(c->dpo.beta, 0.1);
  EXPECT_DOUBLE_EQ(c->dpo.train.lr, 1e-6);
  EXPECT_DOUBLE_EQ(c->dpo.train.min_lr, 1e-7);
  EXPECT_EQ(c->dpo.train.batch_size, 16);
  EXPECT_DOUBLE_EQ(c->dpo.train.dropout, 0.1);
  EXPECT_EQ(c->prompts.shots, 8);
}

TEST(RunConfig, OverridesNestedKeys) {
  auto c = ParseRunConfig("generate:\n  sampling:\n    temperature: 1.0\n    stop: [\"\\n\\n\"]\ndpo:\n  beta: 0.5\n", "o.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->generate.sampling.temperature, 1.0);
  EXPECT_EQ(c->generate.sampling.stop, std::vector<std::string>{"\n\n"});
  EXPECT_DOUBLE_EQ(c->dpo.beta, 0.5);
  EXPECT_DOUBLE_EQ(c->prompts.sampling.temperature, 0.8);  // other sections untouched
}

TEST(RunConfig, UnknownKeyAndBadTypeAndRange) {
  auto unknown = ParseRunConfig("judge:\n  sample: 3\n", "u.yaml");
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown key 'judge.sample' (did you mean 'judge.samples'?)"));
  auto type = ParseRunConfig("run:\n  iterations: two\n", "t.yaml");
  EXPECT_THAT(std::string(type.status().message()), HasSubstr("t.yaml:2: key 'run.iterations': expected an integer"));
  auto range = ParseRunConfig("dpo:\n  beta: -1\n", "r.yaml");
  EXPECT_EQ(range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(range.status().message()), HasSubstr("r.yaml: key 'dpo.beta': expected a number > 0"));
  auto schedule = ParseRunConfig("sft:\n  lr_schedule: exponential\n", "s.yaml");
  EXPECT_THAT(std::string(schedule.status().message()), HasSubstr("sft.lr_schedule"));
  // A score pattern RE2 refuses is refused with the configuration, where the coordinator reads it,
  // not by every worker at every relaunch.
  auto pattern = ParseRunConfig("judge:\n  score_pattern: 'Score: (\\d)\\1'\n", "p.yaml");
  EXPECT_EQ(pattern.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pattern.status().message()), HasSubstr("judge.score_pattern 'Score: (\\d)\\1'"));
  EXPECT_THAT(std::string(pattern.status().message()), HasSubstr("backreferences"));
  auto no_group = ParseRunConfig("judge:\n  score_pattern: 'Score: \\d'\n", "g.yaml");
  EXPECT_THAT(std::string(no_group.status().message()), HasSubstr("no capture group"));
}

TEST(RunConfig, MissingFile) {
  auto c = LoadRunConfig("/no/such/run.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST(RunConfig, DocumentedYamlRoundTrips) {
  RunConfig changed;
  changed.model.path = "models/tiny \"quoted\"";
  changed.dpo.beta = 0.25;
  changed.generate.sampling.stop = {"###", "\\end"};
  changed.run.sft = false;
  const std::string yaml = RunConfigToYaml(changed);
  EXPECT_THAT(yaml, HasSubstr("# "));  // comments are there
  auto back = ParseRunConfig(yaml, "roundtrip.yaml");
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << yaml;
  EXPECT_EQ(back->model.path, changed.model.path);
  EXPECT_DOUBLE_EQ(back->dpo.beta, 0.25);
  EXPECT_EQ(back->generate.sampling.stop, changed.generate.sampling.stop);
  EXPECT_FALSE(back->run.sft);
  EXPECT_EQ(RunConfigToYaml(*back), yaml);
}

TEST(RunConfig, EmptySectionsTakeTheDefaults) {
  auto commented = ParseRunConfig("run:\n  iterations: 2\nmodel:\n  # path: models/m0\n  # dtype: bfloat16\n", "c.yaml");
  ASSERT_TRUE(commented.ok()) << commented.status();
  EXPECT_EQ(commented->run.iterations, 2);
  EXPECT_EQ(commented->model.dtype, RunConfig().model.dtype);
  auto empty = ParseRunConfig("sft: {}\ndpo: {}\ngenerate:\n  sampling: {}\n", "e.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->sft.batch_size, RunConfig().sft.batch_size);
  EXPECT_DOUBLE_EQ(empty->generate.sampling.temperature, 0.7);
}

TEST(RunConfig, ScalarForASectionIsOneError) {
  auto c = ParseRunConfig("model: /x\n", "bad.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(c.status().message()), "bad.yaml:1: key 'model': expected a mapping, got '/x'");
}

}  // namespace
}  // namespace srlm
