// Implementation of worker/train/train_command.h.
#include "worker/train/train_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/cli_checks.h"
#include "common/logging.h"
#include "common/progress_watchdog.h"
#include "common/run_config.h"
#include "common/status_macros.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/model_options.h"
#include "worker/train/atomic_dir.h"
#include "worker/train/communicator.h"
#include "worker/train/mpi_communicator.h"
#include "worker/train/shared_directory.h"
#include "worker/train/text_encoder.h"
#include "worker/train/trainer.h"

namespace srlm {
namespace {

struct CommandFlags {
  std::string config_path, model, ref_model, data, out, communicator = "auto";
  bool resume = false;
  int64_t save_every = 0, stop_after = 0;
  double stall_seconds = 1800;  // longer than one model load, one step or one checkpoint write
  // Values of the overriding flags; applied only when given.
  TrainConfig train;
  DpoConfig dpo;
  ModelConfig model_config;
};

absl::Status RunTrainCommand(const CommandFlags& flags, const std::vector<std::function<void(RunConfig&)>>& overrides,
                             TrainingObjective objective) {
  RunConfig config;
  if (!flags.config_path.empty()) {
    SRLM_ASSIGN_OR_RETURN(config, LoadRunConfig(flags.config_path));
  }
  for (const auto& apply : overrides) apply(config);
  SRLM_RETURN_IF_ERROR_CTX(ValidateRunConfig(config), "flags");
  const bool sft = objective == TrainingObjective::kSft;
  if (flags.model.empty() && config.model.path.empty()) return absl::InvalidArgumentError("--model is required");
  const std::string model_dir = flags.model.empty() ? config.model.path : flags.model;
  // SFT without --data trains on the configuration's IFT and EFT data, as the loop's SFT phase does.
  std::vector<std::string> data_paths;
  if (!flags.data.empty()) {
    data_paths.push_back(flags.data);
  } else if (sft && !config.data.ift.empty()) {
    data_paths.push_back(config.data.ift);
    if (!config.data.eft.empty()) data_paths.push_back(config.data.eft);
  }
  if (data_paths.empty()) return absl::InvalidArgumentError("--data is required");
  // The trained model is written only under --out: without it a whole run would be thrown away.
  if (flags.out.empty()) {
    return absl::InvalidArgumentError("--out is required: the trained model goes to <out>/checkpoint-<step>");
  }

  // A rank stuck in a collective (another rank hung: a GPU, a file system) would hang the job for
  // ever: with no progress for --stall-seconds, the watchdog ends it (exit code 75; --resume goes on).
  ProgressWatchdog watchdog(flags.stall_seconds, mpi::AbortStalledJob);
  watchdog.WaitForOthers("setting up the communicator (collective: waits for every rank)");
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, MakeCommunicator(flags.communicator, config.model.device));
  SetLogIdentity("worker", comm->rank());
  // Rank 0 writes the checkpoints and every rank resumes from them: a --out that cannot take them, or
  // that some rank does not see, fails now, not after the training.
  watchdog.WaitForOthers("checking that --out is shared by every rank (collective)");
  SRLM_RETURN_IF_ERROR(CheckDirectorySharedByRanks(flags.out, "--out", *comm));
  // Test hook: this rank alone fails here, while the others go on into collectives.
  if (const char* rank = std::getenv("SRLM_TEST_FAIL_RANK"); rank != nullptr && std::atoi(rank) == comm->rank()) {
    return absl::InternalError("SRLM_TEST_FAIL_RANK: this rank fails on purpose");
  }

  // "cuda" alone: the rank's index on its node picks the GPU, the one its NCCL communicator uses.
  const bool cuda = config.model.device.rfind("cuda", 0) == 0;
  const int visible_gpus = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  const torch::Device device =
      cuda && visible_gpus > 0
          ? torch::Device(torch::kCUDA,
                          static_cast<c10::DeviceIndex>(CudaDeviceIndex(config.model.device, *comm, visible_gpus)))
          : torch::Device(config.model.device);
  SRLM_LOG(INFO) << "rank " << comm->rank() << " (local " << comm->local_rank() << ") of " << comm->world_size()
                 << " on " << device.str();
  SRLM_ASSIGN_OR_RETURN(torch::ScalarType dtype, ParseDtype(config.model.dtype, device));

  // The newest whole checkpoint under --out, rank 0's choice on every rank. --resume goes on from it.
  // Without --resume a folder that holds one is refused: this run's checkpoints would mix with the
  // earlier run's, and a later --resume could take up that run's newer one.
  watchdog.WaitForOthers("looking for checkpoints under --out (collective)");
  SRLM_ASSIGN_OR_RETURN(std::optional<std::string> latest,
                        AgreeOnResumeCheckpoint(flags.out, "trainer_state.json", *comm));
  if (latest.has_value() && !flags.resume) {
    return absl::FailedPreconditionError(absl::StrCat("--out ", flags.out, " already holds a checkpoint of a run (",
                                                      *latest, "): pass --resume to go on with that run, or choose "
                                                      "another --out"));
  }
  const std::optional<std::string> resume_dir = flags.resume ? latest : std::nullopt;
  watchdog.Progress(absl::StrCat("loading model ", resume_dir.value_or(model_dir)));
  // Test hook: this rank's model load hangs, as on a hung file system, while the others go on.
  HangIfTestStallRank(comm->rank(), "model load");
  SRLM_ASSIGN_OR_RETURN(LlamaModel model, LoadModel(resume_dir.value_or(model_dir), device, dtype));

  // Data: token ids, or text through the model's tokenizer when it has one (one that is there but
  // does not load is an error, not "no tokenizer").
  std::unique_ptr<TokenizerTextEncoder> encoder;
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadTokenizerIfPresent(model_dir));
  if (tokenizer != nullptr) {
    SRLM_RETURN_IF_ERROR_CTX(CheckTokenizerFitsChatTemplate(*tokenizer, config.model.chat_template), model_dir);
    encoder = std::make_unique<TokenizerTextEncoder>(std::shared_ptr<const Tokenizer>(std::move(tokenizer)),
                                                     config.model.chat_template);
  }
  const ExampleLimits limits = LimitsForModel(config.model.max_seq_len, model->config.context_length(),
                                              model->config.vocab_size);
  std::vector<SftExample> sft_examples;
  std::vector<PreferenceExample> pairs;
  for (const std::string& data_path : data_paths) {
    watchdog.Progress(absl::StrCat("reading ", data_path));
    if (sft) {
      SRLM_ASSIGN_OR_RETURN(std::vector<SftExample> read, ReadSftJsonl(data_path, encoder.get(), limits));
      sft_examples.insert(sft_examples.end(), read.begin(), read.end());
    } else {
      SRLM_ASSIGN_OR_RETURN(pairs, ReadPreferenceJsonl(data_path, encoder.get(), limits));
    }
  }
  std::optional<LlamaModel> reference;
  bool need_reference = false;
  for (const PreferenceExample& p : pairs) need_reference = need_reference || !p.ref_chosen_logprob.has_value();
  if (need_reference) {
    const std::string ref_dir = flags.ref_model.empty() ? model_dir : flags.ref_model;
    watchdog.Progress(absl::StrCat("loading reference model ", ref_dir));
    SRLM_ASSIGN_OR_RETURN(LlamaModel ref, LoadModel(ref_dir, device, dtype));
    // The reference scores the policy's token ids: another vocabulary failed in the first step
    // ("index out of range") or, larger, was taken without a word.
    if (ref->config.vocab_size != model->config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the reference model ", ref_dir, " (--ref-model) has vocab_size ", ref->config.vocab_size,
          " but the policy ", resume_dir.value_or(model_dir), " has ", model->config.vocab_size,
          ": the reference must share the policy's vocabulary"));
    }
    reference = ref;
  }

  TrainerOptions options;
  options.objective = objective;
  options.train = sft ? config.sft : config.dpo.train;
  options.dpo = config.dpo;
  options.out_dir = flags.out;
  options.save_every = flags.save_every;
  options.tokenizer_dir = model_dir;
  watchdog.WaitForOthers("setting up the trainer (collective: rank 0's weights go to every rank)");
  SRLM_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                        Trainer::Create(model, std::move(reference), comm.get(), options));
  if (resume_dir.has_value()) {
    SRLM_RETURN_IF_ERROR(trainer->LoadTrainingState(*resume_dir));
    if (comm->rank() == 0) SRLM_LOG(INFO) << "resumed from " << *resume_dir << " at step " << trainer->step();
  }
  const int64_t num_examples = static_cast<int64_t>(sft ? sft_examples.size() : pairs.size());
  SRLM_ASSIGN_OR_RETURN(const int64_t total_steps, TotalSteps(options.train, num_examples, objective));
  if (comm->rank() == 0) {
    SRLM_LOG(INFO) << (sft ? "sft" : "dpo") << ": " << num_examples << " examples, " << total_steps
                   << " steps, global batch " << options.train.batch_size
                   << ", " << comm->world_size() << " rank(s) over " << comm->backend_name();
  }
  trainer->set_max_steps_this_call(flags.stop_after);
  watchdog.Progress("the first training step (collective)");
  auto on_step = [&](const StepMetrics& m) {
    watchdog.Progress(absl::StrCat("step ", m.step, " of ", m.total_steps, " done (training, or writing a checkpoint)"));
  };
  // The trainer writes the checkpoints: every --save-every steps and where this call ends.
  SRLM_ASSIGN_OR_RETURN(TrainingSummary summary,
                        sft ? trainer->TrainSft(sft_examples, on_step) : trainer->TrainDpo(pairs, on_step));
  if (comm->rank() == 0) {
    SRLM_LOG(INFO) << "done: step " << trainer->step() << ", " << summary.skipped_steps << " skipped step(s)";
  }
  return absl::OkStatus();
}

// The folders of `path` that do not exist yet, deepest first ("a/b/c" where only "a" exists: a/b/c,
// a/b): what this run's mkdir -p of --out will make.
std::vector<std::string> MissingDirs(std::string path) {
  std::vector<std::string> missing;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  struct stat st;
  while (!path.empty() && path != "/" && path != "." && ::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    missing.push_back(path);
    const size_t slash = path.find_last_of('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
  }
  return missing;
}

// A flag that, when given, overrides the configuration key `field` points at. A number's text is
// checked as a number of the key's type (CLI11 alone read "" as 0 and clamped 99999999999999999999
// to INT64_MAX); its range is the key's, checked by ValidateRunConfig with the key's name.
template <typename T>
CLI::Option* AddKeyFlag(CLI::App* cmd, std::vector<std::function<void(RunConfig&)>>* overrides,
                        const std::string& flag, std::function<T*(RunConfig&)> field, const std::string& help) {
  auto value = std::make_shared<T>();
  CLI::Option* opt = cmd->add_option(flag, *value, help);
  if constexpr (std::is_same_v<T, int64_t>) opt->check(Integer());
  if constexpr (std::is_same_v<T, double>) opt->check(FiniteNumber());
  overrides->push_back([opt, value, field](RunConfig& c) {
    if (opt->count() > 0) *field(c) = *value;
  });
  return opt;
}

}  // namespace

void RegisterTrainCommand(CLI::App& app, TrainingObjective objective) {
  const bool sft = objective == TrainingObjective::kSft;
  CLI::App* cmd = app.add_subcommand(
      sft ? "sft" : "dpo",
      sft ? "Supervised fine-tuning on JSONL (prompt, response or prompt_ids, response_ids); alone or under mpirun"
          : "DPO on JSONL pairs (prompt, chosen, rejected or *_ids, optional ref_*_logprob); alone or under mpirun");
  auto flags = std::make_shared<CommandFlags>();
  auto overrides = std::make_shared<std::vector<std::function<void(RunConfig&)>>>();
  const std::string section = sft ? "sft" : "dpo";
  // A flag that, when given, overrides config key <section>.<key>; --micro-batch-size stands for
  // the key micro_batch_size.
  auto train_field = [&](const std::string& flag, auto member, const std::string& help) {
    using T = std::remove_reference_t<decltype(flags->train.*member)>;
    const std::string key = absl::StrReplaceAll(flag.substr(2), {{"-", "_"}});
    AddKeyFlag<T>(
        cmd, overrides.get(), flag, [member, sft](RunConfig& c) { return &((sft ? c.sft : c.dpo.train).*member); },
        help + " (YAML " + section + "." + key + ")");
  };
  cmd->add_option("--config", flags->config_path, "run YAML (flags override it)");
  cmd->add_option("--model", flags->model, "start model directory (HF layout); YAML model.path");
  cmd->add_option("--data", flags->data,
                  sft ? "training JSONL (default: YAML data.ift and YAML data.eft)" : "training JSONL");
  cmd->add_option("--out", flags->out, "output folder (required): checkpoints go to <out>/checkpoint-<step>");
  cmd->add_option("--save-every", flags->save_every, "also checkpoint every N steps (0: only at the end)")
      ->check(Integer(0))
      ->capture_default_str();
  cmd->add_flag("--resume", flags->resume,
                "continue from the newest whole checkpoint in --out (without it, an --out holding one is refused)");
  cmd->add_option("--stop-after", flags->stop_after, "stop (and checkpoint) after N steps of this run; 0: run to the end")
      ->check(Integer(0))
      ->capture_default_str();
  cmd->add_option("--communicator", flags->communicator, "auto | single | mpi | nccl")
      ->check(CLI::IsMember(CommunicatorNames()))
      ->capture_default_str();
  cmd->add_option("--stall-seconds", flags->stall_seconds,
                  "end the job (exit code 75) when this rank makes no progress this long: no model load, "
                  "training step or checkpoint (0: never)")
      ->check(FiniteNonNegative())
      ->capture_default_str();
  train_field("--steps", &TrainConfig::steps, "optimizer steps; 0: epochs over the data");
  train_field("--epochs", &TrainConfig::epochs, "passes over the data when --steps is 0");
  train_field("--batch-size", &TrainConfig::batch_size, "global batch in examples, whatever the ranks");
  train_field("--micro-batch-size", &TrainConfig::micro_batch_size, "examples per forward/backward per rank");
  train_field("--lr", &TrainConfig::lr, "peak learning rate");
  train_field("--lr-schedule", &TrainConfig::lr_schedule, "constant | linear | cosine");
  train_field("--min-lr", &TrainConfig::min_lr, "learning rate at the end of the decay");
  train_field("--warmup-steps", &TrainConfig::warmup_steps, "linear warm-up steps");
  train_field("--weight-decay", &TrainConfig::weight_decay, "AdamW weight decay");
  train_field("--max-grad-norm", &TrainConfig::max_grad_norm, "clip the global gradient norm; 0 turns it off");
  train_field("--dropout", &TrainConfig::dropout, "dropout during training");
  train_field("--seed", &TrainConfig::seed, "seeds data order and dropout");
  auto model_field = [&](const std::string& flag, std::string ModelConfig::*member, const std::string& help) {
    AddKeyFlag<std::string>(cmd, overrides.get(), flag, [member](RunConfig& c) { return &(c.model.*member); }, help);
  };
  model_field("--device", &ModelConfig::device, "cpu | cuda (YAML model.device)");
  model_field("--dtype", &ModelConfig::dtype, "float32 | bfloat16 (YAML model.dtype)");
  model_field("--chat-template", &ModelConfig::chat_template, "plain | llama2 | llama3 | chatml (YAML model.chat_template)");
  AddKeyFlag<int64_t>(cmd, overrides.get(), "--max-seq-len", [](RunConfig& c) { return &c.model.max_seq_len; },
                      "longest prompt+response (YAML model.max_seq_len)");
  if (!sft) {
    cmd->add_option("--ref-model", flags->ref_model, "frozen reference model for pairs without ref_*_logprob (default: --model)");
    AddKeyFlag<double>(cmd, overrides.get(), "--beta", [](RunConfig& c) { return &c.dpo.beta; },
                       "DPO temperature (YAML dpo.beta)");
    AddKeyFlag<std::string>(cmd, overrides.get(), "--loss", [](RunConfig& c) { return &c.dpo.loss; },
                            "sigmoid | ipo (YAML dpo.loss)");
    AddKeyFlag<double>(cmd, overrides.get(), "--label-smoothing", [](RunConfig& c) { return &c.dpo.label_smoothing; },
                       "assumed label noise (YAML dpo.label_smoothing)");
    auto norm = std::make_shared<bool>(false);
    CLI::Option* norm_opt = cmd->add_flag("--length-normalize", *norm, "per-token mean log-probs (YAML dpo.length_normalize)");
    overrides->push_back([=](RunConfig& c) {
      if (norm_opt->count() > 0) c.dpo.length_normalize = *norm;
    });
  }
  cmd->callback([flags, overrides, objective] {
    // The folders of --out this run makes: a run that fails before writing a checkpoint into them
    // (refused data, a model that does not load) removes them again, rather than leave an empty
    // --out behind (rmdir removes only empty folders).
    const std::vector<std::string> made = MissingDirs(flags->out);
    absl::Status status;
    try {
      status = RunTrainCommand(*flags, *overrides, objective);
    } catch (const c10::Error& e) {
      status = absl::InternalError(e.what_without_backtrace());
    }
    if (!status.ok()) {
      for (const std::string& dir : made) {
        if (::rmdir(dir.c_str()) != 0) break;
      }
      SRLM_LOG(ERROR) << status;
      mpi::ExitAfterFailure(1);
    }
  });
}

void RegisterSftCommand(CLI::App& app) { RegisterTrainCommand(app, TrainingObjective::kSft); }
void RegisterDpoCommand(CLI::App& app) { RegisterTrainCommand(app, TrainingObjective::kDpo); }

}  // namespace srlm
