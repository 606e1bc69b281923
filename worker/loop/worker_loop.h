// The worker's run loop: register with the coordinator, then follow its phases until the run is done.
//   SFT (iteration 0)  -> train on IFT+EFT, rank 0 writes M_1, every rank reports the checkpoint
//   PROMPTS            -> lease shard -> few-shot self-instruct -> submit
//   GENERATE           -> lease shard -> generate -> judge -> build pairs -> reference log-probs -> submit
//   TRAIN              -> stream this rank's slice of the frozen pairs -> DPO (data-parallel) ->
//                         rank 0 writes M_{t+1} -> every rank reports the checkpoint
// Heartbeats run in a background thread. The coordinator owns all durable state: a worker that is
// killed and relaunched registers again and picks up whatever the coordinator hands out.
// Collective calls (WorkerBackend::Train*) happen in the same order on every rank, because every
// rank enters the training phase of the same iteration exactly once.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "srlm/v1/coordinator.pb.h"
#include "worker/loop/loop_model.h"

namespace srlm {

// The coordinator RPCs the worker uses. Implementations must be thread-safe (heartbeats come from
// a second thread).
class CoordinatorLink {
 public:
  virtual ~CoordinatorLink() = default;
  virtual absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& r) = 0;
  virtual absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& r) = 0;
  virtual absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& r) = 0;
  virtual absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& r) = 0;
  virtual absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& r) = 0;
  virtual absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest& r) = 0;
  virtual absl::Status StreamPairs(const v1::StreamPairsRequest& r,
                                   const std::function<bool(const v1::TrainingPair&)>& on_pair) = 0;
  // How many calls have succeeded only after retries (a coordinator restart); 0 for links that
  // do not retry. A LeaseShard that needed retries may have left a lease whose reply was lost.
  virtual uint64_t recoveries() const { return 0; }
};

// Reports one optimizer step (1-based) to the coordinator.
struct TrainStepReport {
  int64_t step = 0;
  int64_t total_steps = 0;
  double loss = 0;
  int64_t tokens = 0;
  std::map<std::string, double> metrics;
};
using TrainStepReporter = std::function<void(const TrainStepReport&)>;

// The model-side work of a worker (libtorch in production).
class WorkerBackend {
 public:
  virtual ~WorkerBackend() = default;
  // COLLECTIVE: called once on every rank with the run's configuration (from the coordinator at
  // registration), before any other call.
  virtual absl::Status Configure(const RunConfig& config) { return absl::OkStatus(); }
  // M_t for generation, judging and reference log-probabilities. Not collective.
  virtual absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& model_dir) = 0;
  // COLLECTIVE: every rank calls it for the same iteration. Trains from `model_dir` on the run's
  // IFT+EFT data (SFT) and has rank 0 write the result to `out_dir` (complete when it returns,
  // on every rank).
  virtual absl::Status TrainSft(const RunConfig& config, const std::string& model_dir,
                                const std::string& out_dir, const TrainStepReporter& report) = 0;
  // COLLECTIVE: DPO from `model_dir` (also the reference; its log-probabilities come with the
  // pairs) on this rank's slice of the frozen pair set of `total_pairs` pairs.
  virtual absl::Status TrainDpo(const RunConfig& config, const std::string& model_dir,
                                const std::vector<v1::TrainingPair>& rank_pairs, int64_t total_pairs,
                                const std::string& out_dir, const TrainStepReporter& report) = 0;
};

struct WorkerIdentity {
  std::string hostname;
  int64_t pid = 0;
  int32_t rank = 0;
  int32_t world_size = 1;
  std::string device = "cpu";
};

struct WorkerLoopOptions {
  std::string checkpoint_root;  // M_{t+1} is written to <checkpoint_root>/iter-<t+1>
  std::atomic<bool>* stop_requested = nullptr;  // checked between units of work (SIGTERM/USR1)
  double max_wait_seconds = 2.0;  // cap on the coordinator's wait hints
  // A worker whose work makes no progress for this long (no coordinator answer, model load, batch
  // of sampling or training step) calls on_stall, from another thread, with what it was doing
  // (progress_watchdog.h). 0 or no handler: never.
  double stall_seconds = 0;
  std::function<void(const std::string& description)> on_stall;
};

// What one worker did, for its final log line and for tests.
struct WorkerLoopSummary {
  int64_t prompts_shards = 0;
  int64_t generate_shards = 0;
  int64_t pairs_submitted = 0;
  int64_t shards_discarded = 0;  // results the coordinator no longer wanted (lease handed on, phase over)
  int64_t trainings = 0;
  bool run_done = false;
  bool stopped = false;
};

absl::StatusOr<WorkerLoopSummary> RunWorkerLoop(CoordinatorLink& link, WorkerBackend& backend,
                                                const WorkerIdentity& identity,
                                                const WorkerLoopOptions& options);

}  // namespace srlm
