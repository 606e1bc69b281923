// Test helper: runs the real srlm-coordinator binary as a child process on loopback, stops it by
// PID (SIGTERM or SIGKILL) and restarts it on the same run directory and port.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace srlm::test_support {

// The data section a new run's configuration needs (the coordinator refuses a run without
// data.ift): the demo's IFT file, from SRLM_SOURCE_DIR.
inline std::string DemoDataYaml() {
  const char* source = std::getenv("SRLM_SOURCE_DIR");
  return std::string("data:\n  ift: ") + (source ? source : ".") + "/deploy/demo/data/ift.jsonl\n";
}

class CoordinatorProcess {
 public:
  CoordinatorProcess(std::string run_dir, std::vector<std::string> extra_args)
      : run_dir_(std::move(run_dir)), extra_args_(std::move(extra_args)) {}
  ~CoordinatorProcess() { Kill(SIGKILL); }

  static std::string BinaryPath() {
    const char* build = std::getenv("SRLM_BUILD_DIR");
    return std::string(build ? build : ".") + "/coordinator/srlm-coordinator";
  }

  // Starts the binary; the first start picks a free port, later ones reuse it. Returns false when
  // the port file did not appear within 10 s.
  bool Start() {
    const std::string port_file = run_dir_ + "/port";
    ::unlink(port_file.c_str());
    std::vector<std::string> args = {BinaryPath(), "--run-dir", run_dir_, "--listen",
                                      "127.0.0.1:" + std::to_string(port_), "--port-file", port_file};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      int log = ::open((run_dir_ + "/coordinator.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(log, 1);
      ::dup2(log, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
      std::ifstream in(port_file);
      int port = 0;
      if (in >> port && port > 0) {
        port_ = port;
        return true;
      }
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Sends `signal` to the child and reaps it; returns its wait status (-1 when none ran).
  int Kill(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  // The port the next Start listens on (0: a free one).
  void UsePort(int port) { port_ = port; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string run_dir_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace srlm::test_support
