// `srlm-worker run --coordinator HOST:PORT`: one worker rank of a run (one process per GPU or CPU
// slot, started by mpirun or srun). Registers with the coordinator and follows its phases with the
// libtorch backend (worker/run) until the run is DONE. Rank and world size come from the launcher
// (OpenMPI or PMIx/Slurm environment); the training communicator must agree with them. SIGTERM and
// SIGUSR1 stop the worker between units of work (worker/loop/stop_signal.h). A rank
// whose work makes no progress for --stall-seconds ends the whole job with exit code 75, so that the
// launcher (or the operator) restarts it and the run resumes (common/progress_watchdog.h).
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "common/cli_checks.h"
#include "common/host_name.h"
#include "common/logging.h"
#include "common/progress_watchdog.h"
#include "common/status_macros.h"
#include "coordinator/client/coordinator_client.h"
#include "worker/loop/grpc_coordinator_link.h"
#include "worker/loop/retrying_link.h"
#include "worker/loop/stop_signal.h"
#include "worker/run/torch_worker_backend.h"
#include "worker/train/communicator.h"
#include "worker/train/mpi_communicator.h"

namespace srlm {
namespace {

struct RunFlags {
  coordinator::ClientOptions client;
  std::string checkpoint_root = "checkpoints";
  std::string device = "cpu";  // reported to the coordinator; the model runs where model.device says
  double retry_seconds = 120;
  double max_wait_seconds = 2.0;
  // Longer than the slowest unit of work: one model load, one batch of sampling, one training step.
  double stall_seconds = 1800;
  TorchWorkerBackendOptions backend;
};



// The first of `names` set in the environment, as an integer, or `fallback`.
int EnvInt(std::initializer_list<const char*> names, int fallback) {
  for (const char* name : names) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') return std::atoi(v);
  }
  return fallback;
}

// Checks that the training communicator numbers the ranks as the launcher did (Configure made it).
class CheckedBackend : public TorchWorkerBackend {
 public:
  CheckedBackend(TorchWorkerBackendOptions options, int rank, int world_size)
      : TorchWorkerBackend(std::move(options)), launch_rank_(rank), launch_world_size_(world_size) {}
  absl::Status Configure(const RunConfig& config) override {
    SRLM_RETURN_IF_ERROR(TorchWorkerBackend::Configure(config));
    if (rank() != launch_rank_ || world_size() != launch_world_size_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the launcher says rank ", launch_rank_, " of ", launch_world_size_, " but the communicator says rank ",
          rank(), " of ", world_size(), " (start the workers with mpirun or srun --mpi=pmix)"));
    }
    return absl::OkStatus();
  }
  // Test hook (tests/e2e_mpirun_model_test.sh): SRLM_TEST_STALL_RANK=r makes rank r's model loads hang
  // for ever, as on a hung file system, while its heartbeats go on.
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& model_dir) override {
    HangIfTestStallRank(launch_rank_, "model load");
    return TorchWorkerBackend::LoadModel(model_dir);
  }

 private:
  int launch_rank_, launch_world_size_;
};

absl::Status RunWorker(RunFlags flags) {
  // OpenMPI's mpirun, then PMIx/Slurm (srun), then a single process.
  const int rank = EnvInt({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}, 0);
  const int world_size = EnvInt({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, 1);
  SetLogIdentity("worker", rank);
  if (flags.stall_seconds > 0 && flags.stall_seconds <= flags.retry_seconds) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--stall-seconds (", flags.stall_seconds, ") must be longer than --retry-seconds (", flags.retry_seconds,
        "): a worker riding out a coordinator restart makes no progress meanwhile (0 turns the watchdog off)"));
  }
  std::atomic<bool>* stop_requested = InstallStopSignalHandlers();

  SRLM_ASSIGN_OR_RETURN(auto client, coordinator::CoordinatorClient::Connect(flags.client));
  GrpcCoordinatorLink grpc_link(std::move(client));
  RetryingCoordinatorLink link(grpc_link, flags.retry_seconds, stop_requested);
  WorkerLoopOptions options;
  // Absolute: the coordinator stores the checkpoint paths ranks report, and a resume from another
  // working directory must find the same folders (a relative path could even name another run's).
  options.checkpoint_root = flags.checkpoint_root;
  if (options.checkpoint_root[0] != '/') {  // not empty: NonEmptyPath
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) return absl::InternalError("getcwd failed");
    options.checkpoint_root = absl::StrCat(cwd, "/", options.checkpoint_root);
  }
  flags.backend.checkpoint_root = options.checkpoint_root;
  CheckedBackend backend(flags.backend, rank, world_size);
  options.stop_requested = stop_requested;
  options.max_wait_seconds = flags.max_wait_seconds;
  options.stall_seconds = flags.stall_seconds;
  options.on_stall = mpi::AbortStalledJob;
  SRLM_ASSIGN_OR_RETURN(WorkerLoopSummary summary,
                        RunWorkerLoop(link, backend, {HostName(), getpid(), rank, world_size, flags.device}, options));
  SRLM_LOG(INFO) << (summary.run_done ? "run done" : "stopped") << ": " << summary.prompts_shards
                 << " prompts shard(s), " << summary.generate_shards << " generate shard(s), "
                 << summary.pairs_submitted << " pair(s) submitted, " << summary.trainings << " training(s)";
  return absl::OkStatus();
}

}  // namespace

void RegisterRunCommand(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  auto* cmd = app.add_subcommand("run", "Join a run: register with the coordinator and follow its phases");
  cmd->add_option("--coordinator", flags->client.address, "coordinator HOST:PORT")->required();
  cmd->add_option("--checkpoint-root", flags->checkpoint_root, "where M_{t+1} is written (<root>/iter-<t+1>); "
                  "shared by all ranks' hosts")
      ->check(NonEmptyPath())
      ->capture_default_str();
  cmd->add_option("--token-file", flags->client.token_file,
                  "bearer token file (default: $SRLM_TOKEN); an empty one is refused before any call");
  cmd->add_option("--tls-ca", flags->client.tls_root_ca_file, "PEM CA: talk TLS to the coordinator");
  cmd->add_option("--tls-cert", flags->client.tls_client_cert_file, "PEM client certificate (mutual TLS)");
  cmd->add_option("--tls-key", flags->client.tls_client_key_file, "PEM client key (mutual TLS)");
  cmd->add_option("--retry-seconds", flags->retry_seconds,
                  "keep retrying an unreachable coordinator this long (it may be restarting)")
      ->check(FinitePositive())
      ->capture_default_str();
  cmd->add_option("--max-wait-seconds", flags->max_wait_seconds, "cap on the coordinator's wait hints")
      ->check(FinitePositive())
      ->capture_default_str();
  cmd->add_option("--stall-seconds", flags->stall_seconds,
                  "end the job (exit code 75) when this rank's work makes no progress this long: no model load, "
                  "batch of sampling, training step or coordinator answer (0: never)")
      ->check(FiniteNonNegative())
      ->capture_default_str();
  // Checked with the other flags: MakeCommunicator refused a bad name only after registration.
  cmd->add_option("--communicator", flags->backend.communicator, "auto | single | mpi | nccl")
      ->check(CLI::IsMember(CommunicatorNames()))
      ->capture_default_str();
  cmd->add_option("--max-generate-batch", flags->backend.max_generate_batch,
                  "sequences decoded together (halved for good when a batch runs out of memory)")
      ->check(Integer(1))
      ->capture_default_str();
  cmd->add_option("--device-label", flags->device, "device name shown in srlmctl (the model runs on model.device)")
      ->capture_default_str();
  cmd->callback([flags]() {
    absl::Status s = RunWorker(*flags);
    if (s.ok()) std::exit(0);
    SRLM_LOG(ERROR) << "worker failed: " << s;
    mpi::ExitAfterFailure(1);
  });
}

}  // namespace srlm
