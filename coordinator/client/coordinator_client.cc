// Implementation of coordinator/client/coordinator_client.h.
#include "coordinator/client/coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/host_port.h"
#include "common/token_file.h"
#include "absl/strings/str_cat.h"

namespace srlm::coordinator {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A deadline this far off is none: the sum below stays within the clock's range (1e300 s overflowed
// it, and every call failed at once with DEADLINE_EXCEEDED).
constexpr double kLongestDeadlineSeconds = 1e9;

}  // namespace

absl::Status CheckCoordinatorAddress(const std::string& address) {
  if (!IsHostPortAddress(address, /*min_port=*/1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator address '", address, "': expected HOST:PORT with PORT in 1..65535"));
  }
  return absl::OkStatus();
}

absl::Status FromGrpcStatus(const grpc::Status& status, const char* rpc) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(rpc, ": ", status.error_message()));
}

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(const ClientOptions& given) {
  if (absl::Status address = CheckCoordinatorAddress(given.address); !address.ok()) return address;
  ClientOptions options = given;
  if (options.token.empty() && !options.token_file.empty()) {
    // The coordinator's rule for its own (an empty file is refused here, before any call).
    absl::StatusOr<std::string> token = ReadTokenFile(options.token_file);
    if (!token.ok()) return token.status();
    options.token = *std::move(token);
  }
  if (options.token.empty()) {
    if (const char* env = std::getenv("SRLM_TOKEN"); env) options.token = env;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  grpc::ChannelArguments arguments;
  // gRPC's own default receive limit (4 MiB) would be a second limit below the server's.
  const int limit = options.max_message_bytes > 0
                        ? static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX))
                        : -1;  // none
  arguments.SetMaxReceiveMessageSize(limit);
  arguments.SetMaxSendMessageSize(limit);
  // Keepalive pings (ClientOptions): a watch has no deadline.
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_seconds * 1000));
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options.keepalive_timeout_seconds * 1000));
  // Find a coordinator that comes back within a second or two. With gRPC's defaults (reconnect
  // backoff 1 s, x1.6, up to 120 s; re-resolution at most every 30 s) every call between two
  // connection attempts fails at once (UNAVAILABLE): after a 65 s outage the first answer came 13 s
  // after the restart, so a worker's --retry-seconds 120 covered much less outage than it says
  // (tests/coordinator_crash_test.cc, ClientReconnects...). Backoff alone (0.5-2 s) still left 5 s;
  // with re-resolution allowed every 0.5 s too, 0.6 s. (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is the
  // connect timeout of one attempt, 20 s by default, and stays: a TLS handshake to a busy coordinator
  // or over a slow link may take seconds.)
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  arguments.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 500);
  if (!options.tls_root_ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    absl::StatusOr<std::string> ca = ReadFile(options.tls_root_ca_file, "TLS root CA");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!options.tls_client_cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadFile(options.tls_client_cert_file, "TLS client certificate");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadFile(options.tls_client_key_file, "TLS client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    if (!options.tls_server_name.empty()) {
      arguments.SetSslTargetNameOverride(options.tls_server_name);
    }
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  auto channel = grpc::CreateCustomChannel(options.address, credentials, arguments);
  return std::make_unique<CoordinatorClient>(v1::Coordinator::NewStub(channel), options);
}

CoordinatorClient::CoordinatorClient(std::unique_ptr<v1::Coordinator::StubInterface> stub,
                                     ClientOptions options)
    : stub_(std::move(stub)), options_(std::move(options)) {}

void CoordinatorClient::Prepare(grpc::ClientContext* context, double deadline_seconds) const {
  const double seconds = std::min(deadline_seconds, kLongestDeadlineSeconds);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  AddToken(context);
}

void CoordinatorClient::AddToken(grpc::ClientContext* context) const {
  if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
}

#define SRLM_CLIENT_UNARY(Method, Response)                               \
  grpc::ClientContext context;                                            \
  Prepare(&context, options_.deadline_seconds);                           \
  Response response;                                                      \
  grpc::Status status = stub_->Method(&context, request, &response);      \
  if (!status.ok()) return FromGrpcStatus(status, #Method);               \
  return response

absl::StatusOr<v1::RegisterWorkerResponse> CoordinatorClient::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  SRLM_CLIENT_UNARY(RegisterWorker, v1::RegisterWorkerResponse);
}
absl::StatusOr<v1::HeartbeatResponse> CoordinatorClient::Heartbeat(const v1::HeartbeatRequest& request) {
  SRLM_CLIENT_UNARY(Heartbeat, v1::HeartbeatResponse);
}
absl::StatusOr<v1::LeaseShardResponse> CoordinatorClient::LeaseShard(const v1::LeaseShardRequest& request) {
  SRLM_CLIENT_UNARY(LeaseShard, v1::LeaseShardResponse);
}
absl::StatusOr<v1::SubmitShardResponse> CoordinatorClient::SubmitShard(const v1::SubmitShardRequest& request) {
  SRLM_CLIENT_UNARY(SubmitShard, v1::SubmitShardResponse);
}
absl::StatusOr<v1::ReportTrainStepResponse> CoordinatorClient::ReportTrainStep(
    const v1::ReportTrainStepRequest& request) {
  SRLM_CLIENT_UNARY(ReportTrainStep, v1::ReportTrainStepResponse);
}
absl::StatusOr<v1::ReportCheckpointResponse> CoordinatorClient::ReportCheckpoint(
    const v1::ReportCheckpointRequest& request) {
  SRLM_CLIENT_UNARY(ReportCheckpoint, v1::ReportCheckpointResponse);
}
absl::StatusOr<v1::GetStatusResponse> CoordinatorClient::GetStatus() {
  v1::GetStatusRequest request;
  SRLM_CLIENT_UNARY(GetStatus, v1::GetStatusResponse);
}

#undef SRLM_CLIENT_UNARY

absl::Status CoordinatorClient::StreamPairs(const v1::StreamPairsRequest& request,
                                            const std::function<bool(const v1::TrainingPair&)>& on_item) {
  grpc::ClientContext context;
  Prepare(&context, options_.stream_deadline_seconds);
  auto reader = stub_->StreamPairs(&context, request);
  v1::TrainingPair pair;
  while (reader->Read(&pair)) {
    if (!on_item(pair)) {
      context.TryCancel();
      reader->Finish().ok();
      return absl::OkStatus();
    }
  }
  return FromGrpcStatus(reader->Finish(), "StreamPairs");
}

absl::Status CoordinatorClient::ExportPairs(int64_t iteration,
                                            const std::function<bool(const v1::ExportedPair&)>& on_item) {
  grpc::ClientContext context;
  Prepare(&context, options_.stream_deadline_seconds);
  v1::ExportPairsRequest request;
  request.set_iteration(iteration);
  auto reader = stub_->ExportPairs(&context, request);
  v1::ExportedPair pair;
  while (reader->Read(&pair)) {
    if (!on_item(pair)) {
      context.TryCancel();
      reader->Finish().ok();
      return absl::OkStatus();
    }
  }
  return FromGrpcStatus(reader->Finish(), "ExportPairs");
}

absl::Status CoordinatorClient::WatchStatus(double interval_seconds,
                                            const std::function<bool(const v1::GetStatusResponse&)>& on_item) {
  grpc::ClientContext context;
  // No deadline: `srlmctl watch` follows a run of any length (with one it failed after an hour).
  AddToken(&context);
  v1::WatchStatusRequest request;
  request.set_interval_seconds(interval_seconds);
  auto reader = stub_->WatchStatus(&context, request);
  v1::GetStatusResponse status;
  while (reader->Read(&status)) {
    if (!on_item(status)) {
      context.TryCancel();
      reader->Finish().ok();
      return absl::OkStatus();
    }
  }
  return FromGrpcStatus(reader->Finish(), "WatchStatus");
}

}  // namespace srlm::coordinator
