// The SFT and DPO trainer, usable as a library (the loop trains on pairs it fetched) and by the
// offline `srlm-worker sft|dpo` commands. One optimizer step reads top to bottom in Trainer::Step:
// this rank's slice of the global batch -> micro-batches forward/backward (gradient accumulation)
// -> bucketed all-reduce (NaN/Inf on any rank: every rank skips) -> clip -> LR -> AdamW.
// Every rank must construct the trainer and call Train/Step/SaveCheckpoint in the same order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/run_config.h"
#include "worker/model/llama.h"
#include "worker/train/adamw.h"
#include "worker/train/communicator.h"
#include "worker/train/examples.h"
#include "worker/train/grad_sync.h"
#include "worker/train/losses.h"
#include "worker/train/lr_schedule.h"
#include "worker/train/training_objective.h"

namespace srlm {

struct TrainerOptions {
  TrainingObjective objective = TrainingObjective::kDpo;
  TrainConfig train;           // steps, batch sizes, lr and schedule, clipping, dropout, seed
  DpoConfig dpo;               // beta, loss, label smoothing, length normalisation (dpo.train unused)
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  int64_t bucket_bytes = GradientSynchronizer::kDefaultBucketBytes;
  std::string out_dir;         // checkpoints go to <out_dir>/checkpoint-<step>; empty: none
  int64_t save_every = 0;      // checkpoint every this many steps too; 0: only where a Train call ends
  std::string tokenizer_dir;   // tokenizer files copied into checkpoints (may be empty)
  // optimizer.pt in every checkpoint, which --resume needs. The loop turns it off: each iteration
  // trains M_t with a fresh optimizer and a redone TRAIN starts over, so it would only cost disk
  // (about twice the weights: float32 moments, plus master weights for bf16).
  bool save_optimizer_state = true;
  int64_t log_every = 1;       // progress line every this many steps (rank 0)
};

// One optimizer step's numbers, identical on every rank (reduced over ranks).
struct StepMetrics {
  int64_t step = 0;            // 1-based index of the step just done
  int64_t total_steps = 0;
  double loss = 0;             // mean over the global batch (SFT: per response token)
  double lr = 0;
  double grad_norm = 0;        // before clipping
  bool skipped = false;        // non-finite gradient somewhere: no update
  double examples = 0;         // in the global batch
  double tokens = 0;           // tokens forwarded, all ranks
  double reward_margin = 0;    // DPO: mean of chosen minus rejected reward
  double reward_accuracy = 0;  // DPO: share of pairs with chosen reward > rejected reward
  double chosen_reward = 0;
  double rejected_reward = 0;
  double seconds = 0;          // wall time of the step
  double allreduce_seconds = 0;
};

struct TrainingSummary {
  int64_t steps_done = 0;
  int64_t skipped_steps = 0;
  std::vector<StepMetrics> history;  // the steps run by this call
};

// Number of optimizer steps for `num_examples`: config.steps, or epochs * ceil(N / batch_size).
// InvalidArgument naming the key (sft.* or dpo.*, after `objective`) when that is over
// kMaxTrainingSteps (common/run_config.h), or when steps, epochs or batch_size is out of range.
absl::StatusOr<int64_t> TotalSteps(const TrainConfig& config, int64_t num_examples, TrainingObjective objective);

// The example indices of global step `step` (a permutation per epoch from the seed; the last
// batch of an epoch may be short), and the part of them that `rank` of `world_size` processes: the
// indices i with i % world_size == rank. A rank therefore only ever reads its own residue class of
// the examples, which is exactly the slice the coordinator streams to it (TrainingPair.position),
// so the loop's ranks need not hold each other's pairs.
std::vector<int64_t> GlobalBatchIndices(int64_t step, int64_t num_examples, int64_t batch_size, int64_t seed);
std::vector<int64_t> RankSlice(const std::vector<int64_t>& global, int rank, int world_size);

class Trainer {
 public:
  // `model` is trained in place. `reference` (DPO only) is the frozen reference model used for
  // pairs without precomputed reference log-probabilities; it may be empty when all have them, and
  // must have the policy's vocab_size (InvalidArgument otherwise).
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(LlamaModel model, std::optional<LlamaModel> reference,
                                                         Communicator* communicator, TrainerOptions options);

  // Collective. Trains on the examples (the same list on every rank) until TotalSteps, starting
  // from the current step (0, or where a loaded checkpoint stopped; a step past TotalSteps is
  // FailedPrecondition: that checkpoint is of a run with other settings). `on_step` sees every step.
  // With options.out_dir set, writes <out_dir>/checkpoint-<step> every save_every steps and where
  // the call ends (the last step, or set_max_steps_this_call), each once.
  absl::StatusOr<TrainingSummary> TrainSft(const std::vector<SftExample>& examples,
                                           const std::function<void(const StepMetrics&)>& on_step = {});
  absl::StatusOr<TrainingSummary> TrainDpo(const std::vector<PreferenceExample>& examples,
                                           const std::function<void(const StepMetrics&)>& on_step = {});
  // Stops after this many steps of the next Train call (0: no limit). For tests and time limits.
  void set_max_steps_this_call(int64_t n) { max_steps_this_call_ = n; }

  // Collective. Rank 0 writes `dir` atomically: the model in the HF layout, optimizer.pt (unless
  // save_optimizer_state is off) and trainer_state.json (written last); the others wait for it.
  absl::Status SaveCheckpoint(const std::string& dir);
  // Loads optimizer and step state from a checkpoint folder (the caller loaded the model weights
  // from it). Every rank reads it. Each field of trainer_state.json is checked first (an error names
  // the file and the field): step in [0, kMaxTrainingSteps] and equal to N of a folder named
  // checkpoint-N, skipped_steps in [0, step], objective this trainer's, batch_size, seed and
  // world_size in range; then optimizer.pt's update count must be step - skipped_steps. On an
  // error the step is unchanged but the optimizer may be partly loaded: do not train with it.
  absl::Status LoadTrainingState(const std::string& dir);

  int64_t step() const { return step_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  LlamaModel& model() { return model_; }

 private:
  Trainer(LlamaModel model, std::optional<LlamaModel> reference, Communicator* communicator, TrainerOptions options);

  struct MicroResult {
    double weight = 0;  // examples (DPO) or response tokens (SFT) the loss is summed over
    double tokens = 0;
    double loss_sum = 0;
    double chosen_reward_sum = 0, rejected_reward_sum = 0, correct = 0;
  };
  // Runs forward and backward on one micro-batch of this rank; accumulates .grad().
  absl::StatusOr<MicroResult> SftMicroStep(const std::vector<SftExample>& examples, const std::vector<int64_t>& idx);
  absl::StatusOr<MicroResult> DpoMicroStep(const std::vector<PreferenceExample>& examples, const std::vector<int64_t>& idx);
  // One optimizer step over the global batch; `micro` runs one micro-batch.
  absl::StatusOr<StepMetrics> Step(
      int64_t num_examples, int64_t total_steps,
      const std::function<absl::StatusOr<MicroResult>(const std::vector<int64_t>&)>& micro);
  absl::StatusOr<TrainingSummary> Train(int64_t num_examples,
      const std::function<absl::StatusOr<MicroResult>(const std::vector<int64_t>&)>& micro,
      const std::function<void(const StepMetrics&)>& on_step);

  LlamaModel model_;
  std::optional<LlamaModel> reference_;
  Communicator* communicator_;
  TrainerOptions options_;
  std::vector<torch::Tensor> parameters_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<GradientSynchronizer> synchronizer_;
  torch::Device device_;
  int64_t step_ = 0;
  int64_t skipped_steps_ = 0;
  int64_t max_steps_this_call_ = 0;
  std::string resumed_from_;  // the checkpoint LoadTrainingState read, for messages
};

// The progress line printed by the commands: step, loss, lr, tokens/s, ETA (and DPO margin, acc).
std::string FormatProgress(const StepMetrics& m, TrainingObjective objective, double tokens_per_second,
                           double eta_seconds);

}  // namespace srlm
