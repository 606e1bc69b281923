// srlmctl: the operator's client for a running srlm coordinator.
#include <CLI/CLI.hpp>

#include <string>

#include "common/logging.h"

int main(int argc, char** argv) {
  srlm::SetLogIdentity("srlmctl", -1);
  CLI::App app{"srlmctl: watch and operate an srlm run through its coordinator."};
  app.require_subcommand(1);
  std::string coordinator = "127.0.0.1:50051";
  app.add_option("--coordinator", coordinator, "coordinator HOST:PORT")->capture_default_str();
  app.add_subcommand("status", "print the run's iteration, phase and progress");
  app.add_subcommand("watch", "live progress bars until the run ends");
  app.add_subcommand("export-pairs", "write an iteration's preference pairs as JSONL");
  CLI11_PARSE(app, argc, argv);
  SRLM_LOG(ERROR) << "srlmctl is not built yet";
  return 1;
}
