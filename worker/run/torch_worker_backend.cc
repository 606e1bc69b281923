// Implementation of worker/run/torch_worker_backend.h.
#include "worker/run/torch_worker_backend.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/llama_config.h"
#include "worker/model/model_options.h"
#include "worker/run/torch_loop_model.h"
#include "worker/train/atomic_dir.h"
#include "worker/train/examples.h"
#include "worker/train/shared_directory.h"
#include "worker/train/trainer.h"

namespace srlm {

absl::Status TorchWorkerBackend::Configure(const RunConfig& config) {
  config_ = config;
  if (!IsKnownChatTemplate(config.model.chat_template)) {
    return absl::InvalidArgumentError(absl::StrCat("model.chat_template: unknown template '",
                                                   config.model.chat_template, "'"));
  }
  if (communicator_ == nullptr) {
    SRLM_ASSIGN_OR_RETURN(communicator_, MakeCommunicator(options_.communicator, config.model.device));
    if (!options_.checkpoint_root.empty()) {
      SRLM_RETURN_IF_ERROR(CheckDirectorySharedByRanks(options_.checkpoint_root, "--checkpoint-root", *communicator_));
    }
  }
  if (config.model.device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) return absl::FailedPreconditionError("model.device is cuda but no GPU is visible");
    // "cuda" alone: the rank's index on its node picks the GPU, the one its NCCL communicator uses.
    device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(CudaDeviceIndex(
                                              config.model.device, *communicator_,
                                              static_cast<int>(torch::cuda::device_count()))));
  } else {
    device_ = torch::Device(torch::kCPU);
  }
  SRLM_ASSIGN_OR_RETURN(dtype_, ParseDtype(config.model.dtype, device_));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const TokenizerTextEncoder>> TorchWorkerBackend::Encoder(
    const std::string& model_dir) const {
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizer(model_dir));
  SRLM_RETURN_IF_ERROR_CTX(CheckTokenizerFitsChatTemplate(*tokenizer, config_.model.chat_template), model_dir);
  return std::make_shared<const TokenizerTextEncoder>(std::shared_ptr<const Tokenizer>(std::move(tokenizer)),
                                                      config_.model.chat_template);
}

absl::StatusOr<ExampleLimits> TorchWorkerBackend::Limits(const std::string& model_dir) const {
  SRLM_ASSIGN_OR_RETURN(LlamaConfig model, LoadLlamaConfig(model_dir + "/config.json"));
  return LimitsForModel(config_.model.max_seq_len, model.context_length(), model.vocab_size);
}

absl::StatusOr<std::unique_ptr<LoopModel>> TorchWorkerBackend::LoadModel(const std::string& model_dir) {
  SRLM_ASSIGN_OR_RETURN(auto encoder, Encoder(model_dir));
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, srlm::LoadModel(model_dir, device_, dtype_));
  const ExampleLimits limits = LimitsForModel(config_.model.max_seq_len, model->config.context_length(),
                                              model->config.vocab_size);
  if (encoder->tokenizer().vocab_size() > model->config.vocab_size) {
    return absl::FailedPreconditionError(absl::StrCat(
        model_dir, ": the tokenizer has ", encoder->tokenizer().vocab_size(), " tokens but the model's vocab_size is ",
        model->config.vocab_size, ": its ids would be out of range"));
  }
  // Sample and score within the trainer's limit, so that every pair formed can be trained on.
  return std::unique_ptr<LoopModel>(
      new TorchLoopModel(model, encoder, limits.max_seq_len, options_.max_generate_batch));
}

absl::Status TorchWorkerBackend::TrainAndSave(const std::string& model_dir, const std::string& out_dir,
                                              TrainerOptions options, int64_t num_examples,
                                              const std::function<absl::StatusOr<TrainingSummary>(Trainer&)>& train) {
  // Rank 0 writes the checkpoint: find out now, not after the training, that it cannot.
  if (rank() == 0) SRLM_RETURN_IF_ERROR_CTX(CheckDirectoryWritable(out_dir), "checkpoint root");
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, srlm::LoadModel(model_dir, device_, dtype_));
  options.tokenizer_dir = model_dir;
  options.out_dir.clear();  // one checkpoint, at the end, to out_dir
  options.save_optimizer_state = false;  // never read: the next iteration starts a fresh optimizer
  // About 20 progress lines per training on rank 0; every step also goes to the coordinator.
  SRLM_ASSIGN_OR_RETURN(const int64_t total_steps, TotalSteps(options.train, num_examples, options.objective));
  options.log_every = std::max<int64_t>(1, total_steps / 20);
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                        Trainer::Create(model, std::nullopt, communicator_.get(), options));
  if (num_examples == 0) {
    // Nothing to learn from (every judgement tied or failed to parse): M_{t+1} is M_t, written
    // through the same checkpoint path so the iteration still commits.
    SRLM_LOG(WARNING) << "no training examples this iteration: the next model is a copy of " << model_dir;
    return trainer->SaveCheckpoint(out_dir);
  }
  SRLM_ASSIGN_OR_RETURN(TrainingSummary summary, train(*trainer));
  if (summary.skipped_steps > 0) {
    SRLM_LOG(WARNING) << summary.skipped_steps << " step(s) skipped for a non-finite gradient";
  }
  return trainer->SaveCheckpoint(out_dir);
}

namespace {

TrainStepReport ToReport(const StepMetrics& m) {
  TrainStepReport r;
  r.step = m.step;
  r.total_steps = m.total_steps;
  r.loss = m.loss;
  r.tokens = static_cast<int64_t>(m.tokens);
  r.metrics = {{"lr", m.lr}, {"grad_norm", m.grad_norm}, {"skipped", m.skipped ? 1.0 : 0.0},
               {"step_seconds", m.seconds}};
  return r;
}

}  // namespace

absl::Status TorchWorkerBackend::TrainSft(const RunConfig& config, const std::string& model_dir,
                                          const std::string& out_dir, const TrainStepReporter& report) {
  config_ = config;
  SRLM_ASSIGN_OR_RETURN(auto encoder, Encoder(model_dir));
  SRLM_ASSIGN_OR_RETURN(const ExampleLimits limits, Limits(model_dir));
  SRLM_ASSIGN_OR_RETURN(std::vector<SftExample> examples, ReadSftJsonl(config.data.ift, encoder.get(), limits));
  if (!config.data.eft.empty()) {
    SRLM_ASSIGN_OR_RETURN(std::vector<SftExample> eft, ReadSftJsonl(config.data.eft, encoder.get(), limits));
    examples.insert(examples.end(), eft.begin(), eft.end());
  }
  TrainerOptions options;
  options.objective = TrainingObjective::kSft;
  options.train = config.sft;
  options.dpo = config.dpo;
  SRLM_ASSIGN_OR_RETURN(const int64_t total_steps,
                        TotalSteps(options.train, static_cast<int64_t>(examples.size()), options.objective));
  if (rank() == 0) {
    SRLM_LOG(INFO) << "SFT on " << examples.size() << " examples (IFT + EFT), " << total_steps << " steps of "
                   << options.train.batch_size << " over " << world_size() << " rank(s)";
  }
  return TrainAndSave(model_dir, out_dir, options, static_cast<int64_t>(examples.size()), [&](Trainer& t) {
    return t.TrainSft(examples, [&](const StepMetrics& m) { report(ToReport(m)); });
  });
}

absl::Status TorchWorkerBackend::TrainDpo(const RunConfig& config, const std::string& model_dir,
                                          const std::vector<v1::TrainingPair>& rank_pairs, int64_t total_pairs,
                                          const std::string& out_dir, const TrainStepReporter& report) {
  config_ = config;
  SRLM_ASSIGN_OR_RETURN(auto encoder, Encoder(model_dir));
  SRLM_ASSIGN_OR_RETURN(const ExampleLimits limits, Limits(model_dir));
  // The frozen set indexed by position; this rank fills (and the trainer reads) only its residue
  // class p % world_size == rank, the slice the coordinator streamed (trainer.h RankSlice).
  std::vector<PreferenceExample> examples(static_cast<size_t>(std::max<int64_t>(0, total_pairs)));
  for (const v1::TrainingPair& pair : rank_pairs) {
    const int64_t p = pair.position();
    if (p < 0 || p >= total_pairs || p % world_size() != rank()) {
      return absl::InvalidArgumentError(absl::StrCat("pair at position ", p, " of ", total_pairs,
                                                     " is not in rank ", rank(), "'s slice of ", world_size()));
    }
    PreferenceExample& e = examples[static_cast<size_t>(p)];
    SRLM_ASSIGN_OR_RETURN(e.prompt_ids, encoder->EncodePrompt(pair.prompt()));
    SRLM_ASSIGN_OR_RETURN(e.chosen_ids, encoder->EncodeResponse(pair.chosen()));
    SRLM_ASSIGN_OR_RETURN(e.rejected_ids, encoder->EncodeResponse(pair.rejected()));
    e.ref_chosen_logprob = pair.ref_chosen_logprob();
    e.ref_rejected_logprob = pair.ref_rejected_logprob();
    const size_t longest = e.prompt_ids.size() + std::max(e.chosen_ids.size(), e.rejected_ids.size());
    if (limits.max_seq_len > 0 && static_cast<int64_t>(longest) > limits.max_seq_len) {
      return SequenceTooLongError(absl::StrCat("pair of prompt ", pair.prompt_id()), static_cast<int64_t>(longest),
                                  limits.max_seq_len);
    }
  }
  TrainerOptions options;
  options.objective = TrainingObjective::kDpo;
  options.train = config.dpo.train;
  options.dpo = config.dpo;
  return TrainAndSave(model_dir, out_dir, options, total_pairs,
                      [&](Trainer& t) {
                        return t.TrainDpo(examples, [&](const StepMetrics& m) {
                          TrainStepReport r = ToReport(m);
                          r.metrics["reward_margin"] = m.reward_margin;
                          r.metrics["reward_accuracy"] = m.reward_accuracy;
                          report(r);
                        });
                      });
}

}  // namespace srlm
