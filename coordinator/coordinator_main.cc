// srlm-coordinator: serves the Coordinator gRPC service for one run directory.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "common/logging.h"

int main(int argc, char** argv) {
  srlm::SetLogIdentity("coordinator", -1);
  CLI::App app{
      "srlm-coordinator: the run's single source of truth. Shards prompts to workers, accepts each\n"
      "result once, advances the iteration counter, and serves GetStatus/WatchStatus. State lives in\n"
      "SQLite in --run-dir; restarting with the same directory resumes the run."};
  std::string run_dir, listen = "127.0.0.1:50051", config_path, token_file;
  app.add_option("--run-dir", run_dir, "run directory (created if missing; holds state.db)")->required();
  app.add_option("--listen", listen, "HOST:PORT to serve on")->capture_default_str();
  app.add_option("--config", config_path, "run configuration YAML (defaults for every key)");
  app.add_option("--token-file", token_file, "file holding the bearer token (else $SRLM_TOKEN)");
  CLI11_PARSE(app, argc, argv);
  SRLM_LOG(ERROR) << "the coordinator service is not built yet";
  return 1;
}
