// srlm-worker: the worker binary. Each subcommand lives in its own file and registers itself here.
#include <CLI/CLI.hpp>

#include "common/logging.h"
#include "worker/model/host_memory.h"

namespace srlm {
void RegisterInitModelCommand(CLI::App& app);  // worker/cmd_init_model.cc
void RegisterGenerateCommand(CLI::App& app);   // worker/cmd_generate.cc
void RegisterLogprobsCommand(CLI::App& app);   // worker/cmd_logprobs.cc
void RegisterSftCommand(CLI::App& app);        // worker/train/train_command.cc
void RegisterDpoCommand(CLI::App& app);        // worker/train/train_command.cc
void RegisterRunCommand(CLI::App& app);        // worker/cmd_run.cc
}  // namespace srlm

int main(int argc, char** argv) {
  srlm::SetLogIdentity("worker", -1);
  // Tensors freed by one step are reused by the next instead of faulted in again (host_memory.h).
  if (absl::Status s = srlm::KeepFreedHostMemoryForReuse(); !s.ok()) SRLM_LOG(WARNING) << s;
  CLI::App app{
      "srlm-worker: one process per GPU (or CPU slot). Holds the model M_t; generates, judges and\n"
      "trains. `run` follows a coordinator; the other commands work offline on files."};
  srlm::RegisterInitModelCommand(app);
  srlm::RegisterGenerateCommand(app);
  srlm::RegisterLogprobsCommand(app);
  srlm::RegisterSftCommand(app);
  srlm::RegisterDpoCommand(app);
  srlm::RegisterRunCommand(app);
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
