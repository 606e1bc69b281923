// The model commands (init-model, generate, logprobs) on bad input, and the training commands' (sft,
// dpo) flags and inputs. Flag checks: a value outside the accepted set is refused while the command
// line is parsed, with an error that names the flag and says what is accepted, before any file is
// read or written (in process). Files: the real srlm-worker binary on a tiny model, each bad input
// giving a clear error (file, line, key) with nothing lost or half-written.
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
void RegisterSftCommand(CLI::App& app);        // worker/train/train_command.cc
void RegisterDpoCommand(CLI::App& app);        // worker/train/train_command.cc

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

// ParseError for arguments given one by one, as a shell passes them: an empty one ("") stays.
std::string ParseArgsError(void (*register_command)(CLI::App&), std::vector<std::string> args) {
  CLI::App app;
  register_command(app);
  std::vector<std::function<void()>> callbacks;
  for (CLI::App* command : app.get_subcommands({})) callbacks.push_back(CallbackTaker::Take(*command));
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
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
  // every time, --top-p 5 and --top-k -3 were taken as they came. --seed 010 passed the check as 10
  // and CLI11 then stored 8 (octal).
  const std::string files = "generate --model /nonexistent/m --input /nonexistent/p.jsonl --output /nonexistent/o.jsonl ";
  for (const std::string bad : {"--temperature nan", "--temperature -1", "--temperature inf", "--top-p 5", "--top-p 0",
                                "--top-p nan", "--top-k -3", "--max-new-tokens 0", "--max-new-tokens 1.5",
                                "--seed -1", "--batch-size 0", "--seed 010", "--max-new-tokens 0x10",
                                "--top-k 99999999999999999999"}) {
    const std::string flag = bad.substr(0, bad.find(' '));
    EXPECT_THAT(ParseError(RegisterGenerateCommand, files + bad), HasSubstr(flag + ": expected ")) << bad;
  }
  EXPECT_EQ(ParseError(RegisterGenerateCommand, files + "--temperature 0 --top-p 1 --top-k 0 --max-new-tokens 1"), "");
  EXPECT_EQ(ParseError(RegisterGenerateCommand, files + "--temperature 1.5 --top-p 0.01 --top-k 40 --seed 7"), "");
}

// Every numeric flag of sft and dpo is a number of its type, or the command line is refused. CLI11
// alone read "" as 0 (--lr "" trained at lr 0, --steps "" derived the steps from epochs), clamped
// --steps 99999999999999999999 to INT64_MAX, and read --steps 010 as 8 and 0x10 as 16;
// --save-every -1 and --stop-after -1 were taken. (A key's range is checked with the run
// configuration, naming the key: TrainCommandsRefuseKeysOutOfRange.)
TEST(TrainFlags, EveryNumericFlagIsANumberOfItsType) {
  const std::vector<std::string> integers = {"--steps",        "--epochs",     "--batch-size", "--micro-batch-size",
                                             "--warmup-steps", "--seed",       "--max-seq-len", "--save-every",
                                             "--stop-after"};
  const std::vector<std::string> numbers = {"--lr", "--min-lr", "--weight-decay", "--max-grad-norm", "--dropout",
                                            "--stall-seconds"};
  const std::vector<std::string> files = {"--model", "/nonexistent/m", "--data", "/nonexistent/d.jsonl", "--out",
                                          "/nonexistent/o"};
  for (auto command : {RegisterSftCommand, RegisterDpoCommand}) {
    const std::string name = command == RegisterSftCommand ? "sft" : "dpo";
    std::vector<std::string> dpo_numbers = numbers;
    if (name == "dpo") dpo_numbers.insert(dpo_numbers.end(), {"--beta", "--label-smoothing"});
    auto error = [&](const std::string& flag, const std::string& value) {
      std::vector<std::string> args = {name};
      args.insert(args.end(), files.begin(), files.end());
      args.insert(args.end(), {flag, value});
      return ParseArgsError(command, args);
    };
    for (const std::string& flag : integers) {
      for (const std::string bad : {"", "99999999999999999999", "-99999999999999999999", "010", "0x10", "2.5", "1e3",
                                    "x"}) {
        const std::string e = error(flag, bad);
        EXPECT_THAT(e, HasSubstr(flag + ": expected an integer")) << name << " " << flag << " '" << bad << "'";
        EXPECT_THAT(e, HasSubstr("got '" + bad + "'")) << name << " " << flag;
      }
      EXPECT_EQ(error(flag, "7"), "") << name << " " << flag;
      EXPECT_EQ(error(flag, "0"), "") << name << " " << flag;
    }
    for (const std::string flag : {"--save-every", "--stop-after"}) {
      EXPECT_THAT(error(flag, "-1"), HasSubstr(flag + ": expected an integer >= 0, got '-1'")) << name;
    }
    for (const std::string& flag : dpo_numbers) {
      for (const std::string bad : {"", "x", "nan", "inf", "1e400"}) {
        EXPECT_THAT(error(flag, bad), HasSubstr(flag + ": expected a finite number"))
            << name << " " << flag << " '" << bad << "'";
      }
      EXPECT_EQ(error(flag, "0.25"), "") << name << " " << flag;
    }
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

// `run` refuses these with the other flags, before any call: a bad --communicator was found only
// after registering with the coordinator, and an empty --token-file (which the coordinator refuses
// for itself) at the first call, as UNAUTHENTICATED. Here no coordinator answers at all: without
// the checks the worker retried it until the timeout stopped it.
TEST_F(ModelCommandsTest, RunRefusesABadCommunicatorAndAnEmptyTokenFileBeforeAnyCall) {
  const std::string empty = Path("token");
  WriteFileText(empty, " \n");
  for (const auto& [args, expected] : std::vector<std::pair<std::string, std::string>>{
           {"--communicator bogus", "--communicator: bogus not in {auto,single,mpi,nccl}"},
           {"--token-file " + empty, "token file " + empty + " is empty"}}) {
    const WorkerRun run = RunWorker("run --coordinator 127.0.0.1:1 " + args, "timeout 30 ");
    EXPECT_NE(run.rc, 0) << args << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(expected)) << args;
  }
  for (const char* command : {"sft", "dpo"}) {  // the offline trainers' flag takes the same names
    const WorkerRun run = RunWorker(std::string(command) + " --model " + Path("none") + " --data " + Path("none") +
                                    " --out " + Path("out") + " --communicator bogus");
    EXPECT_NE(run.rc, 0) << command;
    EXPECT_THAT(run.output, HasSubstr("--communicator: bogus not in {auto,single,mpi,nccl}")) << command;
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

// ---- sft and dpo through the real binary ----

// Four SFT lines and two pairs in token ids of the tiny model.
void WriteTrainData(const std::string& sft, const std::string& dpo) {
  WriteFileText(sft, "{\"prompt_ids\": [1, 5], \"response_ids\": [6, 2]}\n{\"prompt_ids\": [1, 7], \"response_ids\": [8, 2]}\n"
                     "{\"prompt_ids\": [1, 9], \"response_ids\": [10, 2]}\n{\"prompt_ids\": [1, 11], \"response_ids\": [12, 2]}\n");
  WriteFileText(dpo, "{\"prompt_ids\": [1, 5], \"chosen_ids\": [6, 2], \"rejected_ids\": [7, 2]}\n"
                     "{\"prompt_ids\": [1, 8], \"chosen_ids\": [9, 2], \"rejected_ids\": [10, 2]}\n");
}

// A key out of its range is refused before anything is loaded or made, naming the key, from the
// flags and from the YAML alike (they share the keys): a batch size of INT64_MAX died of SIGFPE
// (exit 136), and in the loop trained 0 steps and committed the untrained model; epochs of INT64_MAX
// logged "-10 steps" and exited 0 with an empty --out; --seed -3 was taken.
TEST_F(ModelCommandsTest, TrainCommandsRefuseKeysOutOfRange) {
  const std::string sft_data = Path("sft.jsonl"), dpo_data = Path("dpo.jsonl"), out = Path("out");
  WriteTrainData(sft_data, dpo_data);
  for (const std::string command : {"sft", "dpo"}) {
    const std::string base = command + " --device cpu --model " + Model() + " --data " +
                             (command == "sft" ? sft_data : dpo_data) + " --out " + out + " ";
    for (const auto& [flags, expected] : std::vector<std::pair<std::string, std::string>>{
             {"--steps 1 --batch-size 9223372036854775807", ".batch_size': expected an integer in [1, 2147483647]"},
             {"--steps 1 --micro-batch-size 2147483648", ".micro_batch_size': expected an integer in [1, 2147483647]"},
             {"--epochs 9223372036854775807 --batch-size 2", ".epochs': expected an integer in [1, 2147483647]"},
             {"--epochs 1844674407370955162 --batch-size 2", ".epochs': expected an integer in [1, 2147483647]"},
             {"--steps 2147483648", ".steps': expected an integer in [0, 2147483647]"},
             {"--steps 1 --seed -3", ".seed': expected an integer >= 0"}}) {
      const WorkerRun run = RunWorker(base + flags);
      EXPECT_EQ(run.rc, 1) << command << " " << flags << ": " << run.output;
      EXPECT_THAT(run.output, HasSubstr("flags: key '" + command + expected)) << command << " " << flags;
      EXPECT_FALSE(Exists(out)) << command << " " << flags;
    }
  }
  const std::string yaml = Path("bsmax.yaml");
  WriteFileText(yaml, "sft:\n  batch_size: 9223372036854775807\n");
  const WorkerRun from_yaml =
      RunWorker("sft --device cpu --config " + yaml + " --model " + Model() + " --data " + sft_data + " --out " + out);
  EXPECT_EQ(from_yaml.rc, 1) << from_yaml.output;
  EXPECT_THAT(from_yaml.output, HasSubstr(yaml + ": key 'sft.batch_size': expected an integer in [1, 2147483647]"));
  EXPECT_FALSE(Exists(out));
  // Epochs in range whose steps are not: refused, naming the key, once the data is counted.
  const WorkerRun derived = RunWorker("sft --device cpu --model " + Model() + " --data " + sft_data + " --out " + out +
                                      " --epochs 2147483647 --batch-size 1");
  EXPECT_EQ(derived.rc, 1) << derived.output;
  EXPECT_THAT(derived.output, HasSubstr("sft.epochs (2147483647) x 4 batches per epoch (4 examples in batches of 1) "
                                        "is over the limit of 2147483647 steps"));
  EXPECT_FALSE(Exists(out));
}

// A run that fails before its first checkpoint removes the folders of --out it made (mkdir -p)
// and left empty; a folder that was there before stays.
TEST_F(ModelCommandsTest, AFailedTrainingLeavesNoEmptyOutBehind) {
  const std::string bad = Path("bad.jsonl"), base = Path("made");
  WriteFileText(bad, "{\"prompt\": \"x\"}\n");
  for (const std::string command : {"sft", "dpo"}) {
    const WorkerRun run =
        RunWorker(command + " --device cpu --steps 1 --model " + Model() + " --data " + bad + " --out " + base + "/a/b");
    EXPECT_EQ(run.rc, 1) << command << ": " << run.output;
    EXPECT_THAT(run.output, HasSubstr(bad + ":1: ")) << command;
    EXPECT_FALSE(Exists(base)) << command << ": left " << base;
  }
  const std::string existing = Path("existing");
  ASSERT_EQ(::mkdir(existing.c_str(), 0755), 0);
  const WorkerRun run = RunWorker("sft --device cpu --steps 1 --model " + Model() + " --data " + bad + " --out " + existing);
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_TRUE(Exists(existing));
}

// A reference model of another vocabulary failed mid-step ("INTERNAL: training step 1: index out of
// range in self"); now it is refused where it is loaded, naming both models and their sizes.
TEST_F(ModelCommandsTest, DpoRefusesAReferenceModelOfAnotherVocabulary) {
  const std::string sft_data = Path("sft.jsonl"), dpo_data = Path("dpo.jsonl"), ref = Path("v100");
  WriteTrainData(sft_data, dpo_data);
  const WorkerRun init = RunWorker("init-model --out " + ref + " --vocab-size 100 --layers 1 --hidden-size 32 "
                                   "--intermediate-size 64 --heads 2 --kv-heads 2 --max-position-embeddings 64");
  ASSERT_EQ(init.rc, 0) << init.output;
  const std::string vocab = ReadFileText(Model() + "/config.json");
  const size_t at = vocab.find("\"vocab_size\":");
  ASSERT_NE(at, std::string::npos) << vocab;
  const std::string policy_vocab = std::to_string(std::stoll(vocab.substr(vocab.find_first_of("0123456789", at))));
  const WorkerRun run = RunWorker("dpo --device cpu --steps 1 --model " + Model() + " --ref-model " + ref + " --data " +
                                  dpo_data + " --out " + Path("out"));
  EXPECT_EQ(run.rc, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("the reference model " + ref + " (--ref-model) has vocab_size 100 but the policy " +
                                    Model() + " has " + policy_vocab));
  EXPECT_THAT(run.output, Not(HasSubstr("training step")));
}

// --resume checks the checkpoint's trainer_state.json: a step of -5 crashed (exit 139), one past
// --steps logged "done" and exited 0 without training.
TEST_F(ModelCommandsTest, ResumeRefusesABadOrForeignCheckpoint) {
  const std::string sft_data = Path("sft.jsonl"), dpo_data = Path("dpo.jsonl"), out = Path("out");
  WriteTrainData(sft_data, dpo_data);
  const std::string base = "sft --device cpu --model " + Model() + " --data " + sft_data + " --out " + out +
                           " --batch-size 2 ";
  const WorkerRun first = RunWorker(base + "--steps 2 --stop-after 1");
  ASSERT_EQ(first.rc, 0) << first.output;
  const std::string state_path = out + "/checkpoint-1/trainer_state.json";
  const std::string state = ReadFileText(state_path);
  const std::string step = "\"step\": 1";
  ASSERT_NE(state.find(step), std::string::npos) << state;
  std::string edited = state;
  edited.replace(edited.find(step), step.size(), "\"step\": -5");
  WriteFileText(state_path, edited);
  const WorkerRun negative = RunWorker(base + "--steps 2 --resume");
  EXPECT_EQ(negative.rc, 1) << negative.output;
  EXPECT_THAT(negative.output, HasSubstr(state_path + ": field 'step' is -5: expected an integer in [0, 2147483647]"));
  WriteFileText(state_path, state);
  // Resumed with fewer steps than the checkpoint has.
  const WorkerRun rest = RunWorker(base + "--steps 2 --resume");
  ASSERT_EQ(rest.rc, 0) << rest.output;
  EXPECT_THAT(rest.output, HasSubstr("done: step 2"));
  const WorkerRun past = RunWorker(base + "--steps 1 --resume");
  EXPECT_EQ(past.rc, 1) << past.output;
  EXPECT_THAT(past.output, HasSubstr(out + "/checkpoint-2 is at step 2, past this run's 1 steps"));
}

// --stall-seconds 1e10 overflowed the watchdog's int64 nanoseconds: it fired at once (exit 75).
TEST_F(ModelCommandsTest, AnEnormousStallLimitDoesNotFireAtOnce) {
  const std::string sft_data = Path("sft.jsonl"), dpo_data = Path("dpo.jsonl");
  WriteTrainData(sft_data, dpo_data);
  const WorkerRun run = RunWorker("sft --device cpu --steps 1 --stall-seconds 1e10 --model " + Model() + " --data " +
                                  sft_data + " --out " + Path("out"));
  EXPECT_EQ(run.rc, 0) << run.output;
  // The loop's worker shares the watchdog: it gets as far as the (absent) coordinator.
  const WorkerRun worker = RunWorker("run --coordinator 127.0.0.1:1 --retry-seconds 1 --stall-seconds 1e10");
  EXPECT_EQ(worker.rc, 1) << worker.output;
  EXPECT_THAT(worker.output, Not(HasSubstr("stalled")));
  // --max-generate-batch was clamped to INT64_MAX like the training flags.
  const WorkerRun clamped =
      RunWorker("run --coordinator 127.0.0.1:1 --retry-seconds 1 --max-generate-batch 99999999999999999999");
  EXPECT_NE(clamped.rc, 0) << clamped.output;
  EXPECT_THAT(clamped.output, HasSubstr("--max-generate-batch: expected an integer >= 1, got '99999999999999999999'"));
}

}  // namespace
}  // namespace srlm
