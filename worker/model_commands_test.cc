// The model commands (init-model, generate, logprobs) on bad input. Flag checks: a value outside the
// accepted set is refused while the command line is parsed, with an error that names the flag and
// says what is accepted, before any file is read or written (in process). Files: the real
// srlm-worker binary on a tiny model, each bad input giving a clear error (file, line, key) with
// nothing lost or half-written; the sft command's tokenizer handling is checked here too.
#include <CLI/CLI.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"

namespace srlm {
void RegisterInitModelCommand(CLI::App& app);  // worker/cmd_init_model.cc
void RegisterGenerateCommand(CLI::App& app);   // worker/cmd_generate.cc
void RegisterLogprobsCommand(CLI::App& app);   // worker/cmd_logprobs.cc

namespace {

using ::srlm::testing_util::ReadFileText;
using ::srlm::testing_util::WriteFileText;
using ::srlm::testing_util::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// Takes a command's callback out of it: the callback would run the command and exit, and it owns
// the command's flags, which the parse writes (dropping it made the parse write freed memory, as
// AddressSanitizer showed). CLI::App has no getter; its member is reached through a derived class.
struct CallbackTaker : CLI::App {
  static std::function<void()> Take(CLI::App& command) {
    return std::exchange(command.*(&CallbackTaker::final_callback_), nullptr);
  }
};

// Parses `command_line` with the command's callback taken out (kept alive, never run); returns the
// parse error, or "" when the line parses.
std::string ParseError(void (*register_command)(CLI::App&), const std::string& command_line) {
  CLI::App app;
  register_command(app);
  std::vector<std::function<void()>> callbacks;
  for (CLI::App* command : app.get_subcommands({})) callbacks.push_back(CallbackTaker::Take(*command));
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

TEST(InitModelFlags, EveryNumberIsFiniteAndInRange) {
  // --init-std -1 or nan used to abort in libtorch (exit 134), --rope-theta nan was written to
  // config.json as null, --vocab-size -5 silently became 4096, --seed -1 wrapped to 2^64 - 1.
  const std::string out = "init-model --out /nonexistent/m ";
  for (const std::string bad :
       {"--init-std -1", "--init-std nan", "--init-std inf", "--rope-theta nan", "--rope-theta inf", "--rope-theta 0",
        "--vocab-size -5", "--vocab-size 0", "--vocab-size 3000000000", "--seed -1", "--layers 0", "--layers 2.5",
        "--hidden-size -3", "--intermediate-size x", "--heads 0", "--kv-heads -1", "--max-position-embeddings 0"}) {
    const std::string flag = bad.substr(0, bad.find(' '));
    const std::string error = ParseError(RegisterInitModelCommand, out + bad);
    EXPECT_THAT(error, HasSubstr(flag + ": expected ")) << bad;
    EXPECT_THAT(error, HasSubstr(bad.substr(bad.find(' ') + 1))) << bad;
  }
  EXPECT_EQ(ParseError(RegisterInitModelCommand, out + "--init-std 0 --rope-theta 5e5 --vocab-size 2147483647 "
                                                       "--seed 18 --layers 1 --heads 2 --kv-heads 1"),
            "");
}

TEST(GenerateFlags, SamplingFlagsHaveTheRangesOfTheYamlKeys) {
  // The ranges of common/run_config.cc ValidateSampling; --temperature nan used to sample token 0
  // every time, --top-p 5 and --top-k -3 were taken as they came.
  const std::string files = "generate --model /nonexistent/m --input /nonexistent/p.jsonl --output /nonexistent/o.jsonl ";
  for (const std::string bad : {"--temperature nan", "--temperature -1", "--temperature inf", "--top-p 5", "--top-p 0",
                                "--top-p nan", "--top-k -3", "--max-new-tokens 0", "--max-new-tokens 1.5",
                                "--seed -1", "--batch-size 0"}) {
    const std::string flag = bad.substr(0, bad.find(' '));
    EXPECT_THAT(ParseError(RegisterGenerateCommand, files + bad), HasSubstr(flag + ": expected ")) << bad;
  }
  EXPECT_EQ(ParseError(RegisterGenerateCommand, files + "--temperature 0 --top-p 1 --top-k 0 --max-new-tokens 1"), "");
  EXPECT_EQ(ParseError(RegisterGenerateCommand, files + "--temperature 1.5 --top-p 0.01 --top-k 40 --seed 7"), "");
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

// ---- The real binary ----

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

struct WorkerRun {
  int rc = -1;         // exit code; 128 + signal when killed (134: abort, 139: segfault)
  std::string output;  // stdout and stderr
};

// Runs `shell_prefix` then srlm-worker with `args` through the shell.
WorkerRun RunWorker(const std::string& args, const std::string& shell_prefix = "") {
  static int count = 0;
  const std::string log = EnvOr("TMPDIR", "/tmp") + "/srlm_model_commands_test_" + std::to_string(::getpid()) + "_" +
                          std::to_string(count++) + ".log";
  const std::string worker = EnvOr("SRLM_BUILD_DIR", "/work/main/build") + "/worker/srlm-worker";
  const int status = std::system((shell_prefix + worker + " " + args + " >" + log + " 2>&1").c_str());
  WorkerRun run;
  run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.output = ReadFileText(log);
  std::remove(log.c_str());
  return run;
}

// One tiny model (demo tokenizer, 1 layer, width 32) for every test of this binary.
class ModelCommandsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = new TempDir("srlm_model_commands_test_");
    const WorkerRun init = RunWorker("init-model --out " + Model() + " --tokenizer-from " + DemoData() +
                               " --layers 1 --hidden-size 32 --intermediate-size 64 --heads 2 --kv-heads 2"
                               " --max-position-embeddings 64 --seed 1");
    ASSERT_EQ(init.rc, 0) << init.output;
  }
  static void TearDownTestSuite() {
    delete temp_;
    temp_ = nullptr;
  }
  static std::string DemoData() { return EnvOr("SRLM_SOURCE_DIR", "/work/main") + "/deploy/demo/data"; }
  static std::string Model() { return *temp_ / "m0"; }
  // A folder of this test, removed with the suite.
  std::string Path(const std::string& name) const {
    return *temp_ / (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" + name);
  }
  // A copy of the model whose config.json and tokenizer.json can be edited (no checksum manifest).
  std::string EditableModel(const std::string& name) const {
    const std::string dir = Path(name);
    EXPECT_EQ(std::system(("cp -r " + Model() + " " + dir + " && rm " + dir + "/checksums.sha256").c_str()), 0);
    return dir;
  }

  static TempDir* temp_;
};
TempDir* ModelCommandsTest::temp_ = nullptr;

// An empty output path is refused before anything starts (an empty --checkpoint-root used to put
// M_{t+1} at /iter-<t+1>). Through the real binary: CLI11's one-string parse drops a quoted "".
TEST_F(ModelCommandsTest, AnEmptyOutputPathIsRefused) {
  const std::string files = " --model " + Model() + " --input /nonexistent/p.jsonl";
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"run --coordinator 127.0.0.1:1 --checkpoint-root ''", "--checkpoint-root"},
           {"init-model --out ''", "--out"},
           {"generate" + files + " --output ''", "--output"},
           {"logprobs" + files + " --output ''", "--output"}}) {
    const WorkerRun run = RunWorker(args);
    EXPECT_NE(run.rc, 0) << args << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(flag + ": expected a path, got an empty string")) << args;
  }
}

TEST_F(ModelCommandsTest, InitModelRefusesAnOutThatHoldsAnythingAndChangesNothing) {
  // --out pointing at a model (here also --tokenizer-from) used to be overwritten: its config and
  // weights were replaced, then the tokenizer copy failed ("File exists").
  const std::string self = Path("self");
  ASSERT_EQ(std::system(("cp -r " + Model() + " " + self).c_str()), 0);
  const std::string config = ReadFileText(self + "/config.json"), weights = ReadFileText(self + "/model.safetensors");
  const WorkerRun run = RunWorker("init-model --out " + self + " --tokenizer-from " + self + " --layers 1 --hidden-size 32");
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--out " + self + " exists and is not empty"));
  EXPECT_EQ(ReadFileText(self + "/config.json"), config);
  EXPECT_TRUE(ReadFileText(self + "/model.safetensors") == weights) << "the weights at --out were changed";

  const std::string file = Path("file");
  WriteFileText(file, "keep me\n");
  const WorkerRun on_file = RunWorker("init-model --out " + file + " --layers 1 --hidden-size 32 --intermediate-size 64");
  EXPECT_EQ(on_file.rc, 1) << on_file.output;
  EXPECT_THAT(on_file.output, HasSubstr("exists and is not a directory"));
  EXPECT_EQ(ReadFileText(file), "keep me\n");

  const std::string empty = Path("empty");  // an empty folder is fine
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  const WorkerRun into_empty = RunWorker("init-model --out " + empty + " --layers 1 --hidden-size 32 --intermediate-size 64");
  EXPECT_EQ(into_empty.rc, 0) << into_empty.output;
  EXPECT_TRUE(Exists(empty + "/model.safetensors"));
}

TEST_F(ModelCommandsTest, InitModelThatFailsWritingLeavesNothingBehind) {
  // A file size limit makes the weights' write fail half-way (config.json is written by then).
  const std::string out = Path("m");
  const WorkerRun run = RunWorker("init-model --out " + out + " --tokenizer-from " + DemoData() +
                                " --layers 1 --hidden-size 32 --intermediate-size 64",
                            "trap '' XFSZ; ulimit -f 16; ");
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("model.safetensors"));
  EXPECT_FALSE(Exists(out)) << "a half-written model was left at --out";
  EXPECT_NE(std::system(("ls -a " + temp_->path() + " | grep -q 'InitModelThatFails.*tmp'").c_str()), 0)
      << "a temporary folder was left behind";
}

TEST_F(ModelCommandsTest, ConfigWithAWrongTypeIsAnErrorNamingTheKeyNotAnAbort) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"model_type", "5"}, {"hidden_act", "1"}, {"eos_token_id", "\"1\""}, {"hidden_size", "64.9"}}) {
    const std::string model = EditableModel(key);
    const std::string config = ReadFileText(model + "/config.json");
    const size_t at = config.find("\"" + key + "\":");
    ASSERT_NE(at, std::string::npos) << key;
    const size_t end = config.find_first_of(",\n", at);
    WriteFileText(model + "/config.json", config.substr(0, at) + "\"" + key + "\": " + value + config.substr(end));
    WriteFileText(model + "/in.jsonl", "{\"prompt_ids\": [1, 5], \"response_ids\": [6]}\n");
    const WorkerRun run = RunWorker("logprobs --device cpu --model " + model + " --input " + model + "/in.jsonl --output " +
                              model + "/out.jsonl");
    EXPECT_EQ(run.rc, 1) << key << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr(model + "/config.json: key '" + key + "': expected ")) << key;
  }
}

TEST_F(ModelCommandsTest, DeeplyNestedLineIsRefusedAndTheOutputKept) {
  // 200000 nested arrays: generate and logprobs used to truncate --output, then overflow the stack
  // writing the line back (segfault).
  const std::string in = Path("deep.jsonl"), out = Path("out.jsonl");
  WriteFileText(in, "{\"prompt\": \"hi\", \"response\": \"x\", \"x\": " + std::string(200000, '[') +
                    std::string(200000, ']') + "}\n");
  WriteFileText(out, "{\"earlier\": \"results\"}\n");
  for (const std::string command : {"generate --max-new-tokens 2", "logprobs"}) {
    const WorkerRun run = RunWorker(command + " --device cpu --model " + Model() + " --input " + in + " --output " + out);
    EXPECT_EQ(run.rc, 1) << command << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr(in + ":1: nested deeper than 64 levels")) << command;
    EXPECT_EQ(ReadFileText(out), "{\"earlier\": \"results\"}\n") << command;
  }
}

TEST_F(ModelCommandsTest, InputAndOutputAreCheckedBeforeTheModelIsLoaded) {
  // The model does not exist: each error must come from the files, before the model is read. A
  // folder or an empty file as --input used to succeed with an empty --output; an --output in a
  // missing folder, or naming a folder, failed after all the work with no reason.
  const std::string good = Path("good.jsonl"), empty = Path("empty.jsonl");
  WriteFileText(good, "{\"prompt_ids\": [1, 5], \"response_ids\": [6]}\n");
  WriteFileText(empty, "\n");
  const std::string folder = temp_->path();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--input " + folder + " --output " + Path("o1.jsonl"), folder + " is a directory"},
      {"--input " + empty + " --output " + Path("o2.jsonl"), "no lines in " + empty},
      {"--input " + good + " --output " + Path("missing/o.jsonl"), "No such file or directory"},
      {"--input " + good + " --output " + folder, "cannot write " + folder + ": it is a directory"},
  };
  for (const std::string command : {"generate", "logprobs"}) {
    for (const auto& [files, expected] : cases) {
      const WorkerRun run = RunWorker(command + " --device cpu --model /nonexistent/model " + files);
      EXPECT_EQ(run.rc, 1) << command << " " << files << ": " << run.output;
      EXPECT_THAT(run.output, HasSubstr(expected)) << command << " " << files;
      EXPECT_THAT(run.output, Not(HasSubstr("/nonexistent/model"))) << command << " " << files;
    }
  }
  EXPECT_FALSE(Exists(Path("o1.jsonl")));
  EXPECT_FALSE(Exists(Path("o2.jsonl")));
}

// A Mistral with a sliding window of 8: srlm attends to every earlier token, the same computation as
// the window's while a sequence fits in it. Past it the result would differ from the model's
// (transformers: -774.26 against srlm's -771.75 for 4,200 + 100 tokens under a 4,096 window), so
// logprobs refuses such a line and generate ends each sequence at the window.
TEST_F(ModelCommandsTest, NothingRunsPastAMistralSlidingWindow) {
  const std::string model = EditableModel("mistral");
  std::string config = ReadFileText(model + "/config.json");
  const std::string llama = "\"model_type\": \"llama\"";
  ASSERT_NE(config.find(llama), std::string::npos) << config;
  config.replace(config.find(llama), llama.size(), "\"model_type\": \"mistral\"");
  config.replace(config.find('{'), 1, "{\"sliding_window\": 8,");
  WriteFileText(model + "/config.json", config);
  const std::string in = Path("in.jsonl"), out = Path("out.jsonl");

  WriteFileText(in, "{\"prompt_ids\": [1, 5, 6], \"response_ids\": [7, 8, 9, 10, 11]}\n"
                    "{\"prompt_ids\": [1, 5, 6], \"response_ids\": [7, 8, 9, 10, 11, 12]}\n");
  const WorkerRun refused = RunWorker("logprobs --device cpu --model " + model + " --input " + in + " --output " + out);
  EXPECT_EQ(refused.rc, 1) << refused.output;
  EXPECT_THAT(refused.output,
              HasSubstr(in + ":2: prompt + response is 9 tokens, over the limit of 8 (the model's sliding_window)"));
  EXPECT_FALSE(Exists(out));

  std::string prompts;
  for (int seed = 0; seed < 4; ++seed) prompts += "{\"prompt_ids\": [1, 5, 6], \"seed\": " + std::to_string(seed) + "}\n";
  WriteFileText(in, prompts);
  const WorkerRun generated = RunWorker("generate --device cpu --temperature 1 --max-new-tokens 20 --model " + model +
                                        " --input " + in + " --output " + out);
  ASSERT_EQ(generated.rc, 0) << generated.output;
  int ended_at_window = 0;
  const std::vector<std::string> lines = absl::StrSplit(ReadFileText(out), '\n', absl::SkipEmpty());
  for (const std::string& line : lines) {
    const size_t ids = line.find("\"response_ids\":[");
    ASSERT_NE(ids, std::string::npos) << line;
    const std::string list = line.substr(ids + 16, line.find(']', ids) - ids - 16);
    const size_t tokens = list.empty() ? 0 : std::count(list.begin(), list.end(), ',') + 1;
    EXPECT_LE(tokens, 5u) << line;  // 3 prompt tokens + 5 = the window
    if (tokens == 5 && line.find("\"finish_reason\":\"length\"") != std::string::npos) ++ended_at_window;
  }
  EXPECT_GT(ended_at_window, 0) << ReadFileText(out);
}

// Merges the JSON object `patch` into dir's config.json.
void PatchConfig(const std::string& dir, const std::string& patch) {
  nlohmann::json config = nlohmann::json::parse(ReadFileText(dir + "/config.json"));
  config.update(nlohmann::json::parse(patch));
  WriteFileText(dir + "/config.json", config.dump(2));
}

// The ids "[1, 5, 5, ..., 5]" of a prompt of n tokens, as JSON.
std::string PromptIds(int n) {
  std::string ids = "[1";
  for (int i = 1; i < n; ++i) ids += ", 5";
  return ids + "]";
}

// The test model's context is 64 tokens (max_position_embeddings). logprobs scored a 3,603-token
// line on a 128-token model without a word, where sft and dpo refuse it; generate decoded past the
// context.
TEST_F(ModelCommandsTest, NothingRunsPastTheModelsContext) {
  const std::string in = Path("in.jsonl"), out = Path("out.jsonl");
  WriteFileText(in, "{\"prompt_ids\": " + PromptIds(60) + ", \"response_ids\": [6, 7, 8, 9]}\n"
                    "{\"prompt_ids\": " + PromptIds(60) + ", \"response_ids\": [6, 7, 8, 9, 10]}\n");
  const WorkerRun refused = RunWorker("logprobs --device cpu --model " + Model() + " --input " + in + " --output " + out);
  EXPECT_EQ(refused.rc, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr(in + ":2: prompt + response is 65 tokens, over the limit of 64 (the model's "
                                             "max_position_embeddings)"));
  EXPECT_FALSE(Exists(out));
  // Text is counted after tokenization, as the trainer counts it.
  WriteFileText(in, "{\"prompt\": \"" + std::string(200, 'a') + "\", \"response\": \"b\"}\n");
  const WorkerRun text = RunWorker("logprobs --device cpu --model " + Model() + " --input " + in + " --output " + out);
  EXPECT_EQ(text.rc, 1) << text.output;
  EXPECT_THAT(text.output, HasSubstr(in + ":1: prompt + response is "));
  EXPECT_THAT(text.output, HasSubstr(" tokens, over the limit of 64"));
  WriteFileText(in, "{\"prompt_ids\": " + PromptIds(60) + ", \"response_ids\": [6, 7, 8, 9]}\n");
  const WorkerRun fits = RunWorker("logprobs --device cpu --model " + Model() + " --input " + in + " --output " + out);
  EXPECT_EQ(fits.rc, 0) << fits.output;
  EXPECT_THAT(ReadFileText(out), HasSubstr("\"num_tokens\":4"));

  // generate: a prompt that fills the context is refused with its line; others end at the context.
  WriteFileText(in, "{\"prompt_ids\": [1, 5]}\n{\"prompt_ids\": " + PromptIds(64) + "}\n");
  const WorkerRun full = RunWorker("generate --device cpu --max-new-tokens 4 --model " + Model() + " --input " + in +
                                   " --output " + Path("gen.jsonl"));
  EXPECT_EQ(full.rc, 1) << full.output;
  EXPECT_THAT(full.output, HasSubstr(in + ":2: prompt is 64 tokens, no room for a response under the limit of 64 "
                                          "(the model's max_position_embeddings)"));
  EXPECT_FALSE(Exists(Path("gen.jsonl")));
  std::string prompts;
  for (int seed = 0; seed < 4; ++seed) {
    prompts += "{\"prompt_ids\": " + PromptIds(60) + ", \"seed\": " + std::to_string(seed) + "}\n";
  }
  WriteFileText(in, prompts);
  const WorkerRun generated = RunWorker("generate --device cpu --temperature 1 --max-new-tokens 20 --model " + Model() +
                                        " --input " + in + " --output " + out);
  ASSERT_EQ(generated.rc, 0) << generated.output;
  int ended_at_context = 0;
  const std::vector<std::string> lines = absl::StrSplit(ReadFileText(out), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  for (const std::string& line : lines) {
    const size_t ids = line.find("\"response_ids\":[");
    ASSERT_NE(ids, std::string::npos) << line;
    const std::string list = line.substr(ids + 16, line.find(']', ids) - ids - 16);
    const size_t tokens = list.empty() ? 0 : std::count(list.begin(), list.end(), ',') + 1;
    EXPECT_LE(tokens, 4u) << line;  // 60 prompt tokens + 4 = the context
    if (tokens == 4 && line.find("\"finish_reason\":\"length\"") != std::string::npos) ++ended_at_context;
  }
  EXPECT_GT(ended_at_context, 0) << ReadFileText(out);
}

TEST_F(ModelCommandsTest, SizesTooLargeForMemoryAreResourceExhaustedNamingTheBytes) {
  // Both used to print libtorch's allocator text ("[enforce fail at alloc_cpu.cpp:127] ..."), and
  // --hidden-size 1000000 first filled 16 GB with a 4096-row embedding.
  for (const std::string sizes : {"--vocab-size 2147483647", "--vocab-size 64 --hidden-size 1000000"}) {
    const std::string out = Path("big");
    const WorkerRun run = RunWorker("init-model --out " + out + " " + sizes);
    EXPECT_EQ(run.rc, 1) << sizes << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr("RESOURCE_EXHAUSTED: the sizes given (--vocab-size, --hidden-size, "
                                      "--intermediate-size, --layers): the model's parameters need "))
        << sizes;
    EXPECT_THAT(run.output, HasSubstr(" bytes (")) << sizes;
    EXPECT_THAT(run.output, Not(HasSubstr("alloc_cpu"))) << sizes;
    EXPECT_FALSE(Exists(out)) << sizes;
  }
  // A config.json that disagrees with its weights is found from the headers: nothing is allocated
  // (before: 916 MB of resident memory for a model whose config said hidden_size 4096).
  const std::string model = EditableModel("wide");
  PatchConfig(model, R"({"hidden_size": 1000000, "head_dim": null})");
  WriteFileText(Path("in.jsonl"), "{\"prompt_ids\": [1, 5], \"response_ids\": [6]}\n");
  const WorkerRun run = RunWorker("logprobs --device cpu --model " + model + " --input " + Path("in.jsonl") +
                                  " --output " + Path("out.jsonl"));
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("DATA_LOSS: " + model + "/model.safetensors: tensor '")) << run.output;
  EXPECT_THAT(run.output, HasSubstr("but the config needs [")) << run.output;
}

TEST_F(ModelCommandsTest, AModelPathOrConfigMistakeSaysWhatIsWrong) {
  const std::string in = Path("in.jsonl");
  WriteFileText(in, "{\"prompt_ids\": [1, 5], \"response_ids\": [6]}\n");
  const std::string files = " --input " + in + " --output " + Path("out.jsonl");
  // A file as --model said "<file>/checksums.sha256 exists but cannot be read".
  const WorkerRun file = RunWorker("logprobs --device cpu --model " + in + files);
  EXPECT_EQ(file.rc, 1) << file.output;
  EXPECT_THAT(file.output, HasSubstr(in + " is not a directory"));
  // A truncated config.json said "config.json is not a JSON object".
  const std::string truncated = EditableModel("truncated");
  const std::string config = ReadFileText(truncated + "/config.json");
  WriteFileText(truncated + "/config.json", config.substr(0, config.find("\"hidden_size\"")));
  const WorkerRun cut = RunWorker("logprobs --device cpu --model " + truncated + files);
  EXPECT_EQ(cut.rc, 1) << cut.output;
  EXPECT_THAT(cut.output, HasSubstr(truncated + "/config.json: invalid JSON at line "));
  EXPECT_THAT(cut.output, HasSubstr("unexpected end of input"));
  // An eos_token_id past the vocabulary used to load.
  const std::string eos = EditableModel("eos");
  PatchConfig(eos, R"({"eos_token_id": 5000})");
  const WorkerRun past = RunWorker("logprobs --device cpu --model " + eos + files);
  EXPECT_EQ(past.rc, 1) << past.output;
  EXPECT_THAT(past.output, HasSubstr(eos + "/config.json: eos_token_id 5000 is outside the vocabulary [0, "));
  // init-model checks the same, and says where ids the user did not give come from.
  const WorkerRun tiny = RunWorker("init-model --out " + Path("tiny") + " --vocab-size 2 --layers 1 --hidden-size 32 "
                                   "--intermediate-size 64");
  EXPECT_EQ(tiny.rc, 1) << tiny.output;
  EXPECT_THAT(tiny.output, HasSubstr("eos_token_id 2 is outside the vocabulary [0, 2) of vocab_size (without "
                                     "--tokenizer-from the model gets bos_token_id 1 and eos_token_id 2)"));
  EXPECT_FALSE(Exists(Path("tiny")));
}

TEST_F(ModelCommandsTest, BadLinesAreErrorsNamingTheFileAndLine) {
  const std::string in = Path("in.jsonl"), out = Path("out.jsonl");
  // A per-line seed that is not an integer >= 0 used to be replaced by --seed + i without a word.
  for (const std::string seed : {"-4", "\"x\"", "1.5"}) {
    WriteFileText(in, "{\"prompt\": \"hi\", \"seed\": 3}\n{\"prompt\": \"hi\", \"seed\": " + seed + "}\n");
    const WorkerRun run = RunWorker("generate --device cpu --max-new-tokens 2 --model " + Model() + " --input " + in +
                              " --output " + out);
    EXPECT_EQ(run.rc, 1) << seed << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr(in + ":2: 'seed' must be an integer >= 0, got " + seed));
  }
  WriteFileText(in, "{\"prompt_ids\": []}\n");
  const WorkerRun empty_prompt = RunWorker("generate --device cpu --max-new-tokens 2 --model " + Model() + " --input " + in +
                                     " --output " + out);
  EXPECT_EQ(empty_prompt.rc, 1) << empty_prompt.output;
  EXPECT_THAT(empty_prompt.output, HasSubstr(in + ":1: empty prompt"));
  // An empty response used to be scored 0.
  WriteFileText(in, "{\"prompt_ids\": [1, 5], \"response_ids\": []}\n");
  const WorkerRun empty_response = RunWorker("logprobs --device cpu --model " + Model() + " --input " + in + " --output " + out);
  EXPECT_EQ(empty_response.rc, 1) << empty_response.output;
  EXPECT_THAT(empty_response.output, HasSubstr(in + ":1: empty response"));
  EXPECT_FALSE(Exists(out));
}

TEST_F(ModelCommandsTest, ABrokenTokenizerIsReportedNotTakenForNone) {
  // sft said "'prompt' is text but no tokenizer is available", logprobs "text input needs a
  // tokenizer": the load error was dropped.
  const std::string model = EditableModel("broken_tokenizer");
  WriteFileText(model + "/tokenizer.json", "{broken");
  const std::string data = Path("text.jsonl");
  WriteFileText(data, "{\"prompt\": \"hi\", \"response\": \"there\"}\n");
  const WorkerRun logprobs = RunWorker("logprobs --device cpu --model " + model + " --input " + data + " --output " +
                                 Path("out.jsonl"));
  EXPECT_EQ(logprobs.rc, 1) << logprobs.output;
  EXPECT_THAT(logprobs.output, HasSubstr(model + "/tokenizer.json: "));
  EXPECT_THAT(logprobs.output, Not(HasSubstr("needs a tokenizer")));
  const WorkerRun sft = RunWorker("sft --device cpu --steps 1 --model " + model + " --data " + data + " --out " + Path("sft"));
  EXPECT_EQ(sft.rc, 1) << sft.output;
  EXPECT_THAT(sft.output, HasSubstr(model + "/tokenizer.json: "));
  EXPECT_THAT(sft.output, Not(HasSubstr("no tokenizer is available")));
}

}  // namespace
}  // namespace srlm
