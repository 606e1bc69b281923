// srlmctl against the real srlm-coordinator on loopback: a one-worker run is driven to DONE
// through the client library, then `srlmctl status`, `status --json`, `watch` and `export-pairs`
// are run as processes and their output checked; a wrong token exits with UNAUTHENTICATED (3).
// Also the pure formatting helpers, and the coordinator binary's start-up refusals: a second
// coordinator on the same run directory or port, a new run without a usable config, a bad port.
// And how they stop: SIGHUP stops the coordinator gracefully; `srlmctl watch` fails when the
// coordinator stops before the run is done.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "coordinator/client/coordinator_client.h"
#include "common/testing/file_text.h"
#include "common/testing/temp_dir.h"
#include "coordinator/ctl/status_format.h"
#include "tests/coordinator_process.h"

namespace srlm {
namespace {

struct CommandResult {
  int exit_code;
  std::string output;
};

CommandResult RunCommand(const std::string& command) {
  CommandResult result{-1, ""};
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(StatusFormatTest, BarsAndDurations) {
  EXPECT_EQ(ctl::ProgressBar(0.5, 10), "[#####.....]  50.0%");
  EXPECT_EQ(ctl::ProgressBar(2.0, 4), "[####] 100.0%");
  EXPECT_EQ(ctl::FormatDuration(3723), "1h02m03s");
  EXPECT_EQ(ctl::FormatDuration(65), "1m05s");
  EXPECT_EQ(ctl::FormatDuration(-1), "?");
  v1::ExportedPair pair;
  pair.set_prompt("p");
  pair.set_chosen("c");
  pair.set_rejected("r");
  pair.set_lease_id("i1-G-s0-a2");
  nlohmann::json j = ctl::ExportedPairToJson(pair);
  EXPECT_EQ(j["prompt"], "p");
  EXPECT_EQ(j["chosen"], "c");
  EXPECT_EQ(j["rejected"], "r");
  EXPECT_EQ(j["provenance"]["lease_id"], "i1-G-s0-a2");
  // Bytes that are not UTF-8 are written as U+FFFD instead of throwing out of srlmctl.
  pair.set_chosen("a\xff");
  pair.set_model_dir("/runs/m\xe9");
  const std::string line = ctl::JsonText(ctl::ExportedPairToJson(pair));
  EXPECT_THAT(line, ::testing::HasSubstr("\"chosen\":\"a\xEF\xBF\xBD\""));
  EXPECT_THAT(line, ::testing::HasSubstr("\"model_dir\":\"/runs/m\xEF\xBF\xBD\""));
  EXPECT_EQ(line.find('\n'), std::string::npos);
  // A worker not heard from since the coordinator restarted (heartbeat time 0) says so.
  v1::GetStatusResponse status;
  v1::WorkerStatus* quiet = status.add_workers();
  quiet->set_worker_id("r1-w3");
  quiet->set_activity("iteration 1 GENERATE: sampling");
  const std::string text = ctl::FormatStatus(status, 1'700'000'000'000);
  EXPECT_THAT(text, ::testing::HasSubstr("r1-w3"));
  EXPECT_THAT(text, ::testing::HasSubstr("no heartbeat since the coordinator started"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("sampling")));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("SILENT")));
  quiet->set_silent(true);  // a rank that stopped heartbeating is flagged
  EXPECT_THAT(ctl::FormatStatus(status, 1'700'000'000'000),
              ::testing::HasSubstr("SILENT: no heartbeat for 3 periods; the rank may be dead"));
}

TEST(SrlmctlTest, StatusWatchAndExportAgainstARealCoordinator) {
  char pattern[] = "/tmp/srlm_ctl_test_XXXXXX";
  const std::string run_dir = mkdtemp(pattern);
  {
    std::ofstream config(run_dir + "/run.yaml");
    config << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n  iterations: 1\n"
              "prompts:\n  per_iteration: 5\n  shard_size: 5\n"
              "generate:\n  shard_size: 5\n";
  }
  // No token given: the coordinator generates <run-dir>/token, which srlmctl --run-dir reads.
  test_support::CoordinatorProcess process(run_dir, {"--config", run_dir + "/run.yaml"});
  ASSERT_TRUE(process.Start());
  coordinator::ClientOptions options;
  options.address = process.address();
  options.token_file = run_dir + "/token";
  auto client = std::move(coordinator::CoordinatorClient::Connect(options)).value();
  v1::RegisterWorkerRequest registration;
  registration.set_rank(0);
  registration.set_world_size(1);
  registration.set_hostname("ctl-host");
  auto worker = client->RegisterWorker(registration);
  ASSERT_TRUE(worker.ok()) << worker.status();
  v1::LeaseShardRequest lease_request;
  lease_request.set_worker_id(worker->worker_id());
  auto prompts = client->LeaseShard(lease_request);
  ASSERT_TRUE(prompts.ok() && prompts->has_prompts());
  v1::SubmitShardRequest submit;
  submit.set_worker_id(worker->worker_id());
  submit.set_lease_id(prompts->lease().lease_id());
  for (const char* p : {"Name three rivers of Europe", "Explain photosynthesis simply", "Why do cats purr",
                        "Give a haiku about winter", "How does a compass work"}) {
    submit.mutable_prompts()->add_prompts(p);
  }
  ASSERT_TRUE(client->SubmitShard(submit).ok());
  auto generate = client->LeaseShard(lease_request);
  ASSERT_TRUE(generate.ok() && generate->has_generate()) << generate.status();
  v1::SubmitShardRequest results;
  results.set_worker_id(worker->worker_id());
  results.set_lease_id(generate->lease().lease_id());
  for (const v1::PoolPrompt& prompt : generate->generate().prompts()) {
    v1::PromptResult* r = results.mutable_generate()->add_results();
    r->set_prompt_id(prompt.prompt_id());
    r->add_candidates()->set_text("fine answer \"quoted\"\nline two");
    r->add_candidates()->set_text("poor answer");
    r->add_mean_scores(4.5);
    r->add_mean_scores(2);
    if (prompt.prompt_id() >= 2) {
      r->set_drop_reason(prompt.prompt_id() == 2   ? v1::DROP_REASON_TIE
                         : prompt.prompt_id() == 3 ? v1::DROP_REASON_TOO_LONG
                                                   : v1::DROP_REASON_TOO_FEW_ANSWERS);
      continue;
    }
    r->mutable_pair()->set_chosen_index(0);
    r->mutable_pair()->set_rejected_index(1);
    r->mutable_pair()->set_chosen_score(4.5);
    r->mutable_pair()->set_rejected_score(2);
    r->mutable_pair()->set_ref_chosen_logprob(-3.5);
    r->mutable_pair()->set_ref_rejected_logprob(-7.25);
  }
  ASSERT_TRUE(client->SubmitShard(results).ok());
  // What the worker is doing, from its heartbeat (the progress watchdog's last activity).
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(worker->worker_id());
  heartbeat.mutable_stats()->set_activity("iteration 1 DPO: step 3 of 20 done");
  heartbeat.mutable_stats()->set_seconds_since_progress(125);
  ASSERT_TRUE(client->Heartbeat(heartbeat).ok());

  const std::string ctl = std::string(std::getenv("SRLM_BUILD_DIR")) + "/coordinator/ctl/srlmctl";
  const std::string base = absl::StrCat(ctl, " --coordinator ", process.address(), " --run-dir ", run_dir);
  CommandResult text = RunCommand(base + " status");
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_THAT(text.output, ::testing::HasSubstr("phase TRAIN"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("pairs 2"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("dropped: 1 ties, 0 unparsable, 1 too long, 1 too few answers"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("5 of 5 accepted; dropped: 0 duplicate, 0 near-duplicate, 0 copy of "
                                                "the data, 0 length"));
  EXPECT_THAT(text.output, ::testing::HasSubstr("ctl-host"));
  EXPECT_THAT(text.output, ::testing::ContainsRegex("iteration 1 DPO: step 3 of 20 done \\(last progress 2m0[0-9]s ago\\)"))
      << text.output;
  // A port past 65535 is refused (gRPC took it modulo 65536: 99999 reached port 34463); a deadline
  // of 1e300 s is none (it overflowed the clock, and every call failed at once).
  CommandResult wrapped = RunCommand(ctl + " --coordinator 127.0.0.1:99999 status 2>&1");
  EXPECT_EQ(wrapped.exit_code, 1) << wrapped.output;
  EXPECT_THAT(wrapped.output, ::testing::HasSubstr("expected HOST:PORT with PORT in 1..65535"));
  CommandResult far_deadline = RunCommand(base + " --timeout 1e300 status");
  EXPECT_EQ(far_deadline.exit_code, 0) << far_deadline.output;
  CommandResult empty_output = RunCommand(base + " export-pairs --iteration 1 --output '' 2>&1");
  EXPECT_NE(empty_output.exit_code, 0) << empty_output.output;
  // The iteration's text is checked before CLI11 converts it ("" was 0, a number past int64 was
  // clamped to INT64_MAX).
  for (const char* iteration : {"''", "99999999999999999999", "-1"}) {
    CommandResult bad_iteration = RunCommand(base + " export-pairs --iteration " + iteration + " 2>&1");
    EXPECT_NE(bad_iteration.exit_code, 0) << bad_iteration.output;
    EXPECT_THAT(bad_iteration.output, ::testing::HasSubstr("--iteration")) << bad_iteration.output;
  }
  CommandResult json_text = RunCommand(base + " status --json");
  ASSERT_EQ(json_text.exit_code, 0) << json_text.output;
  nlohmann::json status = nlohmann::json::parse(json_text.output);
  EXPECT_EQ(status["phase"], "TRAIN");
  EXPECT_EQ(status["iteration"], 1);
  EXPECT_EQ(status["pairs"], 2);
  EXPECT_EQ(status["dropped_too_long"], 1);
  EXPECT_EQ(status["dropped_too_few_answers"], 1);
  EXPECT_EQ(status["prompts"]["accepted"], 5);
  EXPECT_EQ(status["prompts"]["dropped_seen"], 0);
  ASSERT_EQ(status["workers"].size(), 1u);
  EXPECT_EQ(status["workers"][0]["activity"], "iteration 1 DPO: step 3 of 20 done");
  EXPECT_GE(status["workers"][0]["activity_seconds"].get<double>(), 125.0);
  EXPECT_LT(status["workers"][0]["activity_seconds"].get<double>(), 140.0);

  const std::string out = run_dir + "/pairs.jsonl";
  CommandResult exported = RunCommand(base + " export-pairs --iteration 1 --output " + out);
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  std::ifstream lines(out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    nlohmann::json pair = nlohmann::json::parse(line);
    EXPECT_FALSE(pair["prompt"].get<std::string>().empty());
    EXPECT_EQ(pair["chosen"], "fine answer \"quoted\"\nline two");
    EXPECT_EQ(pair["rejected"], "poor answer");
    EXPECT_EQ(pair["chosen_score"], 4.5);
    EXPECT_EQ(pair["ref_rejected_logprob"], -7.25);
    EXPECT_EQ(pair["provenance"]["worker_id"], worker->worker_id());
    EXPECT_EQ(pair["provenance"]["attempt"], 1);
    ++count;
  }
  EXPECT_EQ(count, 2);
  // An existing file is replaced only with --force: `--output RUN_DIR/state.db` (a slip) replaced a
  // live run's database, and the next start said DATA_LOSS. A usage error, exit code as for
  // `--iteration -1`, before any call.
  const int usage_error = RunCommand(base + " export-pairs --iteration -1 2>&1").exit_code;
  const std::string state_db = run_dir + "/state.db";
  for (const std::string& existing : {out, state_db}) {
    CommandResult refused = RunCommand(base + " export-pairs --iteration 1 --output " + existing + " 2>&1");
    EXPECT_EQ(refused.exit_code, usage_error) << refused.output;
    EXPECT_THAT(refused.output, ::testing::HasSubstr("--output: " + existing + " exists; add --force to replace it"));
  }
  EXPECT_EQ(testing_util::ReadFileText(state_db).substr(0, 16), std::string("SQLite format 3\0", 16));
  const std::string first_export = testing_util::ReadFileText(out);
  testing_util::WriteFileText(out, "old\n");
  CommandResult forced = RunCommand(base + " export-pairs --iteration 1 --force --output " + out + " 2>&1");
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_EQ(testing_util::ReadFileText(out), first_export);
  for (const char* missing : {"0", "2"}) {  // SFT has no pairs; the run has one iteration
    CommandResult none = RunCommand(base + " export-pairs --iteration " + missing + " 2>&1");
    EXPECT_NE(none.exit_code, 0) << none.output;
    EXPECT_THAT(none.output, ::testing::HasSubstr(std::string("iteration ") + missing));
    // A failed export into an existing file leaves it as it was (it used to be emptied first).
    CommandResult kept =
        RunCommand(base + " export-pairs --iteration " + missing + " --force --output " + out + " 2>&1");
    EXPECT_NE(kept.exit_code, 0) << kept.output;
    // The coordinator's refusal, not a write error (it was shown as "cannot write FILE: ...").
    EXPECT_THAT(kept.output, ::testing::HasSubstr(std::string("iteration ") + missing));
    EXPECT_THAT(kept.output, ::testing::Not(::testing::HasSubstr("cannot write"))) << kept.output;
    std::ifstream again(out);
    int lines_kept = 0;
    for (std::string l; std::getline(again, l);) ++lines_kept;
    EXPECT_EQ(lines_kept, 2) << "the failed export changed " << out;
  }

  // Finish the run; watch then ends by itself at DONE.
  v1::ReportCheckpointRequest checkpoint;
  checkpoint.set_worker_id(worker->worker_id());
  checkpoint.set_iteration(1);
  checkpoint.set_world_size(1);
  checkpoint.set_checkpoint_dir("/ckpt/m2");
  checkpoint.set_eval_correct(7);  // its held-out evaluation (data.eval)
  checkpoint.set_eval_total(9);
  v1::ReportCheckpointRequest impossible = checkpoint;
  impossible.set_eval_correct(10);
  EXPECT_EQ(client->ReportCheckpoint(impossible).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(client->ReportCheckpoint(checkpoint).ok());
  CommandResult watch = RunCommand(base + " watch --interval 0.1");
  ASSERT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_THAT(watch.output, ::testing::HasSubstr("phase DONE"));
  EXPECT_THAT(watch.output, ::testing::HasSubstr("100.0%"));
  // At DONE the current counters are empty; the finished iteration's stay in the history, also
  // after a restart (rebuilt from the database).
  for (int start = 0; start < 2; ++start) {
    if (start == 1) {
      ASSERT_EQ(process.Kill(SIGTERM), 0);
      ASSERT_TRUE(process.Start());
    }
    CommandResult done = RunCommand(base + " status");
    ASSERT_EQ(done.exit_code, 0) << done.output;
    EXPECT_THAT(done.output, ::testing::HasSubstr("phase DONE after 1 of 1 iterations"));
    // iter, prompts, results, pairs, ties, unparsable, too long, too few answers, loss, eval, model
    EXPECT_THAT(done.output, ::testing::ContainsRegex("  1 +5 +5 +2 +1 +0 +1 +1 +[0-9.]+ +7/9 +/ckpt/m2")) << done.output;
    nlohmann::json done_json = nlohmann::json::parse(RunCommand(base + " status --json").output);
    ASSERT_EQ(done_json["committed_iterations"].size(), 1u) << done_json.dump();
    const nlohmann::json& it = done_json["committed_iterations"][0];
    EXPECT_EQ(it["iteration"], 1);
    EXPECT_EQ(it["prompts"], 5);
    EXPECT_EQ(it["results"], 5);
    EXPECT_EQ(it["pairs"], 2);
    EXPECT_EQ(it["dropped_ties"], 1);
    EXPECT_EQ(it["dropped_unparsable"], 0);
    EXPECT_EQ(it["dropped_too_long"], 1);
    EXPECT_EQ(it["dropped_too_few_answers"], 1);
    EXPECT_EQ(it["eval_correct"], 7);
    EXPECT_EQ(it["eval_total"], 9);
    EXPECT_EQ(it["model_dir"], "/ckpt/m2");
  }

  // The finished run given one more iteration (--force-config) goes on with iteration 2.
  ASSERT_EQ(process.Kill(SIGTERM), 0);
  {
    std::ofstream config(run_dir + "/run2.yaml");
    config << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n  iterations: 2\n"
              "prompts:\n  per_iteration: 5\n  shard_size: 5\n"
              "generate:\n  shard_size: 5\n";
  }
  test_support::CoordinatorProcess longer(run_dir, {"--config", run_dir + "/run2.yaml", "--force-config"});
  longer.UsePort(process.port());
  ASSERT_TRUE(longer.Start());
  nlohmann::json reopened = nlohmann::json::parse(RunCommand(base + " status --json").output);
  EXPECT_EQ(reopened["phase"], "PROMPTS");
  EXPECT_EQ(reopened["iteration"], 2);
  EXPECT_EQ(reopened["total_iterations"], 2);
  EXPECT_EQ(reopened["model_dir"], "/ckpt/m2");

  CommandResult refused = RunCommand(absl::StrCat("SRLM_TOKEN=wrong ", ctl, " --coordinator ",
                                                  process.address(), " status 2>&1"));
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_THAT(refused.output, ::testing::HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(longer.Kill(SIGTERM), 0);
  std::filesystem::remove_all(run_dir);
}

TEST(CoordinatorBinaryTest, RefusesASecondCoordinatorABusyPortAndANewRunWithoutAModel) {
  testing_util::TempDir dir("srlm_refusals_");
  const std::string config = dir / "run.yaml", no_model = dir / "no_model.yaml";
  std::ofstream(config) << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n";
  std::ofstream(no_model) << test_support::DemoDataYaml() << "run:\n  sft: false\n";
  std::filesystem::create_directories(dir / "run");  // for the helper's log
  test_support::CoordinatorProcess first(dir / "run", {"--config", config});
  ASSERT_TRUE(first.Start());
  const std::string binary = "timeout 20 " + test_support::CoordinatorProcess::BinaryPath();

  CommandResult same_dir = RunCommand(binary + " --run-dir " + dir / "run" + " --listen 127.0.0.1:0 2>&1");
  EXPECT_EQ(same_dir.exit_code, 2) << same_dir.output;
  EXPECT_THAT(same_dir.output, ::testing::HasSubstr(absl::StrCat("is in use by another srlm-coordinator (pid ",
                                                                 first.pid(), " on ")));
  CommandResult same_port =
      RunCommand(binary + " --run-dir " + dir / "other" + " --config " + config + " --listen " + first.address() + " 2>&1");
  EXPECT_EQ(same_port.exit_code, 2) << same_port.output;  // before: it served beside the first
  EXPECT_THAT(same_port.output, ::testing::HasSubstr("cannot listen on " + first.address()));
  // Found before the run directory is opened: no run was stored (it used to be, and the corrected
  // start was then refused as "a different run configuration").
  EXPECT_FALSE(std::filesystem::exists(dir / "other")) << "the start that could not listen created its run";
  CommandResult no_config = RunCommand(binary + " --run-dir " + dir / "new" + " --listen 127.0.0.1:0 2>&1");
  EXPECT_EQ(no_config.exit_code, 2) << no_config.output;
  EXPECT_THAT(no_config.output, ::testing::HasSubstr("no run in " + dir / "new" + ": pass --config"));
  EXPECT_FALSE(std::filesystem::exists(dir / "new")) << "a mistyped --run-dir was created";
  CommandResult still_none = RunCommand(binary + " --run-dir " + dir / "new" + " --listen 127.0.0.1:0 2>&1");
  EXPECT_EQ(still_none.exit_code, 2) << still_none.output;  // the refused start left no run behind
  CommandResult model_unset =
      RunCommand(binary + " --run-dir " + dir / "new" + " --config " + no_model + " --listen 127.0.0.1:0 2>&1");
  EXPECT_EQ(model_unset.exit_code, 2) << model_unset.output;
  EXPECT_THAT(model_unset.output, ::testing::HasSubstr("model.path is not set"));
  // Self-instruct needs data.ift's prompts even without SFT (every worker used to fail at registration).
  const std::string no_ift = dir / "no_ift.yaml";
  std::ofstream(no_ift) << "model:\n  path: /models/m0\nrun:\n  sft: false\n";
  CommandResult ift_unset =
      RunCommand(binary + " --run-dir " + dir / "new" + " --config " + no_ift + " --listen 127.0.0.1:0 2>&1");
  EXPECT_EQ(ift_unset.exit_code, 2) << ift_unset.output;
  EXPECT_THAT(ift_unset.output, ::testing::HasSubstr("data.ift is not set"));
  CommandResult bad_port = RunCommand(binary + " --run-dir " + dir / "run" + " --listen 127.0.0.1:99999 2>&1");
  EXPECT_EQ(bad_port.exit_code, 2) << bad_port.output;
  EXPECT_THAT(bad_port.output, ::testing::HasSubstr("PORT in 0..65535"));

  // The first coordinator served on through all of this; once it stops, the directory is free, and
  // the run resumes without --config.
  EXPECT_EQ(first.Kill(SIGTERM), 0);
  test_support::CoordinatorProcess again(dir / "run", {});
  ASSERT_TRUE(again.Start());
  EXPECT_EQ(again.Kill(SIGTERM), 0);
}

// A start that fails on a file the server needs (token, TLS, port file), or cannot listen with its
// TLS files, fails before the run directory is opened: it creates no run and stores no
// configuration (--force-config included).
TEST(CoordinatorBinaryTest, AStartRefusedForAServerFileChangesNoRun) {
  testing_util::TempDir dir("srlm_refused_start_");
  const std::string config = dir / "run.yaml", other = dir / "other.yaml";
  std::ofstream(config) << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n";
  std::ofstream(other) << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n  iterations: 7\n";
  const std::string binary = "timeout 20 " + test_support::CoordinatorProcess::BinaryPath() + " --listen 127.0.0.1:0";
  CommandResult token = RunCommand(binary + " --run-dir " + dir / "new" + " --config " + config +
                                   " --token-file " + dir / "missing" + " 2>&1");
  EXPECT_EQ(token.exit_code, 2) << token.output;
  EXPECT_THAT(token.output, ::testing::HasSubstr("--token-file " + dir / "missing" + ": cannot be read"));
  EXPECT_FALSE(std::filesystem::exists(dir / "new")) << "the refused start created the run directory";
  std::ofstream(dir / "empty_token");  // readable, but no token in it
  CommandResult empty = RunCommand(binary + " --run-dir " + dir / "new" + " --config " + config +
                                   " --token-file " + dir / "empty_token" + " 2>&1");
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  EXPECT_THAT(empty.output, ::testing::HasSubstr("is empty"));
  EXPECT_FALSE(std::filesystem::exists(dir / "new")) << "the refused start created the run directory";
  CommandResult port_file = RunCommand(binary + " --run-dir " + dir / "new" + " --config " + config +
                                       " --port-file " + dir / "no/such/folder/port 2>&1");
  EXPECT_EQ(port_file.exit_code, 2) << port_file.output;
  EXPECT_THAT(port_file.output, ::testing::HasSubstr("--port-file: NOT_FOUND: cannot write"));
  EXPECT_FALSE(std::filesystem::exists(dir / "new"));

  std::filesystem::create_directories(dir / "run");  // for the helper's log
  {
    test_support::CoordinatorProcess first(dir / "run", {"--config", config});
    ASSERT_TRUE(first.Start());
    EXPECT_EQ(first.Kill(SIGTERM), 0);
  }
  CommandResult forced = RunCommand(binary + " --run-dir " + dir / "run" + " --config " + other +
                                    " --force-config --tls-cert " + dir / "missing.pem --tls-key " +
                                    dir / "missing.key 2>&1");
  EXPECT_EQ(forced.exit_code, 2) << forced.output;
  EXPECT_THAT(forced.output, ::testing::HasSubstr("--tls-cert " + dir / "missing.pem: cannot be read"));
  // A certificate and key that are readable but not PEM: gRPC cannot listen with them.
  std::ofstream(dir / "junk.pem") << "not a certificate\n";
  CommandResult junk = RunCommand(binary + " --run-dir " + dir / "run" + " --config " + other +
                                  " --force-config --tls-cert " + dir / "junk.pem --tls-key " + dir / "junk.pem 2>&1");
  EXPECT_EQ(junk.exit_code, 2) << junk.output;
  EXPECT_THAT(junk.output, ::testing::HasSubstr("the TLS certificate or key is not valid PEM")) << junk.output;
  CommandResult junk_new = RunCommand(binary + " --run-dir " + dir / "new" + " --config " + config +
                                      " --tls-cert " + dir / "junk.pem --tls-key " + dir / "junk.pem 2>&1");
  EXPECT_EQ(junk_new.exit_code, 2) << junk_new.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "new")) << "the start that could not listen created its run";
  // The stored configuration is still the first: resuming with it needs no --force-config.
  test_support::CoordinatorProcess again(dir / "run", {"--config", config});
  ASSERT_TRUE(again.Start());
  EXPECT_EQ(again.Kill(SIGTERM), 0);
}

// A hangup (SIGHUP: a closed terminal sends it to its process group) stops the coordinator as
// SIGTERM does, gracefully and with exit status 0. It used to die of the signal.
TEST(CoordinatorBinaryTest, SighupStopsItGracefully) {
  testing_util::TempDir dir("srlm_hangup_");
  const std::string config = dir / "run.yaml";
  std::ofstream(config) << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n";
  std::filesystem::create_directories(dir / "run");  // for the helper's log
  test_support::CoordinatorProcess process(dir / "run", {"--config", config});
  ASSERT_TRUE(process.Start());
  const int status = process.Kill(SIGHUP);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  const std::string log = testing_util::ReadFileText(dir / "run/coordinator.log");
  EXPECT_THAT(log, ::testing::HasSubstr("signal 1: shutting down")) << log;
  EXPECT_THAT(log, ::testing::ContainsRegex("\\] stopped\n")) << log;
}

// CLI11 alone said "A subcommand is required" for a word that names none.
TEST(SrlmctlTest, AnUnknownSubcommandIsNamedWithTheKnownOnes) {
  const std::string ctl = std::string(std::getenv("SRLM_BUILD_DIR")) + "/coordinator/ctl/srlmctl";
  CommandResult bogus = RunCommand(ctl + " --coordinator 127.0.0.1:1 bogus --json 2>&1");
  EXPECT_NE(bogus.exit_code, 0);
  EXPECT_THAT(bogus.output, ::testing::HasSubstr("srlmctl: unknown subcommand 'bogus'; expected one of: status, "
                                                 "watch, export-pairs"));
  CommandResult none = RunCommand(ctl + " --coordinator 127.0.0.1:1 2>&1");
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.output, ::testing::HasSubstr("srlmctl: a subcommand is required; expected one of: status, "
                                                "watch, export-pairs"));
}

// The coordinator refuses an empty token file when it starts; the client (srlmctl, srlm-worker run,
// both through CoordinatorClient::Connect) sent no token instead, and every call failed later with
// UNAUTHENTICATED.
TEST(SrlmctlTest, AnEmptyTokenFileIsRefusedBeforeAnyCall) {
  testing_util::TempDir dir("srlm_empty_token_");
  const std::string empty = dir / "token";
  testing_util::WriteFileText(empty, " \n");
  coordinator::ClientOptions options;
  options.address = "127.0.0.1:1";
  options.token_file = empty;
  EXPECT_EQ(coordinator::CoordinatorClient::Connect(options).status(),
            absl::InvalidArgumentError("token file " + empty + " is empty"));
  const std::string ctl = std::string(std::getenv("SRLM_BUILD_DIR")) + "/coordinator/ctl/srlmctl";
  for (const std::string& flag : {"--token-file " + empty, "--run-dir " + dir.path()}) {
    CommandResult refused = RunCommand("env -u SRLM_TOKEN " + ctl + " --coordinator 127.0.0.1:1 " + flag + " status 2>&1");
    EXPECT_EQ(refused.exit_code, 1) << flag << ": " << refused.output;
    EXPECT_THAT(refused.output, ::testing::HasSubstr("token file " + empty + " is empty")) << flag;
  }
}

// A stopping coordinator ends the WatchStatus stream with OK. `srlmctl watch` promises progress
// until the run is DONE, and scripts run `srlmctl watch && next-step`: it must fail then, saying
// why, not exit 0 as at DONE (which StatusWatchAndExportAgainstARealCoordinator checks).
TEST(SrlmctlTest, WatchFailsWhenTheCoordinatorStopsBeforeTheRunIsDone) {
  testing_util::TempDir dir("srlm_watch_stop_");
  const std::string config = dir / "run.yaml";
  std::ofstream(config) << test_support::DemoDataYaml() << "model:\n  path: /models/m0\nrun:\n  sft: false\n";
  std::filesystem::create_directories(dir / "run");
  test_support::CoordinatorProcess process(dir / "run", {"--config", config});
  ASSERT_TRUE(process.Start());
  const std::string ctl = std::string(std::getenv("SRLM_BUILD_DIR")) + "/coordinator/ctl/srlmctl";
  const std::string out = dir / "watch.out", err = dir / "watch.err";
  CommandResult watch;
  std::thread watcher([&] {
    watch = RunCommand(absl::StrCat("timeout 60 ", ctl, " --coordinator ", process.address(), " --run-dir ",
                                    dir / "run", " watch --interval 0.2 >", out, " 2>", err));
  });
  bool watching = false;  // the first update is out: the stream is open
  for (int i = 0; i < 300 && !watching; ++i) {
    watching = testing_util::ReadFileText(out).find("phase PROMPTS") != std::string::npos;
    if (!watching) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(watching) << testing_util::ReadFileText(err);
  EXPECT_EQ(process.Kill(SIGTERM), 0);
  watcher.join();
  EXPECT_EQ(watch.exit_code, 1) << testing_util::ReadFileText(err);
  EXPECT_THAT(testing_util::ReadFileText(err), ::testing::HasSubstr("srlmctl: the coordinator ended the stream before the run "
                                                  "was done (last phase PROMPTS); it stopped or restarted"));
}

}  // namespace
}  // namespace srlm
