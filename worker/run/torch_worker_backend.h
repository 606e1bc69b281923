// The production WorkerBackend (worker/loop/worker_loop.h): libtorch models for generation,
// judging and reference log-probabilities, and the data-parallel Trainer (worker/train) for the
// SFT and DPO phases over the process's Communicator (MPI on CPU, NCCL on CUDA, or one process).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "worker/loop/worker_loop.h"
#include "worker/train/communicator.h"
#include "worker/train/examples.h"
#include "worker/train/text_encoder.h"

namespace srlm {

// worker/train/trainer.h: kept out of this header, which the worker's main command includes, so
// that only the backend's own file compiles against libtorch's full API.
class Trainer;
struct TrainerOptions;
struct TrainingSummary;

struct TorchWorkerBackendOptions {
  std::string communicator = "auto";  // auto | single | mpi | nccl (communicator.h)
  int64_t max_generate_batch = 64;    // sequences decoded together
  // Where rank 0 writes the models that every rank loads next: when set, Configure checks that every
  // rank sees it (worker/train/shared_directory.h).
  std::string checkpoint_root;
};

class TorchWorkerBackend : public WorkerBackend {
 public:
  explicit TorchWorkerBackend(TorchWorkerBackendOptions options) : options_(std::move(options)) {}

  // Creates the communicator (collective), checks the checkpoint root (collective) and picks device
  // and dtype from the run's model section.
  absl::Status Configure(const RunConfig& config) override;
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& model_dir) override;
  absl::Status TrainSft(const RunConfig& config, const std::string& model_dir, const std::string& out_dir,
                        const TrainStepReporter& report) override;
  absl::Status TrainDpo(const RunConfig& config, const std::string& model_dir,
                        const std::vector<v1::TrainingPair>& rank_pairs, int64_t total_pairs,
                        const std::string& out_dir, const TrainStepReporter& report) override;

  // The communicator's rank and size (valid after Configure).
  int rank() const { return communicator_ ? communicator_->rank() : 0; }
  int world_size() const { return communicator_ ? communicator_->world_size() : 1; }

 private:
  absl::StatusOr<std::shared_ptr<const TokenizerTextEncoder>> Encoder(const std::string& model_dir) const;
  // Sequence length and vocabulary limits for training data: the model's config and model.max_seq_len.
  absl::StatusOr<ExampleLimits> Limits(const std::string& model_dir) const;
  // Trains `model_dir` with `options`, then writes `out_dir` (rank 0; collective).
  absl::Status TrainAndSave(const std::string& model_dir, const std::string& out_dir, TrainerOptions options,
                            int64_t num_examples,
                            const std::function<absl::StatusOr<TrainingSummary>(Trainer&)>& train);

  TorchWorkerBackendOptions options_;
  RunConfig config_;
  std::unique_ptr<Communicator> communicator_;
  c10::Device device_{c10::kCPU};
  c10::ScalarType dtype_ = c10::kFloat;
};

}  // namespace srlm
