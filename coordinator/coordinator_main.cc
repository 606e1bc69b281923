// srlm-coordinator: serves the Coordinator gRPC service for one run directory.
#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/cli_checks.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/run_config.h"
#include "coordinator/auth_token.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/run_dir_lock.h"
#include "coordinator/run_coordinator.h"

namespace {

bool WritePortFile(const std::string& path, int port) {
  return srlm::WriteFileAtomically(path, absl::StrCat(port, "\n")).ok();
}

// A regular file this process can read (errno says why not).
bool ReadableFile(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return false;
  if (!S_ISREG(info.st_mode)) {
    errno = EISDIR;
    return false;
  }
  return ::access(path.c_str(), R_OK) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  srlm::SetLogIdentity("coordinator", -1);
  CLI::App app{
      "srlm-coordinator: the run's single source of truth. Shards prompts to workers, accepts each\n"
      "result once, advances the iteration counter, and serves GetStatus/WatchStatus. State lives in\n"
      "SQLite in --run-dir; restarting with the same directory resumes the run. SIGTERM, SIGINT or\n"
      "SIGHUP stops it gracefully."};
  std::string run_dir, listen = "127.0.0.1:50051", config_path, token_file, port_file;
  std::string tls_cert, tls_key, tls_client_ca;
  bool force_config = false;
  size_t max_writes_per_transaction = 0;
  app.add_option("--run-dir", run_dir, "run directory (created if missing; holds state.db)")->required();
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0: any free port)")->capture_default_str();
  app.add_option("--config", config_path, "run configuration YAML (first start: stored in the run directory)");
  app.add_flag("--force-config", force_config, "replace a stored configuration that differs from --config");
  app.add_option("--token-file", token_file,
                 "file holding the bearer token (else $SRLM_TOKEN, else <run-dir>/token, generated)");
  app.add_option("--port-file", port_file, "write the port actually listened on to this file");
  app.add_option("--tls-cert", tls_cert, "PEM server certificate (with --tls-key: serve TLS)");
  app.add_option("--tls-key", tls_key, "PEM server private key");
  app.add_option("--tls-client-ca", tls_client_ca, "PEM CA that client certificates must chain to (mutual TLS)");
  app.add_option("--max-writes-per-transaction", max_writes_per_transaction,
                 "group commit: most transitions per SQLite transaction; 0 unlimited, 1 turns group commit "
                 "off (for benchmarks)")
      ->check(srlm::Integer(0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!srlm::IsHostPortAddress(listen, /*min_port=*/0)) {  // port 0: any free one
    SRLM_LOG(ERROR) << "--listen " << listen << ": expected HOST:PORT with PORT in 0..65535";
    return 2;
  }

  // SIGTERM, SIGINT and SIGHUP (a terminal's hangup) stop the server gracefully. They are taken by
  // one thread with sigwait; block them before gRPC starts its threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Every file the server needs is checked before the run directory is opened: a start that fails
  // on one of them must not have created the run or stored a new configuration (--force-config).
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--token-file", token_file},
                                   {"--tls-cert", tls_cert}, {"--tls-key", tls_key},
                                   {"--tls-client-ca", tls_client_ca}}) {
    if (!path.empty() && !ReadableFile(path)) {
      SRLM_LOG(ERROR) << flag << " " << path << ": cannot be read (" << std::strerror(errno) << ")";
      return 2;
    }
  }
  if (!token_file.empty()) {  // read as the server will: an empty file is refused here too
    if (absl::StatusOr<std::string> token = srlm::ReadTokenFile(token_file); !token.ok()) {
      SRLM_LOG(ERROR) << "--token-file: " << token.status();
      return 2;
    }
  }
  if (absl::Status writable = port_file.empty() ? absl::OkStatus() : srlm::CheckFileWritable(port_file);
      !writable.ok()) {
    SRLM_LOG(ERROR) << "--port-file: " << writable;
    return 2;
  }
  // So is the address with the TLS files: a server is started there and stopped at once. (A start
  // that failed to listen had stored its new run, and the corrected configuration was then refused
  // without --force-config.) A coordinator already serving this run directory is named first (its
  // lock, released again for Open): on the same port the address alone would only be "in use".
  if (struct stat info; ::stat(run_dir.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
    if (auto held = srlm::coordinator::RunDirLock::Acquire(run_dir); !held.ok()) {
      SRLM_LOG(ERROR) << held.status();
      return 2;
    }
  }
  srlm::coordinator::ServerOptions server_options;
  server_options.listen = listen;
  server_options.tls_cert_file = tls_cert;
  server_options.tls_key_file = tls_key;
  server_options.tls_client_ca_file = tls_client_ca;
  if (absl::Status can_listen = srlm::coordinator::CoordinatorServer::CheckCanListen(server_options);
      !can_listen.ok()) {
    SRLM_LOG(ERROR) << can_listen;
    return 2;
  }

  srlm::coordinator::RunCoordinatorOptions options;
  options.run_dir = run_dir;
  options.force_config = force_config;
  options.require_config_for_new_run = true;
  options.max_writes_per_transaction = max_writes_per_transaction;
  if (!config_path.empty()) {
    absl::StatusOr<srlm::RunConfig> config = srlm::LoadRunConfig(config_path);
    if (!config.ok()) {
      SRLM_LOG(ERROR) << config.status();
      return 2;
    }
    options.config = *config;
  }
  auto run = srlm::coordinator::RunCoordinator::Open(options);
  if (!run.ok()) {
    SRLM_LOG(ERROR) << run.status();
    return 2;
  }
  bool generated = false;
  absl::StatusOr<std::string> token = srlm::coordinator::ResolveServerToken(token_file, run_dir, &generated);
  if (!token.ok()) {
    SRLM_LOG(ERROR) << token.status();
    return 2;
  }
  if (generated) SRLM_LOG(INFO) << "generated a bearer token in " << run_dir << "/token (mode 0600)";
  server_options.token = *token;
  server_options.max_message_bytes = (*run)->config().coordinator.max_message_bytes;
  auto server = srlm::coordinator::CoordinatorServer::Start(run->get(), server_options);
  if (!server.ok()) {
    SRLM_LOG(ERROR) << server.status();
    return 2;
  }
  const int port = (*server)->port();
  std::cout << "srlm-coordinator listening on port " << port << std::endl;
  if (!port_file.empty() && !WritePortFile(port_file, port)) {
    SRLM_LOG(ERROR) << "cannot write --port-file " << port_file;
    return 2;
  }
  std::thread signal_thread([&] {
    int received = 0;
    sigwait(&signals, &received);
    SRLM_LOG(INFO) << "signal " << received << ": shutting down";
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_thread.join();
  server->reset();
  run->reset();  // drains the group committer
  SRLM_LOG(INFO) << "stopped";
  return 0;
}
