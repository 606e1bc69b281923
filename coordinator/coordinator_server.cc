// Implementation of coordinator/coordinator_server.h.
#include "coordinator/coordinator_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace srlm::coordinator {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& options) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both a certificate and a key");
    }
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    absl::StatusOr<std::string> cert = ReadPem(options.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(options.tls_key_file);
    if (!key.ok()) return key.status();
    pair.cert_chain = *cert;
    pair.private_key = *key;
    ssl.pem_key_cert_pairs.push_back(pair);
    if (!options.tls_client_ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadPem(options.tls_client_ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  } else if (!options.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError("a client CA needs TLS (certificate and key)");
  } else {
    credentials = grpc::InsecureServerCredentials();
  }
  return credentials;
}

// A builder listening on options.listen, as Start and CheckCanListen use it.
void Listen(const ServerOptions& options, const std::shared_ptr<grpc::ServerCredentials>& credentials,
            grpc::ServerBuilder* builder, int* port) {
  // gRPC sets SO_REUSEPORT by default, so a second server on the same port would start and the
  // kernel would split connections between the two; a port in use must be an error instead.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder->AddListeningPort(options.listen, credentials, port);
}

absl::Status CannotListen(const ServerOptions& options) {
  return absl::UnavailableError(absl::StrCat(
      "cannot listen on ", options.listen, " (address in use, or not an address of this host",
      options.tls_cert_file.empty() ? ")" : "; or the TLS certificate or key is not valid PEM: see gRPC's lines above)"));
}

}  // namespace

absl::Status CoordinatorServer::CheckCanListen(const ServerOptions& options) {
  SRLM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(options));
  grpc::ServerBuilder builder;
  int port = 0;
  Listen(options, credentials, &builder, &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return CannotListen(options);
  server->Shutdown(std::chrono::system_clock::now());
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(RunCoordinator* run,
                                                                            const ServerOptions& options) {
  if (options.token.empty()) return absl::InvalidArgumentError("the server needs a bearer token");
  SRLM_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials, Credentials(options));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<CoordinatorServer> server(new CoordinatorServer());
  server->service_ = std::make_unique<CoordinatorService>(run, options.token);
  grpc::ServerBuilder builder;
  Listen(options, credentials, &builder, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) return CannotListen(options);
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  server->server_->GetHealthCheckService()->SetServingStatus("srlm.v1.Coordinator", true);
  return server;
}

void CoordinatorServer::Shutdown(int64_t grace_ms) {
  if (shut_down_) return;
  shut_down_ = true;
  service_->Stop();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

}  // namespace srlm::coordinator
