// A thin client of the srlm.v1 Coordinator service for workers and srlmctl: every call carries the
// bearer token and a deadline (WatchStatus excepted: it lasts as long as the run), and returns
// absl::Status / StatusOr (gRPC codes kept). Takes the stub interface, so tests can pass a fake.
// Thread-safe (gRPC stubs are).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "srlm/v1/coordinator.grpc.pb.h"

namespace srlm::coordinator {

struct ClientOptions {
  std::string address = "127.0.0.1:50051";  // HOST:PORT
  std::string token;              // bearer token; when empty, read from token_file, then $SRLM_TOKEN
  std::string token_file;
  double deadline_seconds = 30;   // unary calls
  double stream_deadline_seconds = 3600;  // StreamPairs, ExportPairs (WatchStatus has none)
  std::string tls_root_ca_file;   // PEM: turns TLS on (verifies the server against this CA)
  std::string tls_client_cert_file;  // PEM: client certificate for mutual TLS
  std::string tls_client_key_file;
  std::string tls_server_name;    // override of the name checked in the server certificate
  // A send and receive limit of the client's own; 0: none, so that the server's limit (the run's
  // coordinator.max_message_bytes) is the one limit, and raising that key is enough.
  int64_t max_message_bytes = 0;
  // HTTP/2 pings on a connection with a call in flight find a coordinator host that vanished
  // without closing the connection (a watch has no deadline): one every keepalive_seconds, the
  // connection dropped when one is unanswered for keepalive_timeout_seconds. The server refuses
  // pings closer than 5 minutes apart while it sends nothing, hence 6 minutes.
  double keepalive_seconds = 360;
  double keepalive_timeout_seconds = 20;
};

// OK for a HOST:PORT with PORT in 1..65535, or a gRPC unix: target (common/host_port.h); an
// error naming the address otherwise. Connect checks it.
absl::Status CheckCoordinatorAddress(const std::string& address);

class CoordinatorClient {
 public:
  // Builds the channel (does not wait for the server); errors for unreadable token or TLS files
  // and for a token file that holds only white space (INVALID_ARGUMENT).
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(const ClientOptions& options);
  CoordinatorClient(std::unique_ptr<v1::Coordinator::StubInterface> stub, ClientOptions options);

  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::LeaseShardResponse> LeaseShard(const v1::LeaseShardRequest& request);
  absl::StatusOr<v1::SubmitShardResponse> SubmitShard(const v1::SubmitShardRequest& request);
  absl::StatusOr<v1::ReportTrainStepResponse> ReportTrainStep(const v1::ReportTrainStepRequest& request);
  absl::StatusOr<v1::ReportCheckpointResponse> ReportCheckpoint(const v1::ReportCheckpointRequest& request);
  absl::StatusOr<v1::GetStatusResponse> GetStatus();
  // Streams: `on_item` returns false to stop early (then the call ends with OK).
  absl::Status StreamPairs(const v1::StreamPairsRequest& request,
                           const std::function<bool(const v1::TrainingPair&)>& on_item);
  absl::Status ExportPairs(int64_t iteration, const std::function<bool(const v1::ExportedPair&)>& on_item);
  // Without a deadline: a watch lasts until the run is DONE, the server ends it, or `on_item` stops.
  absl::Status WatchStatus(double interval_seconds,
                           const std::function<bool(const v1::GetStatusResponse&)>& on_item);

  const ClientOptions& options() const { return options_; }

 private:
  void Prepare(grpc::ClientContext* context, double deadline_seconds) const;
  void AddToken(grpc::ClientContext* context) const;

  std::unique_ptr<v1::Coordinator::StubInterface> stub_;
  ClientOptions options_;
};

// grpc::Status -> absl::Status with the same code; the message names the RPC.
absl::Status FromGrpcStatus(const grpc::Status& status, const char* rpc);

}  // namespace srlm::coordinator
