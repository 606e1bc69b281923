// The worker loop against the real coordinator over real gRPC on loopback: two worker ranks (threads
// with their own clients) follow SFT -> PROMPTS -> GENERATE -> TRAIN -> COMMIT to DONE with the
// scripted backend. Checks: the iteration counter advances, every phase shows in GetStatus, every
// pool prompt has exactly one accepted result, the exported pairs are the right ones (chosen is the
// correct reversal), and each rank trained on its own disjoint slice of the frozen pair set.
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"
#include "coordinator/client/coordinator_client.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/run_coordinator.h"
#include "tests/e2e_scripted_backend.h"
#include "worker/loop/grpc_coordinator_link.h"

namespace srlm {
namespace {

std::string SourceDir() {
  const char* dir = std::getenv("SRLM_SOURCE_DIR");
  return dir ? dir : ".";
}

TEST(E2eLoopCoordinatorTest, TwoRanksRunOneIterationToDone) {
  const testing_util::TempDir scratch("e2e_loop_run_");
  const std::string run_dir = scratch.path();
  RunConfig config;
  config.model.path = run_dir + "/m0";
  config.data.ift = SourceDir() + "/deploy/demo/data/ift.jsonl";
  config.data.eft = SourceDir() + "/deploy/demo/data/eft.jsonl";
  config.judge.template_file = SourceDir() + "/deploy/demo/judge_template.txt";
  config.run.iterations = 1;
  config.prompts.per_iteration = 12;
  config.prompts.shard_size = 4;
  config.prompts.shots = 3;
  config.generate.shard_size = 3;
  config.generate.candidates = 4;
  config.judge.samples = 2;
  config.coordinator.heartbeat_seconds = 0.2;
  config.coordinator.lease_seconds = 30;

  coordinator::RunCoordinatorOptions run_options;
  run_options.run_dir = run_dir;
  run_options.config = config;
  auto run = coordinator::RunCoordinator::Open(run_options);
  ASSERT_TRUE(run.ok()) << run.status();
  coordinator::ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.token = "e2e-token";
  auto server = coordinator::CoordinatorServer::Start(run->get(), server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());

  // Watch the phases through the status stream while the run goes: WatchStatus sends an update on
  // every phase change, however short the phase, and the watch ends when the run is DONE.
  std::set<int> phases_seen;
  absl::Status watch_status;
  std::thread watcher([&] {
    coordinator::ClientOptions o;
    o.address = address;
    o.token = "e2e-token";
    o.stream_deadline_seconds = 120;  // a failed run ends the watch instead of hanging the test
    auto client = coordinator::CoordinatorClient::Connect(o);
    if (!client.ok()) {
      watch_status = client.status();
      return;
    }
    watch_status = (*client)->WatchStatus(0.05, [&](const v1::GetStatusResponse& status) {
      phases_seen.insert(status.phase());
      return status.phase() != v1::PHASE_DONE;
    });
  });

  std::vector<absl::StatusOr<WorkerLoopSummary>> summaries(2, absl::UnknownError("not run"));
  std::vector<std::vector<std::string>> loaded(2);
  std::vector<std::thread> workers;
  e2e::ThreadBarrier training_barrier(2);
  for (int rank = 0; rank < 2; ++rank) {
    workers.emplace_back([&, rank] {
      coordinator::ClientOptions o;
      o.address = address;
      o.token = "e2e-token";
      auto client = coordinator::CoordinatorClient::Connect(o);
      if (!client.ok()) {
        summaries[rank] = client.status();
        return;
      }
      GrpcCoordinatorLink link(std::move(*client));
      e2e::ScriptedBackend backend(rank);
      backend.enter_collective = [&] { training_barrier.Wait(); };
      WorkerLoopOptions options;
      options.checkpoint_root = run_dir + "/checkpoints";
      options.max_wait_seconds = 0.05;
      summaries[rank] = RunWorkerLoop(link, backend, WorkerIdentity{"localhost", 100 + rank, rank, 2, "cpu"}, options);
      loaded[rank] = backend.loaded_dirs;
    });
  }
  for (auto& w : workers) w.join();
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status;
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(summaries[rank].ok()) << "rank " << rank << ": " << summaries[rank].status();
    EXPECT_TRUE(summaries[rank]->run_done);
    EXPECT_EQ(summaries[rank]->trainings, 2) << "SFT and one DPO per rank";
    // Iteration 1's prompts and candidates come from M_1, the SFT checkpoint, never from M_0.
    for (const auto& dir : loaded[rank]) EXPECT_EQ(dir, run_dir + "/checkpoints/iter-1") << "rank " << rank;
  }

  v1::GetStatusResponse status = (*run)->GetStatus();
  EXPECT_EQ(status.phase(), v1::PHASE_DONE);
  EXPECT_EQ(status.iteration(), 2) << "SFT committed M_1, DPO committed M_2";
  for (int phase : {v1::PHASE_SFT, v1::PHASE_PROMPTS, v1::PHASE_GENERATE, v1::PHASE_TRAIN, v1::PHASE_DONE}) {
    EXPECT_TRUE(phases_seen.count(phase)) << "status never reported " << v1::Phase_Name(phase);
  }
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/checkpoints/iter-1/model.txt"));
  // The ranks claimed the checkpoint root for this run when they registered (checkpoint_root.h).
  std::string owner;
  std::getline(std::ifstream(run_dir + "/checkpoints/srlm-run-id"), owner);
  EXPECT_FALSE(owner.empty());
  EXPECT_EQ(owner, status.run_id());
  EXPECT_TRUE(std::filesystem::exists(run_dir + "/checkpoints/iter-2/model.txt"));

  // Exported pairs of iteration 1: one per prompt at most, chosen = the correct reversal.
  std::set<int64_t> prompt_ids;
  int64_t exported = 0;
  ASSERT_TRUE((*run)->ExportPairs(1, [&](const v1::ExportedPair& p) {
    ++exported;
    EXPECT_TRUE(prompt_ids.insert(p.prompt_id()).second) << "pair twice for prompt " << p.prompt_id();
    const std::string word = p.prompt().substr(p.prompt().rfind(' ') + 1);
    EXPECT_EQ(p.chosen(), std::string(word.rbegin(), word.rend()));
    EXPECT_EQ(p.rejected(), word);
    EXPECT_EQ(p.chosen_score(), 5);
    EXPECT_EQ(p.rejected_score(), 1);
    return true;
  }).ok());
  EXPECT_GT(exported, 0);
  EXPECT_EQ(exported, summaries[0]->pairs_submitted + summaries[1]->pairs_submitted);

  // Each rank's DPO slice: disjoint positions that together cover the frozen set.
  std::set<std::string> positions;
  int64_t lines = 0;
  for (int rank = 0; rank < 2; ++rank) {
    std::ifstream in(run_dir + "/checkpoints/iter-2/pairs-rank" + std::to_string(rank) + ".txt");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      ++lines;
      positions.insert(line.substr(0, line.find(' ')));
    }
  }
  EXPECT_EQ(lines, exported);
  EXPECT_EQ(static_cast<int64_t>(positions.size()), exported);
  (*server)->Shutdown();
}

}  // namespace
}  // namespace srlm
