// Flag checks of the model commands (init-model, generate, logprobs): a value outside the accepted
// set is refused while the command line is parsed, with an error that names the flag and lists the
// accepted values, before any file is read or written.
#include <CLI/CLI.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace srlm {
void RegisterInitModelCommand(CLI::App& app);  // worker/cmd_init_model.cc
void RegisterGenerateCommand(CLI::App& app);   // worker/cmd_generate.cc
void RegisterLogprobsCommand(CLI::App& app);   // worker/cmd_logprobs.cc

namespace {

using ::testing::HasSubstr;

// Parses `command_line` with the command's callback removed (it would run the command and exit);
// returns the parse error, or "" when the line parses.
std::string ParseError(void (*register_command)(CLI::App&), const std::string& command_line) {
  CLI::App app;
  register_command(app);
  for (CLI::App* command : app.get_subcommands({})) command->callback(nullptr);
  try {
    app.parse(command_line, /*program_name_included=*/false);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST(InitModelFlags, ModelTypeMustBeOneTheLoaderReads) {
  const std::string error = ParseError(RegisterInitModelCommand, "init-model --out /nonexistent/m --model-type gpt2");
  EXPECT_THAT(error, HasSubstr("--model-type"));
  EXPECT_THAT(error, HasSubstr("gpt2"));
  EXPECT_THAT(error, HasSubstr("llama"));
  EXPECT_THAT(error, HasSubstr("mistral"));
  EXPECT_THAT(error, HasSubstr("qwen2"));
  for (const char* type : {"llama", "mistral", "qwen2"}) {
    EXPECT_EQ(ParseError(RegisterInitModelCommand, std::string("init-model --out /nonexistent/m --model-type ") + type),
              "");
  }
}

TEST(GenerateFlags, ChatTemplateIsCheckedBeforeTheInputIsRead) {
  for (auto command : {RegisterGenerateCommand, RegisterLogprobsCommand}) {
    CLI::App probe;
    command(probe);
    const std::string name = probe.get_subcommands({})[0]->get_name();
    const std::string files = " --model /nonexistent/m --input /nonexistent/p.jsonl --output /nonexistent/o.jsonl";
    const std::string error = ParseError(command, name + files + " --chat-template foo");
    EXPECT_THAT(error, HasSubstr("--chat-template")) << name;
    EXPECT_THAT(error, HasSubstr("foo")) << name;
    EXPECT_THAT(error, HasSubstr("plain,llama2,llama3,chatml")) << name;
    EXPECT_EQ(ParseError(command, name + files + " --chat-template llama3"), "") << name;
    EXPECT_EQ(ParseError(command, name + files), "") << name;  // the default, plain
  }
}

}  // namespace
}  // namespace srlm
