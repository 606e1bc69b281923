// A worker process for the multi-process fault tests: the real worker loop and the real gRPC client,
// with the scripted backend of e2e_scripted_backend.h instead of a neural model. Rank and world size
// come from MPI (run it under mpirun). Writes its PID to <checkpoint-root>/../pids/rank-<r>.pid so a
// test can kill -9 a given rank. With --export-pairs, rank 0 writes iteration 1's pairs as JSONL
// (prompt, chosen, rejected, scores) once the run is done. SIGTERM and SIGUSR1 stop it between units
// of work, as they stop `srlm-worker run` (worker/cmd_run.cc), so that the launch scripts' stop
// handshake can be tested: a unit in hand (a shard held by --generate-delay-ms, a training held by
// --train-delay-ms) is finished first.
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "coordinator/client/coordinator_client.h"
#include "tests/e2e_scripted_backend.h"
#include "worker/loop/grpc_coordinator_link.h"
#include "worker/loop/retrying_link.h"
#include "worker/loop/stop_signal.h"

int main(int argc, char** argv) {
  // First, as srlm-worker run: before MPI_Init, whose threads would otherwise keep the signals.
  std::atomic<bool>* stop_requested = srlm::InstallStopSignalHandlers();
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  srlm::SetLogIdentity("scripted-worker", rank);
  CLI::App app{"scripted srlm worker for fault tests"};
  std::string address, checkpoint_root, export_path;
  int generate_delay_ms = 0, train_delay_ms = 0;
  double retry_seconds = 60;
  app.add_option("--coordinator", address)->required();
  app.add_option("--checkpoint-root", checkpoint_root)->required();
  app.add_option("--generate-delay-ms", generate_delay_ms);
  app.add_option("--train-delay-ms", train_delay_ms);
  app.add_option("--retry-seconds", retry_seconds);
  app.add_option("--export-pairs", export_path);
  // Launch scripts call `<worker> run --coordinator ... --checkpoint-root ...`: accept the verb, and
  // take the delays and the export path from the environment when they cannot pass flags.
  if (argc > 1 && std::string(argv[1]) == "run") {
    --argc;
    ++argv;
  }
  if (const char* v = std::getenv("E2E_GENERATE_DELAY_MS")) generate_delay_ms = std::atoi(v);
  if (const char* v = std::getenv("E2E_TRAIN_DELAY_MS")) train_delay_ms = std::atoi(v);
  if (const char* v = std::getenv("E2E_EXPORT_PAIRS")) export_path = v;
  CLI11_PARSE(app, argc, argv);

  const std::string pid_dir = checkpoint_root + "/../pids";
  std::filesystem::create_directories(pid_dir);
  std::ofstream(pid_dir + "/rank-" + std::to_string(rank) + ".pid") << getpid() << "\n";

  srlm::coordinator::ClientOptions options;
  options.address = address;
  auto client = srlm::coordinator::CoordinatorClient::Connect(options);
  if (!client.ok()) {
    SRLM_LOG(ERROR) << client.status();
    return 1;
  }
  srlm::GrpcCoordinatorLink grpc_link(std::move(*client));
  srlm::RetryingCoordinatorLink link(grpc_link, retry_seconds, stop_requested);
  srlm::e2e::ScriptedBackend backend(rank, generate_delay_ms, train_delay_ms);
  backend.enter_collective = [] { MPI_Barrier(MPI_COMM_WORLD); };
  srlm::WorkerLoopOptions loop_options;
  loop_options.checkpoint_root = checkpoint_root;
  loop_options.max_wait_seconds = 0.1;
  loop_options.stop_requested = stop_requested;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  auto summary = srlm::RunWorkerLoop(link, backend, {host, getpid(), rank, size, "cpu"}, loop_options);
  if (!summary.ok()) {
    SRLM_LOG(ERROR) << "worker loop failed: " << summary.status();
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0 && !export_path.empty() && summary->run_done) {
    std::ofstream out(export_path);
    absl::Status status = grpc_link.client().ExportPairs(1, [&](const srlm::v1::ExportedPair& p) {
      out << nlohmann::json{{"prompt_id", p.prompt_id()}, {"prompt", p.prompt()}, {"chosen", p.chosen()},
                            {"rejected", p.rejected()}, {"chosen_score", p.chosen_score()},
                            {"rejected_score", p.rejected_score()}}.dump()
          << "\n";
      return true;
    });
    if (!status.ok()) {
      SRLM_LOG(ERROR) << "export failed: " << status;
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  MPI_Finalize();
  return 0;
}
