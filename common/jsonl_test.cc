// Tests of common/jsonl.h: the JSON Lines reader's line numbers and refusals, the string-field
// reader of data.ift and data.eval (worker and coordinator), and the writer's all-or-nothing
// replacement.
#include "common/jsonl.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"

namespace srlm {
namespace {

using testing_util::ReadFileText;
using testing_util::TempDir;
using testing_util::WriteFileText;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(ForEachJsonlLine, VisitsEachNonBlankLineWithItsNumberAndStopsAtTheVisitorsError) {
  TempDir dir("srlm_jsonl_test_");
  WriteFileText(dir / "in.jsonl", "{\"a\": 1}\n\n  \t\r\n[1, 2]\r\n{\"a\": 2}\n{\"a\": 3}\n");
  std::vector<std::pair<int64_t, std::string>> seen;
  const absl::Status status = ForEachJsonlLine(dir / "in.jsonl", [&](int64_t number, absl::StatusOr<nlohmann::json> line) {
    seen.emplace_back(number, line.ok() ? line->dump() : "error: " + Message(line.status()));
    if (line.ok() && (*line)["a"] == 2) return absl::AbortedError("stop here");
    return absl::OkStatus();
  });
  EXPECT_EQ(status, absl::AbortedError("stop here"));
  // Blank lines count towards the numbers but are not visited; a line that is not an object is
  // handed over as an error (the visitor decides); nothing after the visitor's error is read.
  const std::vector<std::pair<int64_t, std::string>> expected = {
      {1, "{\"a\":1}"}, {4, "error: not a JSON object: the line holds an array"}, {5, "{\"a\":2}"}};
  EXPECT_EQ(seen, expected);
}

TEST(ReadJsonl, RefusesDeepNestingFoldersAndFilesWithoutLines) {
  TempDir dir("srlm_jsonl_test_");
  // 200000 nested arrays: nlohmann parses them, but writing the line back recursed once per level
  // and overflowed the stack (generate and logprobs crashed after truncating --output).
  WriteFileText(dir / "deep.jsonl", "{\"prompt\": \"a\"}\n{\"x\": " + std::string(200000, '[') +
                                    std::string(200000, ']') + "}\n");
  auto deep = ReadJsonl(dir / "deep.jsonl");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(Message(deep.status()).find(dir / "deep.jsonl:2: nested deeper than 64 levels"), std::string::npos)
      << deep.status();
  // 64 levels (the line's object and 63 arrays) and brackets inside strings are fine.
  WriteFileText(dir / "ok.jsonl", "{\"x\": " + std::string(63, '[') + std::string(63, ']') + ", \"s\": \"" +
                                  std::string(100, '[') + "\\\"{\"}\n\n");
  auto ok = ReadJsonl(dir / "ok.jsonl");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 1u);
  WriteFileText(dir / "deep65.jsonl", "{\"x\": " + std::string(64, '[') + std::string(64, ']') + "}\n");
  EXPECT_FALSE(ReadJsonl(dir / "deep65.jsonl").ok());

  WriteFileText(dir / "bad.jsonl", "{\"a\": 1}\n\n{\"a\": \n");
  auto bad = ReadJsonl(dir / "bad.jsonl");
  EXPECT_EQ(bad.status(), absl::InvalidArgumentError(dir / "bad.jsonl:3: not a JSON object: invalid JSON at column 7: "
                                                            "syntax error while parsing value - unexpected end of "
                                                            "input; expected '[', '{', or a literal"));

  // A folder used to read as a file with no lines, and no lines gave an empty output.
  auto folder = ReadJsonl(dir.path());
  EXPECT_EQ(folder.status().code(), absl::StatusCode::kInvalidArgument) << folder.status();
  EXPECT_NE(Message(folder.status()).find("is a directory"), std::string::npos) << folder.status();
  WriteFileText(dir / "blank.jsonl", "\n  \n");
  auto blank = ReadJsonl(dir / "blank.jsonl");
  EXPECT_EQ(blank.status(), absl::InvalidArgumentError("no lines in " + (dir / "blank.jsonl")));
  auto missing = ReadJsonl(dir / "missing.jsonl");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(Message(missing.status()).find("No such file or directory"), std::string::npos) << missing.status();
}

TEST(ReadJsonl, ALineThatIsNotJsonSaysWhyAndWhere) {
  // Each of these used to say only "not a JSON object".
  TempDir dir("srlm_jsonl_test_");
  const std::string long_string(300, 'x');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"prompt\": \"a\xff b\"}",
       "invalid JSON at column 14: syntax error while parsing value - invalid string: ill-formed UTF-8 byte; "
       "last read: '\"a\xef\xbf\xbd'"},  // the byte shown as U+FFFD: the message stays valid UTF-8
      {"{\"prompt\": \"\\ud800\"}",
       "invalid JSON at column 19: syntax error while parsing value - invalid string: surrogate U+D800..U+DBFF must "
       "be followed by U+DC00..U+DFFF; last read: '\"\\ud800\"'"},
      {"{\"prompt\": \"abc",
       "invalid JSON at column 16: syntax error while parsing value - invalid string: missing closing quote; last "
       "read: '\"abc'"},
      {"{\"prompt\": \"abc\"", "invalid JSON at column 17: syntax error while parsing object - unexpected end of "
                              "input; expected '}'"},
      {"{\"prompt\": \"abc\"} x", "invalid JSON at column 19: syntax error while parsing value - invalid literal; "
                                 "last read: '\"abc\"} x'; expected end of input"},
      // The parser's excerpt is cut to its last 40 bytes.
      {"{\"prompt\": \"" + long_string,
       "invalid JSON at column 313: syntax error while parsing value - invalid string: missing closing quote; "
       "last read: '..." + std::string(40, 'x') + "'"},
      {"\"just a string\"", "the line holds a string"},
  };
  for (const auto& [line, why] : cases) {
    WriteFileText(dir / "in.jsonl", "{\"prompt\": \"fine\"}\n" + line + "\n");
    const auto read = ReadJsonl(dir / "in.jsonl");
    EXPECT_EQ(read.status(), absl::InvalidArgumentError(dir / "in.jsonl:2: not a JSON object: " + why)) << line;
  }
}

// The rows of data.ift ({"prompt"}) and data.eval ({"prompt", "answer"}, answer not blank) as the
// worker and the coordinator read them: fields in the order asked, blank lines skipped, other keys
// ignored, and each refusal naming the key, the file and the line.
TEST(ReadJsonlStrings, ReadsTheFieldsInOrderAndRefusesMissingNonStringAndBlankOnesNamingTheLine) {
  TempDir dir("srlm_jsonl_test_");
  const std::string eval = dir / "eval.jsonl";
  WriteFileText(eval, "{\"answer\": \"4\", \"prompt\": \"2 + 2\", \"id\": 1}\n\n{\"prompt\": \"3 + 3\", \"answer\": \"6\"}\n");
  auto rows = ReadJsonlStrings(eval, "data.eval", {"prompt", "answer"}, {"answer"});
  ASSERT_TRUE(rows.ok()) << rows.status();
  const std::vector<std::vector<std::string>> expected = {{"2 + 2", "4"}, {"3 + 3", "6"}};
  EXPECT_EQ(*rows, expected);

  WriteFileText(eval, "{\"prompt\": \"2 + 2\", \"answer\": \"4\"}\n\n{\"prompt\": \"3 + 3\"}\n");
  EXPECT_EQ(ReadJsonlStrings(eval, "data.eval", {"prompt", "answer"}, {"answer"}).status(),
            absl::InvalidArgumentError("data.eval: " + eval + ":3: no string 'answer'"));
  // Without a rule for it, the missing field is only a refusal when asked for.
  auto prompts = ReadJsonlStrings(eval, "data.ift", {"prompt"});
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  EXPECT_EQ(prompts->size(), 2u);

  WriteFileText(eval, "{\"prompt\": 5, \"answer\": \"4\"}\n");
  EXPECT_EQ(ReadJsonlStrings(eval, "data.eval", {"prompt", "answer"}, {"answer"}).status(),
            absl::InvalidArgumentError("data.eval: " + eval + ":1: no string 'prompt'"));
  WriteFileText(eval, "{\"prompt\": \"2 + 2\", \"answer\": \" \\t\"}\n");
  EXPECT_EQ(ReadJsonlStrings(eval, "data.eval", {"prompt", "answer"}, {"answer"}).status(),
            absl::InvalidArgumentError("data.eval: " + eval + ":1: 'answer' is empty"));
  // A blank field not named in not_blank is read as it is.
  auto blank_prompt = ReadJsonlStrings(eval, "data.eval", {"prompt", "answer"});
  ASSERT_TRUE(blank_prompt.ok()) << blank_prompt.status();
  EXPECT_EQ((*blank_prompt)[0][1], " \t");
  WriteFileText(eval, "{\"prompt\": \"2 + 2\"}\nWhat is 3 + 3\n");
  EXPECT_EQ(ReadJsonlStrings(eval, "data.ift", {"prompt"}).status(),
            absl::InvalidArgumentError("data.ift: " + eval + ":2: not a JSON object: invalid JSON at column 1: "
                                       "syntax error while parsing value - invalid literal; last read: 'W'"));

  EXPECT_EQ(ReadJsonlStrings("", "data.ift", {"prompt"}).status(),
            absl::FailedPreconditionError("data.ift is not set in the run configuration"));
  auto missing = ReadJsonlStrings(dir / "missing.jsonl", "data.ift", {"prompt"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(missing.status()).rfind("data.ift: cannot open " + (dir / "missing.jsonl"), 0), 0u)
      << missing.status();
  // An empty file is no error here (ReadJsonl's "no lines" is not its rule).
  WriteFileText(eval, "");
  auto empty = ReadJsonlStrings(eval, "data.ift", {"prompt"});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

TEST(WriteJsonl, ReplacesTheFileWholeOrNotAtAll) {
  TempDir dir("srlm_jsonl_test_");
  const std::string out = dir / "out.jsonl";
  WriteFileText(out, "{\"old\": 1}\n");
  // A failed write (here: its temporary cannot be made) leaves the existing file as it was; the
  // old code truncated it first.
  const std::string tmp = dir / (".out.jsonl.tmp-" + std::to_string(::getpid()));
  ASSERT_EQ(::mkdir(tmp.c_str(), 0755), 0);
  const absl::Status failed = WriteJsonl(out, {nlohmann::json{{"new", 2}}});
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(Message(failed).find("cannot write " + out), std::string::npos) << failed;
  EXPECT_EQ(ReadFileText(out), "{\"old\": 1}\n");
  ::rmdir(tmp.c_str());

  // Invalid UTF-8 in a string is written as U+FFFD, not thrown as a nlohmann type_error.
  const absl::Status written = WriteJsonl(out, {nlohmann::json{{"new", 2}}, nlohmann::json{{"s", "a\xff"}}});
  ASSERT_TRUE(written.ok()) << written;
  EXPECT_EQ(ReadFileText(out), "{\"new\":2}\n{\"s\":\"a\xEF\xBF\xBD\"}\n");
  struct stat st;
  EXPECT_NE(::stat(tmp.c_str(), &st), 0) << "temporary left behind";
}

}  // namespace
}  // namespace srlm
