// Builds and starts the gRPC server of a run: the Coordinator service, the standard health service
// and server reflection, on plain TCP or TLS (optionally mutual), with a message size limit.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/coordinator_service.h"

namespace srlm::coordinator {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // HOST:PORT; port 0 picks a free one
  std::string token;                       // required bearer token
  std::string tls_cert_file;               // PEM; with tls_key_file turns TLS on
  std::string tls_key_file;
  std::string tls_client_ca_file;          // PEM; when set, clients must present a certificate it signed
  int64_t max_message_bytes = 64 << 20;
};

class CoordinatorServer {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(RunCoordinator* run,
                                                                   const ServerOptions& options);
  // Starts and at once stops a server without services on options.listen with its TLS files:
  // whether Start can listen there (the address is free and of this host; the certificate and key
  // load), found before the run directory is opened. Another process can still take the port in
  // between; Start then fails as before.
  static absl::Status CheckCanListen(const ServerOptions& options);
  ~CoordinatorServer();
  int port() const { return port_; }
  grpc::Server* grpc_server() { return server_.get(); }
  // Stops accepting calls, ends watch streams, waits for calls in flight (bounded by `grace_ms`).
  void Shutdown(int64_t grace_ms = 2000);
  void Wait() { server_->Wait(); }

 private:
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace srlm::coordinator
