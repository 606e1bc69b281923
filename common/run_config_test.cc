// Tests of common/run_config.h: defaults, overrides, validation, and the documented YAML round trip.
#include "common/run_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <limits>

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
  EXPECT_THAT(std::string(range.status().message()), HasSubstr("r.yaml: key 'dpo.beta': expected a number in (0, "));
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

// The coordinator stores RunConfigToYaml's text and every worker parses it: it must give back every
// value exactly (line breaks in stop strings used to fold into spaces, doubles kept six digits).
TEST(RunConfig, StoredYamlGivesBackEveryValueExactly) {
  RunConfig config;
  config.prompts.sampling.stop = {"\n", "a\nb", "\n\n", "tab\there", "cr\r", std::string("bell\x07", 5),
                                  "quote\" and back\\slash", "del\x7f", "caf\xc3\xa9"};
  config.sft.lr = 1.23456789e-4;
  config.dpo.beta = 0.1 + 0.2;  // 0.30000000000000004
  config.coordinator.lease_seconds = 1000.0 / 3.0;
  config.data.ift = "dir with\nnewline/ift.jsonl";
  auto parsed = ParseRunConfig(RunConfigToYaml(config), "stored");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->prompts.sampling.stop, config.prompts.sampling.stop);
  EXPECT_EQ(parsed->sft.lr, config.sft.lr);
  EXPECT_EQ(parsed->dpo.beta, config.dpo.beta);
  EXPECT_EQ(parsed->coordinator.lease_seconds, config.coordinator.lease_seconds);
  EXPECT_EQ(parsed->data.ift, config.data.ift);
  EXPECT_EQ(RunConfigToYaml(*parsed), RunConfigToYaml(config));
}

// ".inf" and ".nan" are numbers to YAML; no key takes them (inf passed the "> 0" checks, and the
// stored configuration could then not be read back: the run could never be opened again).
TEST(RunConfig, NonFiniteNumbersAreRefusedForEveryKey) {
  for (const char* yaml : {"coordinator: {lease_seconds: .inf}", "sft: {lr: .inf}", "dpo: {beta: .inf}",
                           "judge: {max_score: .inf}", "sft: {weight_decay: .inf}", "generate: {length_band: .nan}",
                           "prompts: {sampling: {temperature: -.inf}}"}) {
    auto c = ParseRunConfig(yaml, "c.yaml");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("': expected a finite number")) << yaml;
  }
  RunConfig flags;  // the same check for values set by command-line flags
  flags.dpo.train.lr = std::numeric_limits<double>::infinity();
  EXPECT_THAT(std::string(ValidateRunConfig(flags).message()), HasSubstr("key 'dpo.lr': expected a finite number"));
}

TEST(RunConfig, MaxMessageBytesStaysWithinGrpcsIntLimit) {
  auto c = ParseRunConfig("coordinator: {max_message_bytes: 4294967296}", "c.yaml");
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("key 'coordinator.max_message_bytes': expected an integer in [1048576, 268435456]"));
  // Past 256 MiB one stored result could exceed SQLite's 1e9-byte row limit, and the failed commit
  // would end the coordinator.
  EXPECT_FALSE(ParseRunConfig("coordinator: {max_message_bytes: 268435457}", "c.yaml").ok());
  EXPECT_TRUE(ParseRunConfig("coordinator: {max_message_bytes: 268435456}", "c.yaml").ok());
}

// The training counts have an upper bound (2^31 - 1): sft.batch_size 9223372036854775807 overflowed
// the trainer's ceil division (a division by zero, or a loop run that trained 0 steps and committed
// its start model), epochs near INT64_MAX wrapped the step count (negative, or 4 steps).
TEST(RunConfig, TrainingCountsAreBoundedAndSeedsNotNegative) {
  for (const std::string section : {"sft", "dpo"}) {
    for (const std::string key : {"steps", "epochs", "batch_size", "micro_batch_size", "warmup_steps"}) {
      for (const char* value : {"2147483648", "9223372036854775807"}) {
        auto c = ParseRunConfig(section + ":\n  " + key + ": " + value + "\n", "b.yaml");
        EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << section << "." << key << " " << value;
        EXPECT_THAT(std::string(c.status().message()),
                    HasSubstr("b.yaml: key '" + section + "." + key + "': expected an integer in [")) << key;
        EXPECT_THAT(std::string(c.status().message()), HasSubstr(", 2147483647]")) << key;
      }
      // (dpo.epochs that large with dpo.steps 0 is ValuesThatFailedLateAreRefusedAtStart's case.)
      const std::string steps = section == "dpo" && key == "epochs" ? "  steps: 1\n" : "";
      EXPECT_TRUE(ParseRunConfig(section + ":\n  " + key + ": 2147483647\n" + steps, "b.yaml").ok()) << key;
    }
    auto seed = ParseRunConfig(section + ":\n  seed: -3\n", "s.yaml");
    EXPECT_THAT(std::string(seed.status().message()), HasSubstr("key '" + section + ".seed': expected an integer >= 0"));
    EXPECT_TRUE(ParseRunConfig(section + ":\n  seed: 0\n", "s.yaml").ok());
  }
  RunConfig flags;  // the same check for values set by command-line flags (the keys' flags)
  flags.sft.batch_size = std::numeric_limits<int64_t>::max();
  EXPECT_THAT(std::string(ValidateRunConfig(flags).message()),
              HasSubstr("key 'sft.batch_size': expected an integer in [1, 2147483647]"));
}

// So have the coordinator's counts: a shard size or pool near INT64_MAX overflowed its shard
// arithmetic (the PROMPTS lease test multiplies shard counts by shard sizes).
TEST(RunConfig, IterationPoolAndShardCountsAreBounded) {
  for (const std::string key : {"run.iterations", "prompts.per_iteration", "prompts.shard_size", "generate.shard_size"}) {
    const size_t dot = key.find('.');
    const std::string yaml = key.substr(0, dot) + ":\n  " + key.substr(dot + 1) + ": ";
    auto c = ParseRunConfig(yaml + "9223372036854775807\n", "p.yaml");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("p.yaml: key '" + key + "': expected an integer in ["))
        << c.status();
    EXPECT_TRUE(ParseRunConfig(yaml + "2147483647\n", "p.yaml").ok()) << key;
  }
}

// A lease shorter than two heartbeats was handed on before its first heartbeat; one of 1e16 s
// (meant as "never") overflowed its expiry in milliseconds and was born expired.
TEST(RunConfig, LeaseSecondsSpanTwoHeartbeatsAndAtMostACentury) {
  for (const char* yaml : {"coordinator: {lease_seconds: 1e16}", "coordinator: {lease_seconds: 19}",
                           "coordinator: {lease_seconds: 1, heartbeat_seconds: 0.6}",
                           "coordinator: {lease_seconds: 0.0001, heartbeat_seconds: 0.00005}"}) {
    auto c = ParseRunConfig(yaml, "c.yaml");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("key 'coordinator.")) << yaml;
  }
  EXPECT_THAT(std::string(ParseRunConfig("coordinator: {lease_seconds: 19}", "c.yaml").status().message()),
              HasSubstr("'coordinator.lease_seconds': expected a number in [2 x coordinator.heartbeat_seconds"));
  EXPECT_TRUE(ParseRunConfig("coordinator: {lease_seconds: 20}", "c.yaml").ok());
  EXPECT_TRUE(ParseRunConfig("coordinator: {lease_seconds: 3e9, heartbeat_seconds: 1e9}", "c.yaml").ok());
  EXPECT_TRUE(ParseRunConfig("coordinator: {lease_seconds: 1, heartbeat_seconds: 0.5}", "c.yaml").ok());
}

// Values accepted at start that failed only after SFT and a whole iteration of generation: counts
// that exhausted memory, numbers past float32, epochs past the step limit for the most pairs an
// iteration can have; and a message limit below the registration's own answer.
TEST(RunConfig, ValuesThatFailedLateAreRefusedAtStart) {
  struct Case {
    const char* yaml;
    const char* expected;
  };
  for (const Case& c : std::vector<Case>{
           {"generate: {candidates: 1000000000}", "key 'generate.candidates': expected an integer in [2, 256]"},
           {"judge: {samples: 100000000000}", "key 'judge.samples': expected an integer in [1, 64]"},
           {"dpo: {lr: 1e39}", "key 'dpo.lr': expected a number in [0, 3.40282e+38] (float32)"},
           {"sft: {max_grad_norm: 1e300}", "key 'sft.max_grad_norm': expected a number in [0, 3.40282e+38]"},
           {"dpo: {weight_decay: 1e39}", "key 'dpo.weight_decay'"},
           {"dpo: {beta: 1e39}", "key 'dpo.beta': expected a number in (0, 3.40282e+38] (float32)"},
           {"dpo: {epochs: 2000000000}",
            "key 'dpo.epochs': expected an integer in [1, 536870911] when dpo.steps is 0 (with up to "
            "prompts.per_iteration = 64 pairs, 4 batches per epoch"},
           {"coordinator: {max_message_bytes: 4096}", "key 'coordinator.max_message_bytes': expected an integer in "
                                                      "[1048576, 268435456]"}}) {
    auto config = ParseRunConfig(c.yaml, "c.yaml");
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.expected)) << c.yaml;
  }
  for (const char* yaml : {"generate: {candidates: 256}", "judge: {samples: 64}", "dpo: {epochs: 536870911}",
                           "dpo: {epochs: 2000000000, steps: 10}", "coordinator: {max_message_bytes: 1048576}"}) {
    EXPECT_TRUE(ParseRunConfig(yaml, "c.yaml").ok()) << yaml;
  }
}

TEST(RunConfig, RunSeedIsNotNegative) {
  EXPECT_THAT(std::string(ParseRunConfig("run: {seed: -1}", "c.yaml").status().message()),
              HasSubstr("key 'run.seed': expected an integer >= 0"));
  EXPECT_TRUE(ParseRunConfig("run: {seed: 0}", "c.yaml").ok());
}

// A key given twice kept its first value silently; now both places are named.
TEST(RunConfig, AKeyGivenTwiceIsAnError) {
  auto twice = ParseRunConfig("sft:\n  lr: 1e-5\n  lr: 5\n", "c.yaml");
  EXPECT_THAT(std::string(twice.status().message()),
              HasSubstr("c.yaml:3: key 'sft.lr' is given twice (first on line 2)"));
  auto sections = ParseRunConfig("sft:\n  lr: 1e-5\ndpo:\n  beta: 0.2\nsft:\n  lr: 5\n", "c.yaml");
  EXPECT_THAT(std::string(sections.status().message()),
              HasSubstr("c.yaml:5: key 'sft' is given twice (first on line 1)"));
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

// `iterations:` with the number forgotten ran the default count: a key with no value is an error,
// while a section with no keys (above) still takes every default.
TEST(RunConfig, AKeyWithNoValueIsAnErrorNotTheDefault) {
  for (const char* value : {"", " ~", " null"}) {
    auto c = ParseRunConfig(std::string("model:\n  # path: m\nrun:\n  sft: false\n  iterations:") + value + "\n",
                            "c.yaml");
    EXPECT_EQ(c.status(), absl::InvalidArgumentError(
                              "c.yaml:5: key 'run.iterations' has no value; remove the key to take the default"))
        << value;
  }
}

TEST(RunConfig, ScalarForASectionIsOneError) {
  auto c = ParseRunConfig("model: /x\n", "bad.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(c.status().message()), "bad.yaml:1: key 'model': expected a mapping, got '/x'");
}

}  // namespace
}  // namespace srlm
