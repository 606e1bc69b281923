// The fixture of the coordinator_service_test binary's in-process tests: a RunCoordinator on a
// temporary run directory behind the real gRPC server, a client library connected to it in process,
// and a fake clock (now_ms_), so lease expiry is exact; with the helpers that drive a run through
// its phases. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "coordinator/client/coordinator_client.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/run_coordinator.h"
#include "srlm/v1/coordinator.pb.h"

namespace srlm::coordinator {

inline constexpr char kToken[] = "test-token-123";

// One iteration after SFT: 6 prompts in shards of 3, GENERATE shards of 2, 10 s leases, seed 77.
RunConfig SmallConfig();
// Writes `text` to `path` (a test failure if it cannot).
void WriteTextFile(const std::string& path, const std::string& text);

class CoordinatorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  void Start(std::optional<RunConfig> config, bool force = false, int64_t max_message_bytes = 64 << 20);
  // A client over loopback TCP with default options, as workers and srlmctl connect.
  std::unique_ptr<CoordinatorClient> NetworkClient();
  void Stop();
  // Ends the fixture's run and removes its directory, for a test that starts a run of its own
  // (Start(config)); returns SmallConfig() to change first.
  RunConfig DiscardRun();
  // What opening the run directory with `config` gives, while no coordinator holds it (the run is
  // closed again at once).
  absl::Status OpenStatus(std::optional<RunConfig> config, bool force = false);
  std::unique_ptr<CoordinatorClient> MakeClient(const std::string& token);
  std::string Register(int rank, int world_size);
  v1::LeaseShardResponse Lease(const std::string& worker, bool stopping = false);
  absl::StatusOr<v1::SubmitShardResponse> SubmitPrompts(const std::string& worker, const std::string& lease,
                                                        std::vector<std::string> prompts);
  // A GENERATE result for every prompt of the shard: a pair unless the prompt id is divisible by 5.
  static v1::SubmitShardRequest GenerateRequest(const std::string& worker, const v1::LeaseShardResponse& lease);
  absl::StatusOr<v1::ReportCheckpointResponse> Checkpoint(const std::string& worker, int rank, int ws,
                                                          int64_t iteration, const std::string& dir);
  // SFT at iteration 0 with two ranks -> iteration 1 PROMPTS.
  void FinishSft(const std::string& w0, const std::string& w1);
  // SFT at iteration 0 reported by each of `workers` (rank = position) -> iteration 1 PROMPTS.
  void FinishSftWithRanks(const std::vector<std::string>& workers);
  // Leases a GENERATE shard for `worker` and submits its results; returns the lease.
  v1::LeaseShardResponse LeaseAndSubmitGenerate(const std::string& worker);
  // Fills the PROMPTS pool with 6 distinct prompts.
  void FillPrompts(const std::string& worker);

  // A run whose data.ift and data.eval are files in the run directory, at iteration 1 PROMPTS after
  // SFT (a fresh PROMPTS phase, not one rebuilt at Open), registered as `w0` and `w1`. The pool's
  // near-duplicates are by 3-grams at 0.7 (the defaults).
  void StartPromptsWithSeenPrompts(std::string* w0, std::string* w1);
  // Submits, as one PROMPTS shard of `worker`: a copy of an IFT prompt, an eval prompt in another
  // case and punctuation, a near-duplicate of an eval prompt, and `fresh`. The first three must be
  // dropped, counted as copies of seen prompts (not as duplicates of the pool's), and `fresh`
  // accepted.
  void ExpectSeenPromptsDropped(const std::string& worker, const std::string& fresh);
  // The texts of iteration 1's pool in the database, by prompt id.
  std::vector<std::string> StoredPool();


  std::string run_dir_;
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
  std::unique_ptr<RunCoordinator> run_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<CoordinatorClient> client_;
};

}  // namespace srlm::coordinator
