// Implementation of worker/train/trainer.h.
#include "worker/train/trainer.h"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/int_math.h"
#include "common/logging.h"
#include "common/split_mix64.h"
#include "common/status_macros.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/logprobs.h"
#include "worker/model/out_of_memory.h"
#include "worker/train/atomic_dir.h"

namespace srlm {
namespace {

constexpr char kStateFile[] = "trainer_state.json";
constexpr char kOptimizerFile[] = "optimizer.pt";

// The dropout key of one sequence of an example in a step (keyed_dropout.h): a pure function of
// (seed, step, example, which of its sequences), so the step drops the same units of each example
// whatever the number of ranks and micro-batches, and a resumed run draws what it would have drawn.
uint64_t DropoutKey(int64_t seed, int64_t step, int64_t example, int64_t sequence) {
  return SplitMix64(SplitMix64(SplitMix64(SplitMix64(static_cast<uint64_t>(seed)) ^ static_cast<uint64_t>(step)) ^
                               static_cast<uint64_t>(example)) ^
                    static_cast<uint64_t>(sequence));
}

// Right-padded batch of prompt+response sequences; response_mask marks the response positions.
struct PaddedBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor response_mask;   // (B, T) int64, 1 = a response token (a loss target)
  torch::Tensor response_tokens; // (B) float32, response lengths
  std::vector<int64_t> lengths;  // real tokens of each row
  double total_tokens = 0;
};

PaddedBatch MakeBatch(const std::vector<std::pair<const TokenIds*, const TokenIds*>>& sequences,
                      const torch::Device& device) {
  int64_t max_len = 0;
  for (const auto& [prompt, response] : sequences) {
    max_len = std::max<int64_t>(max_len, prompt->size() + response->size());
  }
  const int64_t batch = static_cast<int64_t>(sequences.size());
  torch::Tensor ids = torch::zeros({batch, max_len}, torch::kInt64);
  torch::Tensor attention = torch::zeros({batch, max_len}, torch::kInt64);
  torch::Tensor response = torch::zeros({batch, max_len}, torch::kInt64);
  torch::Tensor response_lengths = torch::zeros({batch}, torch::kFloat32);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto attention_a = attention.accessor<int64_t, 2>();
  auto response_a = response.accessor<int64_t, 2>();
  PaddedBatch out;
  for (int64_t b = 0; b < batch; ++b) {
    const TokenIds& p = *sequences[b].first;
    const TokenIds& r = *sequences[b].second;
    int64_t t = 0;
    for (int32_t id : p) { ids_a[b][t] = id; attention_a[b][t++] = 1; }
    for (int32_t id : r) { ids_a[b][t] = id; attention_a[b][t] = 1; response_a[b][t++] = 1; }
    response_lengths[b] = static_cast<float>(r.size());
    out.lengths.push_back(t);
    out.total_tokens += static_cast<double>(t);
  }
  out.input_ids = ids.to(device);
  out.attention_mask = attention.to(device);
  out.response_mask = response.to(device);
  out.response_tokens = response_lengths.to(device);
  return out;
}

// Keys the model's dropout for one micro-batch whose rows hold `sequences` sequences of each
// example of `idx`, one sequence at a time: row r is sequence r / idx.size() of example
// idx[r % idx.size()] (SFT: the example's only sequence; DPO: the chosen ones, then the rejected).
void SetDropoutRows(LlamaModel& model, int64_t seed, int64_t step, const std::vector<int64_t>& idx, int64_t sequences,
                    const PaddedBatch& batch) {
  DropoutRows rows;
  const int64_t n = static_cast<int64_t>(idx.size());
  for (int64_t r = 0; r < sequences * n; ++r) rows.keys.push_back(DropoutKey(seed, step, idx[r % n], r / n));
  rows.lengths = batch.lengths;
  model->set_dropout_rows(std::move(rows));
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> TotalSteps(const TrainConfig& config, int64_t num_examples, TrainingObjective objective) {
  const std::string section = objective == TrainingObjective::kSft ? "sft" : "dpo";
  if (config.steps < 0 || config.steps > kMaxTrainingSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(section, ".steps is ", config.steps, ": expected an integer in [0, ", kMaxTrainingSteps, "]"));
  }
  if (config.steps > 0) return config.steps;
  if (config.epochs <= 0 || config.batch_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(section, ".epochs (", config.epochs, ") and ", section,
                                                   ".batch_size (", config.batch_size, ") must be > 0"));
  }
  const int64_t per_epoch = CeilDiv(std::max<int64_t>(0, num_examples), config.batch_size);
  if (per_epoch > kMaxTrainingSteps / config.epochs) {
    return absl::InvalidArgumentError(absl::StrCat(
        section, ".epochs (", config.epochs, ") x ", per_epoch, " batches per epoch (", num_examples,
        " examples in batches of ", config.batch_size, ") is over the limit of ", kMaxTrainingSteps,
        " steps: lower ", section, ".epochs, raise ", section, ".batch_size, or give ", section, ".steps"));
  }
  return config.epochs * per_epoch;
}

std::vector<int64_t> GlobalBatchIndices(int64_t step, int64_t num_examples, int64_t batch_size, int64_t seed) {
  const int64_t per_epoch = CeilDiv(num_examples, batch_size);
  const int64_t epoch = step / per_epoch;
  const int64_t within = step % per_epoch;
  std::vector<int64_t> order(num_examples);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(SplitMix64(static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(epoch)));
  // Fisher-Yates with our own index draw: std::shuffle's draws differ between standard libraries.
  for (int64_t i = num_examples - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  const int64_t begin = within * batch_size;  // < num_examples: within < per_epoch
  const int64_t end = begin + std::min(batch_size, num_examples - begin);
  return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
}

std::vector<int64_t> RankSlice(const std::vector<int64_t>& global, int rank, int world_size) {
  std::vector<int64_t> mine;
  for (int64_t index : global) {
    if (index % world_size == rank) mine.push_back(index);
  }
  return mine;
}

Trainer::Trainer(LlamaModel model, std::optional<LlamaModel> reference, Communicator* communicator,
                 TrainerOptions options)
    : model_(std::move(model)), reference_(std::move(reference)), communicator_(communicator),
      options_(std::move(options)), device_(torch::kCPU) {}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(LlamaModel model, std::optional<LlamaModel> reference,
                                                         Communicator* communicator, TrainerOptions options) {
  SRLM_RETURN_IF_ERROR(ParseLrScheduleKind(options.train.lr_schedule).status());
  SRLM_RETURN_IF_ERROR(ParseDpoLossKind(options.dpo.loss).status());
  if (options.train.batch_size <= 0 || options.train.micro_batch_size <= 0) {
    return absl::InvalidArgumentError("batch_size and micro_batch_size must be > 0");
  }
  // The reference scores the policy's token ids: with another vocabulary a step failed half-way
  // ("index out of range") or, with a larger one, scored other tokens without a word.
  if (reference.has_value() && (*reference)->config.vocab_size != model->config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("the reference model's vocab_size (", (*reference)->config.vocab_size,
                                                   ") differs from the policy's (", model->config.vocab_size,
                                                   "): the reference must share the policy's vocabulary"));
  }
  std::unique_ptr<Trainer> t(new Trainer(std::move(model), std::move(reference), communicator, std::move(options)));
  try {
    NamedParameters named;
    for (auto& item : t->model_->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      named.emplace_back(item.key(), item.value());
      t->parameters_.push_back(item.value());
    }
    if (named.empty()) return absl::InvalidArgumentError("the model has no trainable parameters");
    t->device_ = named.front().second.device();
    // Every rank starts from rank 0's weights (they load the same files; this makes it certain).
    // Before the optimizer: its float32 master copy (bfloat16 models) is taken from the parameters,
    // and its first step writes that copy back over them.
    if (communicator->world_size() > 1) {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& p : t->parameters_) {
        torch::Tensor buffer = p.detach().to(torch::kFloat32).contiguous();
        SRLM_RETURN_IF_ERROR(communicator->Broadcast(buffer, 0));
        p.copy_(buffer);
      }
    }
    t->optimizer_ = std::make_unique<AdamW>(
        named, AdamWOptions{t->options_.adam_beta1, t->options_.adam_beta2, t->options_.adam_eps,
                            t->options_.train.weight_decay});
    t->synchronizer_ = std::make_unique<GradientSynchronizer>(t->parameters_, communicator, t->options_.bucket_bytes);
    if (t->reference_.has_value()) {
      (*t->reference_)->eval();
      for (auto& p : (*t->reference_)->parameters()) p.set_requires_grad(false);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("creating the trainer: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("creating the trainer: ", e.what()));
  }
  return t;
}

absl::StatusOr<Trainer::MicroResult> Trainer::SftMicroStep(const std::vector<SftExample>& examples,
                                                          const std::vector<int64_t>& idx) {
  std::vector<std::pair<const TokenIds*, const TokenIds*>> seqs;
  for (int64_t i : idx) seqs.emplace_back(&examples[i].prompt_ids, &examples[i].response_ids);
  PaddedBatch batch = MakeBatch(seqs, device_);
  SetDropoutRows(model_, options_.train.seed, step_, idx, 1, batch);
  torch::Tensor logprobs = SequenceLogprobs(model_, batch.input_ids, batch.attention_mask, batch.response_mask);
  torch::Tensor loss_sum = SftLossSum(logprobs);
  loss_sum.backward();
  MicroResult r;
  r.weight = batch.response_tokens.sum().item<double>();
  r.tokens = batch.total_tokens;
  r.loss_sum = loss_sum.item<double>();
  return r;
}

absl::StatusOr<Trainer::MicroResult> Trainer::DpoMicroStep(const std::vector<PreferenceExample>& examples,
                                                          const std::vector<int64_t>& idx) {
  const int64_t n = static_cast<int64_t>(idx.size());
  // One forward over 2n sequences: the chosen responses, then the rejected ones.
  std::vector<std::pair<const TokenIds*, const TokenIds*>> seqs;
  for (int64_t i : idx) seqs.emplace_back(&examples[i].prompt_ids, &examples[i].chosen_ids);
  for (int64_t i : idx) seqs.emplace_back(&examples[i].prompt_ids, &examples[i].rejected_ids);
  PaddedBatch batch = MakeBatch(seqs, device_);
  SetDropoutRows(model_, options_.train.seed, step_, idx, 2, batch);

  bool all_precomputed = true;
  for (int64_t i : idx) all_precomputed = all_precomputed && examples[i].ref_chosen_logprob.has_value();
  torch::Tensor ref;
  if (all_precomputed) {
    std::vector<double> values(2 * n);
    for (int64_t k = 0; k < n; ++k) {
      values[k] = *examples[idx[k]].ref_chosen_logprob;
      values[n + k] = *examples[idx[k]].ref_rejected_logprob;
    }
    ref = torch::tensor(values, torch::kFloat64).to(torch::kFloat32).to(device_);
  } else {
    if (!reference_.has_value()) {
      return absl::FailedPreconditionError(
          "a preference pair has no precomputed reference log-probabilities and no reference model was given");
    }
    torch::NoGradGuard no_grad;
    ref = SequenceLogprobs(*reference_, batch.input_ids, batch.attention_mask, batch.response_mask)
              .to(torch::kFloat32);
  }
  torch::Tensor policy = SequenceLogprobs(model_, batch.input_ids, batch.attention_mask, batch.response_mask)
                             .to(torch::kFloat32);
  if (options_.dpo.length_normalize) {
    policy = policy / batch.response_tokens;
    ref = ref / batch.response_tokens;
  }
  DpoLossOptions loss_options{*ParseDpoLossKind(options_.dpo.loss), options_.dpo.beta, options_.dpo.label_smoothing};
  DpoLossOutput out = DpoLoss(policy.narrow(0, 0, n), policy.narrow(0, n, n), ref.narrow(0, 0, n),
                              ref.narrow(0, n, n), loss_options);
  torch::Tensor loss_sum = out.losses.sum();
  loss_sum.backward();
  MicroResult r;
  r.weight = static_cast<double>(n);
  r.tokens = batch.total_tokens;
  r.loss_sum = loss_sum.item<double>();
  r.chosen_reward_sum = out.chosen_rewards.sum().item<double>();
  r.rejected_reward_sum = out.rejected_rewards.sum().item<double>();
  r.correct = (out.chosen_rewards > out.rejected_rewards).sum().item<double>();
  return r;
}

absl::StatusOr<StepMetrics> Trainer::Step(
    int64_t num_examples, int64_t total_steps,
    const std::function<absl::StatusOr<MicroResult>(const std::vector<int64_t>&)>& micro) {
  const auto start = std::chrono::steady_clock::now();
  const TrainConfig& cfg = options_.train;
  LrSchedule schedule{*ParseLrScheduleKind(cfg.lr_schedule), cfg.lr, cfg.min_lr, cfg.warmup_steps, total_steps};
  StepMetrics m;
  m.total_steps = total_steps;
  m.lr = schedule.At(step_);

  // 1. This rank's part of the global batch, in micro-batches; gradients accumulate.
  const std::vector<int64_t> mine =
      RankSlice(GlobalBatchIndices(step_, num_examples, cfg.batch_size, cfg.seed), communicator_->rank(),
                communicator_->world_size());
  for (torch::Tensor& p : parameters_) p.mutable_grad() = torch::Tensor();
  model_->train();
  model_->set_dropout(cfg.dropout);
  MicroResult local;
  for (size_t begin = 0; begin < mine.size(); begin += cfg.micro_batch_size) {
    const std::vector<int64_t> chunk(mine.begin() + begin,
                                     mine.begin() + std::min(mine.size(), begin + cfg.micro_batch_size));
    SRLM_ASSIGN_OR_RETURN(MicroResult r, micro(chunk));
    local.weight += r.weight;
    local.tokens += r.tokens;
    local.loss_sum += r.loss_sum;
    local.chosen_reward_sum += r.chosen_reward_sum;
    local.rejected_reward_sum += r.rejected_reward_sum;
    local.correct += r.correct;
  }

  // 2. All-reduce (and the non-finite vote), 3. clip, 4. update.
  std::vector<double> sums = {local.loss_sum, local.tokens, local.chosen_reward_sum, local.rejected_reward_sum,
                              local.correct, static_cast<double>(mine.size())};
  SRLM_ASSIGN_OR_RETURN(GradSyncResult sync, synchronizer_->Synchronize(local.weight, &sums));
  m.allreduce_seconds = sync.allreduce_seconds;
  m.skipped = sync.skipped;
  m.examples = sums[5];
  m.tokens = sums[1];
  m.loss = sync.global_weight > 0 ? sums[0] / sync.global_weight : 0;
  if (m.examples > 0) {
    m.chosen_reward = sums[2] / m.examples;
    m.rejected_reward = sums[3] / m.examples;
    m.reward_margin = m.chosen_reward - m.rejected_reward;
    m.reward_accuracy = sums[4] / m.examples;
  }
  if (sync.skipped) {
    ++skipped_steps_;
    SRLM_LOG(WARNING) << "step " << step_ + 1 << ": non-finite gradient on some rank; every rank skips it ("
                      << skipped_steps_ << " skipped so far)";
  } else {
    m.grad_norm = ClipGradNorm(parameters_, cfg.max_grad_norm);
    optimizer_->Step(m.lr);
  }
  ++step_;
  m.step = step_;
  // On a GPU the optimizer's kernels are still queued: the step ends when they have run.
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

absl::StatusOr<TrainingSummary> Trainer::Train(
    int64_t num_examples, const std::function<absl::StatusOr<MicroResult>(const std::vector<int64_t>&)>& micro,
    const std::function<void(const StepMetrics&)>& on_step) {
  if (num_examples <= 0) return absl::InvalidArgumentError("no training examples");
  SRLM_ASSIGN_OR_RETURN(const int64_t total, TotalSteps(options_.train, num_examples, options_.objective));
  // A checkpoint past this run's end was written by a run with other settings (more steps or
  // epochs, a smaller batch, more data): calling this run done would claim steps it never had.
  if (step_ > total) {
    const std::string section = options_.objective == TrainingObjective::kSft ? "sft" : "dpo";
    return absl::FailedPreconditionError(absl::StrCat(
        resumed_from_.empty() ? "the trainer" : resumed_from_, " is at step ", step_, ", past this run's ", total,
        " steps (", section, ".steps, or ", section, ".epochs over ", num_examples, " examples in batches of ",
        options_.train.batch_size, "): resume with the settings and data of the run that wrote it, or train into "
        "another output folder"));
  }
  TrainingSummary summary;
  const auto start = std::chrono::steady_clock::now();
  double tokens = 0;
  try {
    while (step_ < total && (max_steps_this_call_ <= 0 || summary.steps_done < max_steps_this_call_)) {
      SRLM_ASSIGN_OR_RETURN(StepMetrics m, Step(num_examples, total, micro));
      ++summary.steps_done;
      tokens += m.tokens;
      summary.history.push_back(m);
      if (on_step) on_step(m);
      if (communicator_->rank() == 0 && options_.log_every > 0 &&
          (m.step % options_.log_every == 0 || m.step == total)) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = elapsed / summary.steps_done * static_cast<double>(total - step_);
        SRLM_LOG(INFO) << FormatProgress(m, options_.objective, tokens / std::max(1e-9, elapsed), eta);
      }
      // Every save_every steps, and where this call ends (the last step, or --stop-after): once each.
      const bool call_ends = step_ == total || summary.steps_done == max_steps_this_call_;
      if (!options_.out_dir.empty() &&
          (call_ends || (options_.save_every > 0 && step_ % options_.save_every == 0))) {
        SRLM_RETURN_IF_ERROR(SaveCheckpoint(CheckpointDir(options_.out_dir, step_)));
      }
    }
  } catch (const c10::Error& e) {
    if (IsOutOfMemory(e)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "training step ", step_ + 1, " ran out of memory with micro-batches of ", options_.train.micro_batch_size,
          " examples: lower the micro-batch (sft.micro_batch_size or dpo.micro_batch_size in the run "
          "configuration, --micro-batch-size for srlm-worker sft/dpo; the global batch stays, and so do the "
          "trained weights up to rounding, dropout included) or "
          "model.max_seq_len: ",
          e.what_without_backtrace()));
    }
    return absl::InternalError(absl::StrCat("training step ", step_ + 1, ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {  // libtorch also throws std::runtime_error (a scalar that overflows float)
    return absl::InternalError(absl::StrCat("training step ", step_ + 1, ": ", e.what()));
  }
  summary.skipped_steps = skipped_steps_;
  max_steps_this_call_ = 0;
  return summary;
}

absl::StatusOr<TrainingSummary> Trainer::TrainSft(const std::vector<SftExample>& examples,
                                                  const std::function<void(const StepMetrics&)>& on_step) {
  options_.objective = TrainingObjective::kSft;
  return Train(static_cast<int64_t>(examples.size()),
               [&](const std::vector<int64_t>& idx) { return SftMicroStep(examples, idx); }, on_step);
}

absl::StatusOr<TrainingSummary> Trainer::TrainDpo(const std::vector<PreferenceExample>& examples,
                                                  const std::function<void(const StepMetrics&)>& on_step) {
  options_.objective = TrainingObjective::kDpo;
  return Train(static_cast<int64_t>(examples.size()),
               [&](const std::vector<int64_t>& idx) { return DpoMicroStep(examples, idx); }, on_step);
}

absl::Status Trainer::SaveCheckpoint(const std::string& dir) {
  absl::Status status = absl::OkStatus();
  if (communicator_->rank() == 0) {
    // Weights that are no longer finite (a learning rate too large for the data, say) make a model
    // that loads and writes only garbage; nothing is written, and the error says so.
    for (const auto& item : model_->named_parameters()) {
      if (!torch::isfinite(item.value()).all().item<bool>()) {
        status = absl::FailedPreconditionError(absl::StrCat(
            "after step ", step_, " parameter ", item.key(), " holds non-finite values (the learning rate or the "
            "data made training diverge): ", dir, " is not written"));
        break;
      }
    }
    if (status.ok()) status = WriteDirectoryAtomically(dir, [&](const std::string& tmp) -> absl::Status {
      SaveModelOptions save_options;
      save_options.tokenizer_source_dir = options_.tokenizer_dir;
      SRLM_RETURN_IF_ERROR(SaveModel(model_, tmp, save_options));
      if (options_.save_optimizer_state) SRLM_RETURN_IF_ERROR(optimizer_->Save(tmp + "/" + kOptimizerFile));
      // Test hook: die here, with the weights written but the checkpoint not complete.
      if (const char* crash = std::getenv("SRLM_TEST_CRASH_DURING_CHECKPOINT");
          crash != nullptr && std::atoll(crash) == step_) {
        std::raise(SIGKILL);
      }
      nlohmann::json state = {
          {"step", step_},
          {"skipped_steps", skipped_steps_},
          {"objective", options_.objective == TrainingObjective::kSft ? "sft" : "dpo"},
          {"seed", options_.train.seed},
          {"batch_size", options_.train.batch_size},
          {"world_size", communicator_->world_size()},
          {"optimizer_state", options_.save_optimizer_state},
          {"rng", "dropout is keyed per (seed, step, example, sequence); data order per (seed, epoch)"},
      };
      return WriteTextFile(tmp + "/" + kStateFile, state.dump(2) + "\n");  // last: marks it whole
    });
    if (status.ok()) SRLM_LOG(INFO) << "checkpoint written: " << dir;
  }
  std::vector<double> failed = {status.ok() ? 0.0 : 1.0};
  SRLM_RETURN_IF_ERROR(communicator_->AllReduceMaxHost(&failed));
  if (!status.ok()) return status;
  if (failed[0] > 0) return absl::InternalError(absl::StrCat("rank 0 failed to write checkpoint ", dir));
  return absl::OkStatus();
}

absl::Status Trainer::LoadTrainingState(const std::string& dir) {
  const std::string path = dir + "/" + kStateFile;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(dir, " holds no ", kStateFile, ": not a whole checkpoint"));
  const nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
  if (state.is_discarded() || !state.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not valid: expected a JSON object"));
  }
  // Every field is checked before anything is taken from it: a step of -5 indexed the data order
  // out of bounds (a crash), one past the run's end made it "done" without training, a string
  // threw from the JSON library.
  auto bad = [&](const std::string& field, const std::string& expected) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": field '", field, "' is ", state[field].dump(),
                                                   ": expected ", expected));
  };
  auto integer = [&](const std::string& field, int64_t min, int64_t max, int64_t* out) -> absl::Status {
    const nlohmann::json& v = state[field];
    // Read wide, then range-check: get<int64_t> would wrap 2^64 - 1 to -1 and truncate 1.5 to 1.
    bool fits = false;
    int64_t value = 0;
    if (v.is_number_unsigned()) {
      fits = v.get<uint64_t>() <= static_cast<uint64_t>(max);
      value = fits ? static_cast<int64_t>(v.get<uint64_t>()) : 0;
    } else if (v.is_number_integer()) {
      fits = true;
      value = v.get<int64_t>();
    }
    if (!fits || value < min || value > max) return bad(field, absl::StrCat("an integer in [", min, ", ", max, "]"));
    *out = value;
    return absl::OkStatus();
  };
  if (!state.contains("step")) return absl::InvalidArgumentError(absl::StrCat(path, ": field 'step' is missing"));
  int64_t step = 0;
  SRLM_RETURN_IF_ERROR(integer("step", 0, kMaxTrainingSteps, &step));
  // The folder is named after its step (checkpoint-<step>), and --resume chose it by that name.
  const std::string base = dir.substr(dir.find_last_of('/') + 1);
  int64_t named_step = 0;
  if (base.rfind("checkpoint-", 0) == 0 && absl::SimpleAtoi(base.substr(11), &named_step) && named_step != step) {
    return bad("step", absl::StrCat(named_step, ", the step in the folder's name"));
  }
  int64_t skipped = 0;
  if (state.contains("skipped_steps")) SRLM_RETURN_IF_ERROR(integer("skipped_steps", 0, step, &skipped));
  const std::string objective = options_.objective == TrainingObjective::kSft ? "sft" : "dpo";
  if (state.contains("objective") && state["objective"] != objective) {
    return bad("objective", absl::StrCat("\"", objective, "\" (this trains ", objective,
                                         ": a checkpoint of the other objective can be the start model of a new "
                                         "run, not resumed)"));
  }
  int64_t batch_size = options_.train.batch_size, seed = options_.train.seed, world_size = 1;
  if (state.contains("batch_size")) SRLM_RETURN_IF_ERROR(integer("batch_size", 1, kMaxBatchSize, &batch_size));
  if (state.contains("seed")) {
    SRLM_RETURN_IF_ERROR(integer("seed", 0, std::numeric_limits<int64_t>::max(), &seed));
  }
  if (state.contains("world_size")) {
    SRLM_RETURN_IF_ERROR(integer("world_size", 1, std::numeric_limits<int>::max(), &world_size));
  }
  if (state.contains("optimizer_state") && !state["optimizer_state"].is_boolean()) {
    return bad("optimizer_state", "true or false");
  }
  if (!state.value("optimizer_state", true)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " holds no optimizer state (a loop checkpoint): it can "
                                                      "start a training, not resume one"));
  }
  if (batch_size != options_.train.batch_size || seed != options_.train.seed) {
    SRLM_LOG(WARNING) << "resuming " << dir << " with a different batch size or seed: the data order changes";
  }
  SRLM_RETURN_IF_ERROR(optimizer_->Load(dir + "/" + kOptimizerFile));
  // The optimizer counts the updates it made: every step but the skipped ones (non-finite gradients).
  if (optimizer_->step_count() != step - skipped) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, "/", kOptimizerFile, ": step_count is ", optimizer_->step_count(), " but ", path, " says step ", step,
        " with ", skipped, " skipped, i.e. ", step - skipped, " updates: the files are not of one checkpoint"));
  }
  step_ = step;
  skipped_steps_ = skipped;
  resumed_from_ = dir;
  return absl::OkStatus();
}

std::string FormatProgress(const StepMetrics& m, TrainingObjective objective, double tokens_per_second,
                           double eta_seconds) {
  std::string line = absl::StrFormat("step %d/%d loss %.4f", m.step, m.total_steps, m.loss);
  if (objective == TrainingObjective::kDpo) {
    absl::StrAppendFormat(&line, " margin %.4f acc %.3f", m.reward_margin, m.reward_accuracy);
  }
  absl::StrAppendFormat(&line, " lr %.3g grad_norm %.3f tok/s %.0f eta %.0fs", m.lr, m.grad_norm, tokens_per_second,
                        eta_seconds);
  if (m.skipped) line += " SKIPPED(non-finite)";
  return line;
}

}  // namespace srlm
