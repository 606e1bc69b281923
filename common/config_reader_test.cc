// Tests of common/config_reader.h: typed reads and errors that name file, line, key and expectation.
#include "common/config_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace srlm {
namespace {

using ::testing::HasSubstr;

TEST(ConfigReader, MissingFileIsNotFoundAndNamesThePath) {
  auto r = ConfigReader::FromFile("/nonexistent/run.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("/nonexistent/run.yaml"));
}

TEST(ConfigReader, ADirectoryIsNotAnEmptyConfig) {
  auto reader = ConfigReader::FromFile("/tmp");
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader.status().message(), "config file '/tmp' is a directory");
}

TEST(ConfigReader, ReadsTypedValuesAndKeepsDefaults) {
  auto r = ConfigReader::FromString("a:\n  b: 3\n  c: 0.5\n  d: true\n  e: hi\n  f: [x, y]\n", "t.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  int64_t b = 0;
  double c = 0;
  bool d = false;
  std::string e, absent = "default";
  std::vector<std::string> f;
  r->Read("a.b", &b);
  r->Read("a.c", &c);
  r->Read("a.d", &d);
  r->Read("a.e", &e);
  r->Read("a.f", &f);
  r->Read("a.absent", &absent);
  EXPECT_TRUE(r->Finish().ok()) << r->Finish();
  EXPECT_EQ(b, 3);
  EXPECT_DOUBLE_EQ(c, 0.5);
  EXPECT_TRUE(d);
  EXPECT_EQ(e, "hi");
  EXPECT_EQ(f, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(absent, "default");
}

TEST(ConfigReader, BadTypeNamesFileLineKeyAndExpectation) {
  auto r = ConfigReader::FromString("dpo:\n  beta: lots\n  steps: 1.5\n", "run.yaml");
  ASSERT_TRUE(r.ok());
  double beta = 0.1;
  int64_t steps = 0;
  r->Read("dpo.beta", &beta);
  r->Read("dpo.steps", &steps);
  absl::Status s = r->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("run.yaml:2: key 'dpo.beta': expected a number, got 'lots'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("run.yaml:3: key 'dpo.steps': expected an integer, got '1.5'"));
  EXPECT_DOUBLE_EQ(beta, 0.1);  // unchanged on error
}

TEST(ConfigReader, MappingWhereScalarExpected) {
  auto r = ConfigReader::FromString("model:\n  path:\n    x: 1\n", "m.yaml");
  ASSERT_TRUE(r.ok());
  std::string path;
  r->Read("model.path", &path);
  EXPECT_THAT(std::string(r->Finish().message()), HasSubstr("key 'model.path': expected a string, got a mapping"));
}

TEST(ConfigReader, UnknownKeyIsAnErrorWithSuggestion) {
  auto r = ConfigReader::FromString("dpo:\n  beta: 0.2\n  betta: 0.3\n", "run.yaml");
  ASSERT_TRUE(r.ok());
  double beta = 0;
  r->Read("dpo.beta", &beta);
  absl::Status s = r->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("run.yaml:3: unknown key 'dpo.betta' (did you mean 'dpo.beta'?)"));
}

TEST(ConfigReader, NotYamlAndNotAMapping) {
  auto bad = ConfigReader::FromString("a: [1, 2\n", "x.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("x.yaml"));
  auto list = ConfigReader::FromString("- 1\n- 2\n", "y.yaml");
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("top level must be a mapping"));
}

// Every string of the configuration travels in protobuf strings, which must be UTF-8: a Latin-1
// path was accepted, and then every RPC that carried it failed (srlmctl status: "UNIMPLEMENTED: No
// message returned", the workers could not register).
TEST(ConfigReader, TextThatIsNotUtf8IsRefusedWithItsLine) {
  auto latin1 = ConfigReader::FromString("model:\n  path: \"/runs/m\xe9\"\n", "c.yaml");
  EXPECT_EQ(latin1.status(),
            absl::InvalidArgumentError("c.yaml:2: not UTF-8 (byte 0xE9 at column 17); write the file as UTF-8"));
  auto first = ConfigReader::FromString("\xff: 1\n", "d.yaml");
  EXPECT_EQ(first.status(),
            absl::InvalidArgumentError("d.yaml:1: not UTF-8 (byte 0xFF at column 1); write the file as UTF-8"));
  // UTF-8 beyond ASCII is fine.
  auto utf8 = ConfigReader::FromString("model:\n  path: \"/runs/m\xc3\xa9\"\n", "e.yaml");
  ASSERT_TRUE(utf8.ok()) << utf8.status();
  std::string path;
  utf8->Read("model.path", &path);
  EXPECT_EQ(path, "/runs/m\xc3\xa9");
}

TEST(ConfigReader, EmptyDocumentMeansAllDefaults) {
  auto r = ConfigReader::FromString("", "empty.yaml");
  ASSERT_TRUE(r.ok());
  int64_t x = 5;
  r->Read("a.x", &x);
  EXPECT_TRUE(r->Finish().ok());
  EXPECT_EQ(x, 5);
}

TEST(ConfigReader, NullOrEmptySectionMeansAllDefaults) {
  // A section whose keys are all commented out is null; `b: {}` is an empty mapping.
  auto r = ConfigReader::FromString("a:\n  # x: 1\nb: {}\nc:\n  d: {}\n", "s.yaml");
  ASSERT_TRUE(r.ok());
  int64_t ax = 5, bx = 6, cdx = 7;
  r->Read("a.x", &ax);
  r->Read("b.x", &bx);
  r->Read("c.d.x", &cdx);
  EXPECT_TRUE(r->Finish().ok()) << r->Finish();
  EXPECT_EQ(ax, 5);
  EXPECT_EQ(bx, 6);
  EXPECT_EQ(cdx, 7);
}

// A key with no value used to take its default without a word, so `iterations:` (the number
// forgotten) ran the default count. A null section is still every default (above).
TEST(ConfigReader, AKeyWithNoValueIsAnErrorAtItsLine) {
  auto r = ConfigReader::FromString("run:\n  iterations:\n  seed: ~\n  tags:\nmodel: ~\nsft:\n", "n.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  int64_t iterations = 3, seed = 4;
  std::vector<std::string> tags = {"kept"};
  std::string path = "default";
  bool sft = true;
  r->Read("run.iterations", &iterations);
  r->Read("run.seed", &seed);
  r->Read("run.tags", &tags);
  r->Read("model.path", &path);  // under a null section: the default, no error
  r->Read("sft", &sft);          // a null key, even at the top level
  EXPECT_EQ(r->Finish(), absl::InvalidArgumentError(
                             "n.yaml:2: key 'run.iterations' has no value; remove the key to take the default\n"
                             "n.yaml:3: key 'run.seed' has no value; remove the key to take the default\n"
                             "n.yaml:4: key 'run.tags' has no value; remove the key to take the default\n"
                             "n.yaml:6: key 'sft' has no value; remove the key to take the default"));
  EXPECT_EQ(iterations, 3);
  EXPECT_EQ(seed, 4);
  EXPECT_EQ(tags, std::vector<std::string>{"kept"});
  EXPECT_EQ(path, "default");
}

// yaml-cpp's Load reads the first document only: keys after a `---` were dropped without a word.
TEST(ConfigReader, ASecondDocumentIsAnErrorNamingItsLine) {
  auto two = ConfigReader::FromString("run:\n  iterations: 2\n---\nrun:\n  iterations: 5\n", "d.yaml");
  EXPECT_EQ(two.status(), absl::InvalidArgumentError(
                              "d.yaml:3: a second YAML document starts here; a configuration is one document "
                              "(remove this '---' and put its keys in the first)"));
  auto third = ConfigReader::FromString("---\na: 1\n---\n# nothing\n---\nb: 2\n", "t.yaml");
  EXPECT_THAT(std::string(third.status().message()), HasSubstr("t.yaml:5: a second YAML document"));
  // One document that opens with `---`, or `---` with nothing after it, is fine.
  for (const char* text : {"---\na: 1\n", "a: 1\n---\n", "a: 1\n...\n---\n# a: 2\n"}) {
    auto one = ConfigReader::FromString(text, "o.yaml");
    ASSERT_TRUE(one.ok()) << text << ": " << one.status();
    int64_t a = 0;
    one->Read("a", &a);
    EXPECT_TRUE(one->Finish().ok()) << text << ": " << one->Finish();
    EXPECT_EQ(a, 1) << text;
  }
}

TEST(ConfigReader, ScalarGivenForASectionIsReportedOnce) {
  auto r = ConfigReader::FromString("model: /x\n", "bad.yaml");
  ASSERT_TRUE(r.ok());
  std::string path, dtype, device;
  r->Read("model.path", &path);
  r->Read("model.dtype", &dtype);
  r->Read("model.device", &device);
  const std::string message(r->Finish().message());
  EXPECT_EQ(message, "bad.yaml:1: key 'model': expected a mapping, got '/x'");
  auto list = ConfigReader::FromString("model: [1, 2]\n", "list.yaml");
  ASSERT_TRUE(list.ok());
  list->Read("model.path", &path);
  list->Read("model.dtype", &dtype);
  EXPECT_EQ(std::string(list->Finish().message()), "list.yaml:1: key 'model': expected a mapping, got a sequence");
}

// YAML allows any node as a key; a key that is not a plain name is an error, not a crash (it
// threw YAML::TypedBadConversion out of Finish).
TEST(ConfigReader, KeyThatIsNotAPlainNameIsAnError) {
  auto r = ConfigReader::FromString("model:\n  ? [a, b]\n  : 1\n  path: /m\n", "k.yaml");
  ASSERT_TRUE(r.ok());
  std::string path;
  r->Read("model.path", &path);
  EXPECT_EQ(path, "/m");
  const absl::Status status = r->Finish();
  EXPECT_EQ(std::string(status.message()), "k.yaml:2: a key under 'model' is not a plain name");
}

TEST(ConfigReader, UnknownEmptySectionIsStillAnErrorAndSuggestsTheSection) {
  auto r = ConfigReader::FromString("modle:\n", "u.yaml");
  ASSERT_TRUE(r.ok());
  std::string path;
  r->Read("model.path", &path);
  EXPECT_THAT(std::string(r->Finish().message()), HasSubstr("u.yaml:1: unknown key 'modle' (did you mean 'model'?)"));
}

}  // namespace
}  // namespace srlm
