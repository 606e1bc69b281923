// Tests of opening a run (coordinator/run_coordinator_open.cc, run_coordinator_restore.cc): a new
// run and the refusals that keep one from starting on wrong data or over another run's files, the
// run directory's lock, resuming the stored state, and a stored configuration compared with, or
// replaced by (--force-config), the one given.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator_test_util.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

// A coordinator that cannot read data.ift or data.eval does not open the run: not a new one (and
// stores nothing), nor a stored one with a PROMPTS phase current or ahead whose file went missing
// (one without is ARunWithNoPromptsPhaseLeftOpensWithoutItsDataFiles). The error names the file and
// the line.
TEST_F(CoordinatorServiceTest, UnreadableIftOrEvalPromptsRefuseToOpenTheRun) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  std::filesystem::create_directories(run_dir_);
  const std::string ift = run_dir_ + "/ift.jsonl", eval = run_dir_ + "/eval.jsonl";

  config.data.ift = run_dir_ + "/missing.jsonl";
  absl::Status missing = OpenStatus(config);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("data.ift: cannot open " + run_dir_ + "/missing.jsonl"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n{\"prompt\": 5}\n");
  config.data.ift = ift;
  absl::Status not_string = OpenStatus(config);
  EXPECT_EQ(not_string.code(), absl::StatusCode::kInvalidArgument) << not_string;
  EXPECT_THAT(std::string(not_string.message()), ::testing::HasSubstr("data.ift: " + ift + ":2: no string 'prompt'"));

  WriteTextFile(ift, "\n\n");  // no prompts: no few-shot examples, no pool
  absl::Status no_prompts = OpenStatus(config);
  EXPECT_EQ(no_prompts.code(), absl::StatusCode::kInvalidArgument) << no_prompts;
  EXPECT_THAT(std::string(no_prompts.message()), ::testing::HasSubstr("data.ift: " + ift + " holds no prompts"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n{\"prompt\": \" \", \"response\": \"x\"}\n");
  absl::Status blank = OpenStatus(config);  // the worker refuses a blank IFT prompt too
  EXPECT_EQ(blank.code(), absl::StatusCode::kInvalidArgument) << blank;
  EXPECT_THAT(std::string(blank.message()), ::testing::HasSubstr("data.ift: " + ift + ":2: 'prompt' is"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n");
  WriteTextFile(eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n\n{\"answer\": \"5\"}\n");
  config.data.eval = eval;
  absl::Status no_prompt = OpenStatus(config);
  EXPECT_EQ(no_prompt.code(), absl::StatusCode::kInvalidArgument) << no_prompt;
  EXPECT_THAT(std::string(no_prompt.message()), ::testing::HasSubstr("data.eval: " + eval + ":3: no string 'prompt'"));

  WriteTextFile(eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\nWhat is 3 + 3\n");
  absl::Status not_json = OpenStatus(config);
  EXPECT_EQ(not_json.code(), absl::StatusCode::kInvalidArgument) << not_json;
  EXPECT_THAT(std::string(not_json.message()), ::testing::HasSubstr("data.eval: " + eval + ":2: not a JSON object"));

  // None of the refused opens stored a run: another configuration opens without --force-config.
  RunConfig other = config;
  other.data.eval.clear();
  other.run.iterations = 3;
  ASSERT_TRUE(OpenStatus(other).ok());
  // A stored run (in PROMPTS) whose data.ift went missing is refused at the next start, naming the file.
  std::filesystem::remove(ift);
  absl::Status gone = OpenStatus(std::nullopt);
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound) << gone;
  EXPECT_THAT(std::string(gone.message()), ::testing::HasSubstr("data.ift: cannot open " + ift));
}

// What the workers read at registration or SFT is checked when a configuration is accepted, so a
// mistake fails the start and stores nothing (its correction needs no --force-config): the judge
// template, SFT's data while SFT is to come, and the score pattern against data.eft's judgements.
TEST_F(CoordinatorServiceTest, TheWorkersInputsAreCheckedBeforeAConfigurationIsStored) {
  RunConfig config = DiscardRun();
  std::filesystem::create_directories(run_dir_);
  const std::string ift = run_dir_ + "/ift.jsonl", eft = run_dir_ + "/eft.jsonl", judge = run_dir_ + "/judge.txt";
  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n{\"prompt\": \"Name a colour\"}\n");
  WriteTextFile(eft, "{\"prompt\": \"Judge: 1 + 1 = 2\", \"response\": \"Correct.\\nScore: 5\"}\n");
  config.data.ift = ift;
  auto refused = [&](const RunConfig& c, const std::string& expected) {
    absl::Status status = OpenStatus(c);
    EXPECT_FALSE(status.ok()) << expected;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(expected));
  };
  refused(config, "data.ift: " + ift + ":2: no string 'response'");  // SFT trains on it
  RunConfig no_sft = config;
  no_sft.run.sft = false;  // few-shot prompts need no responses
  ASSERT_TRUE(OpenStatus(no_sft).ok());
  DiscardRun();
  std::filesystem::create_directories(run_dir_);
  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n");
  WriteTextFile(eft, "{\"prompt\": \"Judge: 1 + 1 = 2\", \"response\": \"Correct.\\nScore: 5\"}\n");
  config.data.eft = run_dir_ + "/no-eft.jsonl";
  refused(config, "data.eft: cannot open " + run_dir_ + "/no-eft.jsonl");
  config.data.eft = eft;
  config.judge.score_pattern = "Grade=([0-9]+)";
  refused(config, "judge.score_pattern 'Grade=([0-9]+)' reads no score in [0, 5] from any of the 1 judgements");
  config.judge.score_pattern = RunConfig().judge.score_pattern;
  config.judge.max_score = 4;  // "Score: 5" is out of range
  refused(config, "reads no score in [0, 4]");
  config.judge.max_score = 5;
  config.judge.template_file = judge;
  refused(config, "judge.template_file: judge template file not readable: " + judge);
  WriteTextFile(judge, "Rate this: {prompt}\n");
  refused(config, "judge.template_file: " + judge + ": ");
  WriteTextFile(judge, "Rate {response} to {prompt}. End with Score: <points>\n");
  // None of the refusals stored a run: the corrected configuration opens without --force-config.
  Start(config);
  EXPECT_EQ(client_->GetStatus()->model_dir(), "/models/m0");
  // A forced configuration is checked the same way, and refused, keeps the stored one.
  Stop();
  RunConfig bad_template = config;
  bad_template.judge.template_file = run_dir_ + "/gone.txt";
  EXPECT_FALSE(OpenStatus(bad_template, /*force=*/true).ok());
  ASSERT_TRUE(OpenStatus(config).ok());
}

// Until a model is committed, a forced configuration's model.path replaces the start model (a path
// that did not load kept the run loading it for ever); after, the run goes on from its last model.
TEST_F(CoordinatorServiceTest, AForcedModelPathReplacesTheStartModelUntilAModelIsCommitted) {
  RunConfig config = DiscardRun();
  Start(config);
  EXPECT_EQ(client_->GetStatus()->model_dir(), "/models/m0");
  Stop();
  config.model.path = "/models/fixed";
  Start(config, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->model_dir(), "/models/fixed");
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  const std::string committed = client_->GetStatus()->model_dir();
  EXPECT_NE(committed, "/models/fixed");
  Stop();
  config.model.path = "/models/other";
  Start(config, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->model_dir(), committed);
}

// An iteration with pairs keeps the chat template and the length limit its reference
// log-probabilities were computed with; in PROMPTS (no pairs yet) they may change.
TEST_F(CoordinatorServiceTest, AForcedConfigKeepsTheTemplateAndLimitOfTheIterationsPairs) {
  RunConfig config = DiscardRun();
  Start(config);
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  Stop();
  RunConfig chatml = config;
  chatml.model.chat_template = "chatml";
  Start(chatml, /*force=*/true);  // PROMPTS: allowed
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  Stop();
  RunConfig plain = chatml;
  plain.model.chat_template = "plain";
  absl::Status refused = OpenStatus(plain, /*force=*/true);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("iteration 1 is in PHASE_GENERATE: its pairs' reference log-probabilities were "
                                   "computed with model.chat_template 'chatml'"));
  RunConfig shorter = chatml;
  shorter.model.max_seq_len = 64;
  EXPECT_EQ(OpenStatus(shorter, /*force=*/true).code(), absl::StatusCode::kFailedPrecondition);
  RunConfig more_iterations = chatml;  // other keys still change
  more_iterations.run.iterations = 3;
  EXPECT_TRUE(OpenStatus(more_iterations, /*force=*/true).ok());
}

// The seen prompts are needed only while a PROMPTS phase is current or ahead (run not DONE, and in
// SFT or PROMPTS or below run.iterations): a run whose data.ift and data.eval moved away is refused
// in GENERATE of iteration 1 of 2, but opens in GENERATE of its last iteration and when DONE (a
// warning), where it answers status and exports its pairs (srlmctl export-pairs goes through it).
// A DONE run given more iterations (--force-config) has PROMPTS ahead again and is refused, keeping
// its stored configuration.
TEST_F(CoordinatorServiceTest, ARunWithNoPromptsPhaseLeftOpensWithoutItsDataFiles) {
  RunConfig config = DiscardRun();
  config.run.iterations = 2;
  const std::string data_dir = run_dir_ + "-data";
  std::filesystem::create_directories(data_dir);
  config.data.ift = data_dir + "/ift.jsonl";
  config.data.eval = data_dir + "/eval.jsonl";
  const std::string ift_text = "{\"prompt\": \"Describe how rainbows form in the sky\", \"response\": \"Light.\"}\n";
  const std::string eval_text = "{\"prompt\": \"What is the capital city of France?\", \"answer\": \"Paris\"}\n";
  WriteTextFile(config.data.ift, ift_text);
  WriteTextFile(config.data.eval, eval_text);
  Start(config);
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  auto move_data_away = [&] {
    std::filesystem::remove(config.data.ift);
    std::filesystem::remove(config.data.eval);
  };
  // Iteration 1 of 2: PROMPTS of iteration 2 is ahead.
  Stop();
  move_data_away();
  absl::Status ahead = OpenStatus(std::nullopt);
  EXPECT_EQ(ahead.code(), absl::StatusCode::kNotFound) << ahead;
  EXPECT_THAT(std::string(ahead.message()), ::testing::HasSubstr("data.ift: cannot open " + config.data.ift));
  WriteTextFile(config.data.ift, ift_text);
  WriteTextFile(config.data.eval, eval_text);
  Start(std::nullopt);
  for (int shard = 0; shard < 3; ++shard) LeaseAndSubmitGenerate(shard % 2 ? w1 : w0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 1, "/ckpt/m2").ok());
  ASSERT_TRUE(Checkpoint(w1, 1, 2, 1, "/ckpt/m2")->committed());
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->iteration(), 2);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);

  // GENERATE of the last iteration: nothing ahead but TRAIN, COMMIT and DONE. A warning names the error.
  Stop();
  move_data_away();
  ::testing::internal::CaptureStderr();
  Start(std::nullopt);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, ::testing::HasSubstr("cannot read the prompts kept out of the prompt pool (data.ift, data.eval): "
                                        "NOT_FOUND: data.ift: cannot open " + config.data.ift));
  EXPECT_THAT(log, ::testing::HasSubstr("going on without them"));
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  for (int shard = 0; shard < 3; ++shard) LeaseAndSubmitGenerate(shard % 2 ? w1 : w0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 2, "/ckpt/m3").ok());
  ASSERT_TRUE(Checkpoint(w1, 1, 2, 2, "/ckpt/m3")->committed());
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_DONE);

  // DONE: status and both iterations' pairs, as srlmctl reads them.
  Stop();
  Start(std::nullopt);
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->phase(), v1::PHASE_DONE);
  EXPECT_EQ(status->model_dir(), "/ckpt/m3");
  EXPECT_EQ(status->committed_iterations_size(), 3);  // SFT and iterations 1, 2
  for (int64_t iteration : {1, 2}) {
    int64_t exported = 0;
    ASSERT_TRUE(client_->ExportPairs(iteration, [&](const v1::ExportedPair&) { return ++exported, true; }).ok());
    EXPECT_EQ(exported, 4) << "iteration " << iteration;  // prompts 0 and 5 are ties
  }

  // More iterations for the finished run: PROMPTS of iteration 3 is current, so it needs them.
  Stop();
  RunConfig more = config;
  more.run.iterations = 3;
  absl::Status reopened = OpenStatus(more, /*force=*/true);
  EXPECT_EQ(reopened.code(), absl::StatusCode::kNotFound) << reopened;
  EXPECT_THAT(std::string(reopened.message()), ::testing::HasSubstr("data.ift: cannot open " + config.data.ift));
  Start(std::nullopt);  // the refused --force-config stored nothing
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_DONE);
  EXPECT_EQ(client_->GetStatus()->total_iterations(), 2);
  std::filesystem::remove_all(data_dir);
}

// data.eval is read with the workers' rules (common/run_data.h): a line without a string `answer`, or
// with a blank one, which every worker would refuse at registration, refuses the run here, naming
// the file and the line, before anything is stored.
TEST_F(CoordinatorServiceTest, AnEvalLineWithoutAnAnswerRefusesTheRunBeforeItIsStored) {
  RunConfig config = DiscardRun();
  std::filesystem::create_directories(run_dir_);
  config.data.ift = run_dir_ + "/ift.jsonl";
  config.data.eval = run_dir_ + "/eval.jsonl";
  WriteTextFile(config.data.ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n");

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n\n"
                                  "{\"prompt\": \"Name the largest planet\"}\n");
  absl::Status no_answer = OpenStatus(config);
  EXPECT_EQ(no_answer.code(), absl::StatusCode::kInvalidArgument) << no_answer;
  EXPECT_THAT(std::string(no_answer.message()),
              ::testing::HasSubstr("data.eval: " + config.data.eval + ":3: no string 'answer'"));

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \" \\t\"}\n");
  absl::Status blank = OpenStatus(config);
  EXPECT_EQ(blank.code(), absl::StatusCode::kInvalidArgument) << blank;
  EXPECT_THAT(std::string(blank.message()), ::testing::HasSubstr("data.eval: " + config.data.eval + ":1: 'answer' is empty"));

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": 4}\n");
  absl::Status not_string = OpenStatus(config);
  EXPECT_EQ(not_string.code(), absl::StatusCode::kInvalidArgument) << not_string;
  EXPECT_THAT(std::string(not_string.message()),
              ::testing::HasSubstr("data.eval: " + config.data.eval + ":1: no string 'answer'"));

  // Nothing was stored: once corrected, another configuration opens without --force-config.
  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n");
  RunConfig other = config;
  other.run.iterations = 3;
  EXPECT_TRUE(OpenStatus(other).ok());
}

// run.sft false starts at iteration 1: with run.iterations 0 too the run has nothing to do, and it
// used to run iteration 1 anyway ("iteration 1 of 0").
TEST_F(CoordinatorServiceTest, ARunWithNeitherSftNorAnIterationIsRefused) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.run.iterations = 0;
  const absl::Status refused = OpenStatus(config);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("key 'run.iterations': expected an integer >= 1 when run.sft is false"));
  config.run.sft = true;  // SFT alone is a run
  EXPECT_TRUE(OpenStatus(config).ok());
}

// A run directory whose state.db was deleted or emptied but which holds a run's files is not taken
// for a new run (which would overwrite its checkpoints and pairs).
TEST_F(CoordinatorServiceTest, FilesOfARunWithoutItsStateAreNotOverwrittenByANewRun) {
  Stop();
  std::filesystem::create_directories(run_dir_ + "/checkpoints/iter-1");
  for (const char* file : {"state.db", "state.db-wal", "state.db-shm"}) std::filesystem::remove(run_dir_ + "/" + file);
  const absl::Status refused = OpenStatus(SmallConfig());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("holds files of an earlier run (checkpoints/iter-1) but " + run_dir_ +
                                   "/state.db holds no run"));
  {  // the refusal left no tables in the new state.db (it created them inside the transaction)
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadOnly);
    ASSERT_TRUE(db.ok()) << db.status();
    auto tables = (*db)->QueryInt("SELECT count(*) FROM sqlite_master", -1);
    ASSERT_TRUE(tables.ok()) << tables.status();
    EXPECT_EQ(*tables, 0);
  }
  std::filesystem::remove_all(run_dir_ + "/checkpoints");
  Start(SmallConfig());  // an empty directory starts a new run
}

// A run directory whose path is not UTF-8 is refused before anything is created: the checkpoint
// folders under it could not travel in the RPCs' strings.
TEST_F(CoordinatorServiceTest, ARunDirectoryThatIsNotUtf8IsRefused) {
  Stop();
  RunCoordinatorOptions options;
  options.run_dir = run_dir_ + "/r\xe9";
  options.config = SmallConfig();
  const absl::Status refused = RunCoordinator::Open(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("is not a UTF-8 path"));
  EXPECT_FALSE(std::filesystem::exists(options.run_dir));
}

// One coordinator per run directory: a second Open while the first is alive is refused; once the
// first is gone the directory opens again.
TEST_F(CoordinatorServiceTest, SecondCoordinatorOnTheSameRunDirectoryIsRefused) {
  RunCoordinatorOptions options;
  options.run_dir = run_dir_;
  auto second = RunCoordinator::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr(absl::StrCat("is in use by another srlm-coordinator (pid ", getpid(), " on ")));
  Stop();
  auto after = RunCoordinator::Open(options);
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST_F(CoordinatorServiceTest, DatabaseUsesWalAndFullSync) {
  auto db = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadOnly);
  ASSERT_TRUE(db.ok());
  auto stmt = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(stmt.ok());
  ASSERT_TRUE(*(*stmt)->Step());
  EXPECT_EQ((*stmt)->ColumnText(0), "wal");
  (*stmt)->Reset();
  auto synchronous = (*db)->QueryInt("PRAGMA synchronous", -1);
  ASSERT_TRUE(synchronous.ok()) << synchronous.status();
  EXPECT_EQ(*synchronous, 2);  // FULL
}

TEST_F(CoordinatorServiceTest, RestartResumesStateAndRefusesADifferentConfig) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  const v1::LeaseShardResponse lease = LeaseAndSubmitGenerate(w1);
  v1::LeaseShardResponse open_lease = Lease(w0);
  ASSERT_TRUE(open_lease.has_generate());
  v1::GetStatusResponse before = *client_->GetStatus();
  Stop();

  RunConfig different = SmallConfig();
  different.prompts.per_iteration = 99;
  const absl::Status refused = OpenStatus(different);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--force-config"));

  Start(std::nullopt);  // the stored config
  v1::GetStatusResponse after = *client_->GetStatus();
  EXPECT_EQ(after.run_id(), before.run_id());
  EXPECT_EQ(after.iteration(), 1);
  EXPECT_EQ(after.phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(after.model_dir(), "/ckpt/m1");
  EXPECT_EQ(after.results_accepted(), 2);
  EXPECT_EQ(after.pairs(), before.pairs());
  EXPECT_EQ(after.prompts_accepted(), 6);
  EXPECT_EQ(after.shards().done(), 1);
  EXPECT_EQ(after.shards().leased(), 1);
  EXPECT_EQ(after.workers_size(), 2);
  EXPECT_THAT(after.score_histogram(), ::testing::ElementsAreArray(before.score_histogram()));
  // Workers keep their ids; the open lease is still theirs and is accepted; the duplicate too.
  auto resumed = client_->SubmitShard(GenerateRequest(w0, open_lease));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  auto duplicate = client_->SubmitShard(GenerateRequest(w1, lease));
  ASSERT_TRUE(duplicate.ok());
  EXPECT_TRUE(duplicate->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 4);
  Stop();

  Start(different, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->prompts_wanted(), 99);
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 4);
}

// A run whose stored configuration an older build wrote (doubles with six digits: 0.0003 where this
// build writes 3e-04) resumes with the same --config: configurations are compared by their values.
TEST_F(CoordinatorServiceTest, AConfigStoredInAnOlderSpellingStillMatchesTheSameFile) {
  RunConfig config = DiscardRun();
  config.sft.lr = 3e-4;
  Start(config);
  Stop();
  {
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("UPDATE run SET value = replace(value, 'lr: 3e-04', 'lr: 0.0003') WHERE key = 'config_yaml'").ok());
    auto stored = (*db)->Prepare("SELECT value FROM run WHERE key = 'config_yaml'");
    ASSERT_TRUE(stored.ok() && *(*stored)->Step());
    ASSERT_NE((*stored)->ColumnText(0).find("lr: 0.0003"), std::string::npos);
  }
  Start(config);  // the same file: accepted, and the stored text is rewritten in this build's spelling
  EXPECT_EQ(run_->config().sft.lr, 3e-4);
  Stop();
  RunConfig other = config;
  other.sft.lr = 4e-4;
  const absl::Status refused = OpenStatus(other);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("stored '  lr: 3e-04"));
  Start(std::nullopt);
}

// A stored configuration that this build refuses (here a message limit above today's cap, which an
// older build accepted) stops a plain restart with a message naming the way out, and --force-config
// with a corrected file starts the run again (it used to be refused before --force-config was read).
TEST_F(CoordinatorServiceTest, AStoredConfigThisBuildRefusesCanBeReplacedWithForceConfig) {
  Stop();
  {
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("UPDATE run SET value = replace(value, 'max_message_bytes: 67108864', "
                            "'max_message_bytes: 536870912') WHERE key = 'config_yaml'").ok());
  }
  const absl::Status refused = OpenStatus(std::nullopt);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("coordinator.max_message_bytes"));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--config FILE --force-config"));
  EXPECT_FALSE(OpenStatus(SmallConfig()).ok());  // without --force-config, a file does not replace it
  Start(SmallConfig(), /*force=*/true);
  EXPECT_EQ(run_->config().coordinator.max_message_bytes, SmallConfig().coordinator.max_message_bytes);
  Stop();
  Start(std::nullopt);  // the replacement was stored
}

// --force-config may raise run.iterations or keep it, not lower it past what the run has reached.
TEST_F(CoordinatorServiceTest, ForcedConfigCannotEndTheRunBeforeIterationsItReached) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);  // iteration 1 in progress
  Stop();
  RunConfig fewer = SmallConfig();
  fewer.run.iterations = 0;
  const absl::Status refused = OpenStatus(fewer, /*force=*/true);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("run.iterations 0 is below the 1 iteration(s) this run has committed or started"));
  RunConfig same_end = SmallConfig();
  same_end.run.iterations = 1;
  same_end.prompts.per_iteration = 7;  // another change, so the config differs
  Start(same_end, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->iteration(), 1);
}

// --force-config with a smaller prompts.per_iteration can find the pool complete already. Only a
// submission checked that, and none would come: every LeaseShard answered wait for ever.
TEST_F(CoordinatorServiceTest, AForcedConfigUnderWhichThePoolIsCompleteGoesOnToGenerate) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.prompts.per_iteration = 4;
  config.prompts.shard_size = 2;
  Start(config);
  const std::string w0 = Register(0, 1);
  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
  ASSERT_TRUE(SubmitPrompts(w0, lease.lease().lease_id(),
                            {"Describe how rainbows form in the sky", "List three uses of copper wire"})
                  .ok());
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  Stop();
  RunConfig smaller = config;
  smaller.prompts.per_iteration = 2;
  Start(smaller, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  v1::LeaseShardResponse generate = Lease(w0);
  ASSERT_TRUE(generate.has_generate()) << generate.DebugString();
  EXPECT_EQ(generate.generate().prompts_size(), 2);
  Stop();
  Start(std::nullopt);  // the phase change was stored
  auto status = client_->GetStatus();
  EXPECT_EQ(status->phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(status->shards().leased(), 1);
}

// A rank's latest registration is its current one after a restart too, also when the clock stepped
// back between two registrations (they were read back in order of registration time, so the older
// process became current again and the live one's checkpoint reports were refused).
TEST_F(CoordinatorServiceTest, TheLatestRegistrationOfARankWinsAfterARestartWhateverTheClock) {
  const std::string old0 = Register(0, 1);
  now_ms_ -= 3'600'000;  // the clock steps back an hour
  const std::string new0 = Register(0, 1);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(Checkpoint(old0, 0, 1, 0, "/ckpt/m1").status().code(), absl::StatusCode::kFailedPrecondition);
  auto reported = Checkpoint(new0, 0, 1, 0, "/ckpt/m1");
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_TRUE(reported->committed());
}

// Per-worker shards_submitted is rebuilt from the completed leases at a restart (it was 0).
TEST_F(CoordinatorServiceTest, SubmittedShardCountsSurviveARestart) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);  // two PROMPTS shards
  LeaseAndSubmitGenerate(w1);
  auto counts = [&] {
    std::map<std::string, int64_t> submitted;
    const absl::StatusOr<v1::GetStatusResponse> status = client_->GetStatus();
    EXPECT_TRUE(status.ok()) << status.status();
    for (const v1::WorkerStatus& worker : status->workers()) {
      submitted[worker.worker_id()] = worker.shards_submitted();
    }
    return submitted;
  };
  const std::map<std::string, int64_t> expected = {{w0, 2}, {w1, 1}};
  EXPECT_EQ(counts(), expected);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(counts(), expected);
}

}  // namespace
}  // namespace srlm::coordinator
