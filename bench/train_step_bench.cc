// Benchmark: srlm's SFT and DPO training step (tokens/s) on the d_model 256, 4-layer Llama against
// a plain PyTorch step in Python (bench/train_step_reference.py) on the same data, run side by side
// in turns; under mpirun, the share of the step spent in the gradient all-reduce.
// srlm runs with the worker's host-memory policy (worker/model/host_memory.h) unless --default-malloc;
// --python-same-malloc gives the Python side the same glibc settings through GLIBC_TUNABLES.
// On a GPU (bench/gpu/run_checks.sh) it times srlm alone: --device cuda --dtype bfloat16 --no-baseline.
//   train_step_bench --dir DIR [--steps 5 --batch 8 --micro-batch B --threads 1 --rounds 2 --no-baseline]
//                    [--default-malloc] [--python-same-malloc] [--device cpu|cuda]
//                    [--dtype float32|bfloat16] [--communicator auto|single|mpi|nccl]
//                    [--objectives sft,dpo] [--dropout P] [--profile N]  (DIR from the .py `make`)
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/kernel_profile.h"
#include "common/logging.h"
#include "worker/model/checkpoint_io.h"
#include "worker/model/host_memory.h"
#include "worker/model/model_options.h"
#include "worker/train/trainer.h"

namespace {

struct Result {
  double tokens_per_second = 0;
  double step_seconds = 0;
  double allreduce_share = 0;
};

struct SrlmSide {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  int micro_batch = 0;  // 0: the whole global batch at once
  double dropout = 0;   // the Python baseline has none: compare srlm with and without it
  int profile_top = 0;  // > 0: profile the training (bench/kernel_profile.h) and print this many rows
};

Result TimeSrlm(srlm::Communicator* comm, const std::string& dir, const std::string& objective, int batch, int steps,
                const SrlmSide& side) {
  auto model = srlm::LoadModel(dir, side.device, side.dtype);
  if (!model.ok()) SRLM_LOG(FATAL) << model.status();
  srlm::TrainerOptions o;
  o.train.steps = steps + 1;  // step 1 warms up
  o.train.batch_size = batch;
  o.train.micro_batch_size = side.micro_batch > 0 ? side.micro_batch : batch;
  o.train.lr = 1e-4;
  o.train.lr_schedule = "constant";
  o.train.min_lr = 0;
  o.train.max_grad_norm = 1.0;
  o.train.dropout = side.dropout;
  o.log_every = 0;
  auto trainer = srlm::Trainer::Create(*model, std::nullopt, comm, o);
  if (!trainer.ok()) SRLM_LOG(FATAL) << trainer.status();
  absl::StatusOr<srlm::TrainingSummary> summary;
  // The profile covers the training alone (the warm-up step too), not the model's load.
  std::optional<srlm::bench::KernelProfile> profile;
  if (objective == "sft") {
    auto data = srlm::ReadSftJsonl(dir + "/sft.jsonl", nullptr, {});
    if (!data.ok()) SRLM_LOG(FATAL) << data.status();
    if (side.profile_top > 0) profile.emplace(side.device.is_cuda());
    summary = (*trainer)->TrainSft(*data);
  } else {
    auto data = srlm::ReadPreferenceJsonl(dir + "/dpo.jsonl", nullptr, {});
    if (!data.ok()) SRLM_LOG(FATAL) << data.status();
    if (side.profile_top > 0) profile.emplace(side.device.is_cuda());
    summary = (*trainer)->TrainDpo(*data);
  }
  if (profile) {
    std::printf("%s, %d steps (the first warms up):\n", objective.c_str(), steps + 1);
    profile->StopAndPrint(side.profile_top, steps + 1);
  }
  if (!summary.ok()) SRLM_LOG(FATAL) << summary.status();
  Result r;
  double tokens = 0, seconds = 0, allreduce = 0;
  for (size_t i = 1; i < summary->history.size(); ++i) {
    tokens += summary->history[i].tokens;
    seconds += summary->history[i].seconds;
    allreduce += summary->history[i].allreduce_seconds;
  }
  r.tokens_per_second = tokens / seconds;
  r.step_seconds = seconds / steps;
  r.allreduce_share = allreduce / seconds;
  return r;
}

Result TimePython(const std::string& dir, const std::string& objective, int batch, int steps, int threads,
                  bool same_malloc) {
  const char* py = std::getenv("SRLM_VENV_PYTHON");
  // The glibc settings of KeepFreedHostMemoryForReuse(), given to the Python side.
  const std::string tunables = absl::StrFormat("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=%d:glibc.malloc.trim_threshold=%d ",
                                               srlm::kMallocMmapThresholdBytes, srlm::kMallocTrimThresholdBytes);
  const std::string cmd = absl::StrFormat("%s%s %s/bench/train_step_reference.py time --dir %s --objective %s --batch %d --steps %d --threads %d",
                                          same_malloc ? tunables : "", py ? py : SRLM_VENV_PYTHON_PATH, SRLM_SOURCE_DIR_PATH, dir, objective, batch, steps, threads);
  FILE* pipe = popen(cmd.c_str(), "r");
  char buffer[4096] = {0};
  std::string out;
  while (pipe && fgets(buffer, sizeof(buffer), pipe)) out += buffer;
  if (!pipe || pclose(pipe) != 0) SRLM_LOG(FATAL) << "baseline failed: " << cmd;
  Result r;
  std::sscanf(out.c_str(), "{\"tokens_per_second\": %lf, \"step_seconds\": %lf", &r.tokens_per_second, &r.step_seconds);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"srlm trainer step benchmark"};
  std::string dir;
  int steps = 5, batch = 8, threads = 1, rounds = 2, micro_batch = 0, profile_top = 0;
  double dropout = 0;
  std::string device = "cpu", dtype = "float32", communicator = "auto", objectives = "sft,dpo";
  bool baseline = true, default_malloc = false, python_same_malloc = false;
  app.add_option("--dir", dir, "model and data from train_step_reference.py make")->required();
  app.add_option("--steps", steps, "timed steps per run (after one warm-up step)");
  app.add_option("--batch", batch, "global batch (examples; DPO forwards 2x sequences)");
  app.add_option("--micro-batch", micro_batch, "examples per forward/backward (default: the whole batch)");
  app.add_option("--dropout", dropout, "srlm's dropout (keyed per example; the baseline has none)");
  app.add_option("--device", device, "cpu | cuda (srlm side)");
  app.add_option("--dtype", dtype, "float32 | bfloat16 (srlm side; bfloat16 keeps float32 master weights)");
  app.add_option("--communicator", communicator, "auto | single | mpi | nccl");
  app.add_option("--objectives", objectives, "comma-separated: sft, dpo");
  app.add_option("--threads", threads, "intra-op threads on both sides");
  app.add_option("--rounds", rounds, "alternating rounds srlm / Python; the best of each is reported");
  app.add_flag("!--no-baseline", baseline, "skip the Python baseline (e.g. under mpirun)");
  app.add_option("--profile", profile_top,
                 "after the timed rounds, one more srlm run under PyTorch's profiler (rank 0): its top N kernels");
  app.add_flag("--default-malloc", default_malloc, "srlm without the worker's host-memory policy");
  app.add_flag("--python-same-malloc", python_same_malloc, "the Python side with the same glibc malloc settings");
  CLI11_PARSE(app, argc, argv);
  if (!default_malloc) {
    if (absl::Status s = srlm::KeepFreedHostMemoryForReuse(); !s.ok()) SRLM_LOG(FATAL) << s;
  }
  torch::set_num_threads(threads);
  SrlmSide side;
  side.micro_batch = micro_batch;
  side.dropout = dropout;
  auto parsed_device = srlm::ParseDevice(device);
  if (!parsed_device.ok()) SRLM_LOG(FATAL) << parsed_device.status();
  side.device = *parsed_device;
  auto parsed_dtype = srlm::ParseDtype(dtype, side.device);
  if (!parsed_dtype.ok()) SRLM_LOG(FATAL) << parsed_dtype.status();
  side.dtype = *parsed_dtype;
  auto comm = srlm::MakeCommunicator(communicator, device);
  if (!comm.ok()) SRLM_LOG(FATAL) << comm.status();
  srlm::SetLogIdentity("bench", (*comm)->rank());
  const bool print = (*comm)->rank() == 0;
  if (print) std::printf("objective  ranks  srlm tok/s  python tok/s  ratio  srlm step s  all-reduce share\n");
  for (const std::string& objective : std::vector<std::string>(absl::StrSplit(objectives, ','))) {
    Result best, best_py;
    for (int round = 0; round < rounds; ++round) {
      Result r = TimeSrlm(comm->get(), dir, objective, batch, steps, side);
      if (r.tokens_per_second > best.tokens_per_second) best = r;
      if (baseline && print) {
        Result p = TimePython(dir, objective, batch, steps, threads, python_same_malloc);
        if (p.tokens_per_second > best_py.tokens_per_second) best_py = p;
      }
    }
    if (profile_top > 0) {  // one more run, profiled on rank 0; its figures are not in the table
      SrlmSide profiled = side;
      profiled.profile_top = print ? profile_top : 0;
      TimeSrlm(comm->get(), dir, objective, batch, steps, profiled);
    }
    if (print) {
      std::printf("%-9s  %5d  %10.0f  %12.0f  %5.2f  %11.3f  %16.3f\n", objective.c_str(), (*comm)->world_size(),
                  best.tokens_per_second, best_py.tokens_per_second,
                  best_py.tokens_per_second > 0 ? best.tokens_per_second / best_py.tokens_per_second : 0.0,
                  best.step_seconds, best.allreduce_share);
    }
  }
  return 0;
}
