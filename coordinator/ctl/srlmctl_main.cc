// srlmctl: the operator's client for a running srlm coordinator (status, watch, export-pairs).
#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/cli_checks.h"
#include "common/logging.h"
#include "coordinator/client/coordinator_client.h"
#include "coordinator/ctl/status_format.h"

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Fail(const absl::Status& status) {
  std::cerr << "srlmctl: " << status << std::endl;
  return status.code() == absl::StatusCode::kUnauthenticated ? 3 : 1;
}

// CLI11 reports a word that names no subcommand as a missing subcommand ("A subcommand is
// required"): say that it is unknown, and list the known ones, for that case and for none given.
std::string FailureMessage(const CLI::App* app, const CLI::Error& error) {
  if (dynamic_cast<const CLI::RequiredError*>(&error) == nullptr || !app->get_subcommands().empty()) {
    return CLI::FailureMessage::simple(app, error);
  }
  std::vector<std::string> known;
  for (const CLI::App* command : app->get_subcommands([](const CLI::App*) { return true; })) {
    known.push_back(command->get_name());
  }
  const std::vector<std::string> rest = app->remaining();
  const std::string given = !rest.empty() && rest.front().rfind('-', 0) != 0
                                ? absl::StrCat("unknown subcommand '", rest.front(), "'")
                                : "a subcommand is required";
  return absl::StrCat("srlmctl: ", given, "; expected one of: ", absl::StrJoin(known, ", "),
                      "\nRun with --help for more information.\n");
}

}  // namespace

int main(int argc, char** argv) {
  srlm::SetLogIdentity("srlmctl", -1);
  CLI::App app{"srlmctl: watch and operate an srlm run through its coordinator."};
  app.require_subcommand(1);
  app.failure_message(FailureMessage);
  srlm::coordinator::ClientOptions options;
  options.deadline_seconds = 10;
  std::string run_dir;
  app.add_option("--coordinator", options.address, "coordinator HOST:PORT")->capture_default_str();
  app.add_option("--token-file", options.token_file, "bearer token file (else $SRLM_TOKEN, else <run-dir>/token)");
  app.add_option("--run-dir", run_dir, "run directory: its generated token file is used when no other is given");
  app.add_option("--timeout", options.deadline_seconds,
                 "deadline of each call but watch (which has none), seconds")
      ->check(srlm::FinitePositive())
      ->capture_default_str();
  app.add_option("--tls-ca", options.tls_root_ca_file, "PEM CA of the server certificate (turns TLS on)");
  app.add_option("--tls-cert", options.tls_client_cert_file, "PEM client certificate (mutual TLS)");
  app.add_option("--tls-key", options.tls_client_key_file, "PEM client key (mutual TLS)");
  app.add_option("--tls-server-name", options.tls_server_name, "name to check in the server certificate");
  bool json = false;
  CLI::App* status_cmd = app.add_subcommand("status", "print the run's iteration, phase and progress");
  status_cmd->add_flag("--json", json, "machine-readable JSON");
  double interval = 1.0;
  CLI::App* watch_cmd = app.add_subcommand(
      "watch", "live progress bars until the run is DONE (Ctrl-C stops); exits 1 if the coordinator "
               "stops first");
  watch_cmd->add_option("--interval", interval, "seconds between updates")
      ->check(srlm::FinitePositive())
      ->capture_default_str();
  int64_t iteration = -1;
  std::string output;
  CLI::App* export_cmd = app.add_subcommand("export-pairs", "write an iteration's preference pairs as JSONL");
  export_cmd->add_option("--iteration", iteration, "iteration whose pairs to export")->required()->check(srlm::Integer(0));
  bool force = false;
  export_cmd->add_option("--output", output, "output file (default: standard output); an existing file is "
                         "replaced only with --force")->check(srlm::NonEmptyPath());
  export_cmd->add_flag("--force", force, "replace an existing --output file");
  // A usage error, before anything is asked of the coordinator: `--output RUN_DIR/state.db` (a slip
  // of the hand) replaced a live run's database. A device or pipe (/dev/stdout) is written to, not
  // replaced, and is let be.
  export_cmd->callback([&] {
    struct stat info;
    if (!force && ::stat(output.c_str(), &info) == 0 && S_ISREG(info.st_mode)) {
      throw CLI::ValidationError("--output", absl::StrCat(output, " exists; add --force to replace it"));
    }
  });
  CLI11_PARSE(app, argc, argv);

  if (options.token_file.empty() && !std::getenv("SRLM_TOKEN") && !run_dir.empty()) {
    options.token_file = run_dir + "/token";
  }
  auto client = srlm::coordinator::CoordinatorClient::Connect(options);
  if (!client.ok()) return Fail(client.status());

  if (status_cmd->parsed()) {
    auto status = (*client)->GetStatus();
    if (!status.ok()) return Fail(status.status());
    if (json) {
      std::cout << srlm::ctl::JsonText(srlm::ctl::StatusToJson(*status), 2) << std::endl;
    } else {
      std::cout << srlm::ctl::FormatStatus(*status, NowMs());
    }
    return 0;
  }
  if (watch_cmd->parsed()) {
    const bool terminal = ::isatty(STDOUT_FILENO);
    std::optional<srlm::v1::Phase> last_phase;
    absl::Status watched = (*client)->WatchStatus(interval, [&](const srlm::v1::GetStatusResponse& status) {
      last_phase = status.phase();
      // In a terminal: redraw in place (cursor home, clear screen); otherwise one block per update.
      if (terminal) std::cout << "\033[H\033[2J";
      std::cout << srlm::ctl::FormatStatus(status, NowMs());
      if (!terminal) std::cout << "--\n";
      std::cout.flush();
      return status.phase() != srlm::v1::PHASE_DONE;
    });
    if (!watched.ok()) return Fail(watched);
    // A stopping coordinator ends the stream with OK: only DONE is success, so that
    // `srlmctl watch && next-step` does not go on with an unfinished run.
    if (last_phase != srlm::v1::PHASE_DONE) {
      std::cerr << "srlmctl: the coordinator ended the stream before the run was done (last phase "
                << (last_phase ? srlm::ctl::PhaseName(*last_phase) : "unknown: no status came")
                << "); it stopped or restarted" << std::endl;
      return 1;
    }
    return 0;
  }
  // A file is replaced only once every pair is in (common/atomic_file.h): a failed export (no such
  // iteration, a coordinator gone) leaves an existing file as it was.
  int64_t count = 0;
  absl::Status call;  // the ExportPairs call's own outcome, reported as it is (not as a write error)
  auto export_to = [&](const srlm::ByteSink& sink) {
    absl::Status written;
    call = (*client)->ExportPairs(iteration, [&](const srlm::v1::ExportedPair& pair) {
      written = sink(srlm::ctl::JsonText(srlm::ctl::ExportedPairToJson(pair)) + "\n");
      ++count;
      return written.ok();
    });
    return written.ok() ? call : written;
  };
  absl::Status exported =
      output.empty() ? export_to([](std::string_view bytes) {
        std::cout << bytes;
        return std::cout ? absl::OkStatus() : absl::DataLossError("writing standard output failed");
      })
                     : srlm::WriteFileAtomically(output, export_to);
  std::cout.flush();
  if (!call.ok()) return Fail(call);
  if (!exported.ok()) return Fail(exported);
  if (!output.empty()) std::cerr << "srlmctl: wrote " << count << " pairs to " << output << std::endl;
  return 0;
}
