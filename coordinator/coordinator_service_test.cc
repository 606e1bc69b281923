// Tests of the gRPC service itself (coordinator/coordinator_service.h, coordinator_server.h):
// authentication, the message size limit, and mutual TLS over loopback. The run coordinator behind
// it is tested through the same server in run_coordinator_*_test.cc and the plain pieces it is
// built from in prompt_filter_test.cc, seen_prompts_test.cc, shard_order_test.cc and
// pair_shuffle_test.cc; all of them make up the coordinator_service_test binary. Time is a fake
// clock (coordinator_test_util.h), so lease expiry is exact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "coordinator/coordinator_test_util.h"

namespace srlm::coordinator {
namespace {

TEST_F(CoordinatorServiceTest, MissingOrWrongTokenIsUnauthenticatedAndChangesNothing) {
  for (const std::string& token : {std::string(), std::string("wrong")}) {
    auto client = MakeClient(token);
    EXPECT_EQ(client->GetStatus().status().code(), absl::StatusCode::kUnauthenticated);
    v1::RegisterWorkerRequest request;
    request.set_rank(0);
    request.set_world_size(1);
    EXPECT_EQ(client->RegisterWorker(request).status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client->WatchStatus(0.1, [](const v1::GetStatusResponse&) { return true; }).code(),
              absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(client->ExportPairs(1, [](const v1::ExportedPair&) { return true; }).code(),
              absl::StatusCode::kUnauthenticated);
  }
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->workers_size(), 0);
  EXPECT_EQ(status->iteration(), 0);
  EXPECT_EQ(status->phase(), v1::PHASE_SFT);
}

// A registration whose hostname is `bytes` long.
v1::RegisterWorkerRequest RegistrationOfSize(size_t bytes) {
  v1::RegisterWorkerRequest request;
  request.set_world_size(1);
  request.set_hostname(std::string(bytes, 'h'));
  return request;
}

// The message size limit: a request over it is refused (RESOURCE_EXHAUSTED) and changes nothing.
TEST_F(CoordinatorServiceTest, OversizedRequestIsRefused) {
  Stop();
  Start(SmallConfig(), /*force=*/false, /*max_message_bytes=*/64 << 10);
  auto client = NetworkClient();
  EXPECT_EQ(client->RegisterWorker(RegistrationOfSize(100 << 10)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(client->GetStatus()->workers_size(), 0);
  EXPECT_TRUE(client->RegisterWorker(RegistrationOfSize(5)).ok());
}

// The server's limit (the run's coordinator.max_message_bytes) is the only one: the client library
// imposed 64 MiB of its own, so raising the key above it helped neither workers nor srlmctl.
TEST_F(CoordinatorServiceTest, TheServersLimitIsTheOnlyLimit) {
  Stop();
  Start(SmallConfig(), /*force=*/false, /*max_message_bytes=*/80 << 20);
  auto client = NetworkClient();
  auto registered = client->RegisterWorker(RegistrationOfSize(70 << 20));  // sent and, in the status, received
  EXPECT_TRUE(registered.ok()) << registered.status();
  auto status = client->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->workers_size(), 1);
  EXPECT_EQ(status->workers(0).hostname().size(), size_t{70 << 20});
  // Over the server's limit.
  EXPECT_EQ(client->RegisterWorker(RegistrationOfSize(90 << 20)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// Mutual TLS over loopback with certificates made by the openssl command: a client holding the CA
// and a certificate it signed is served; one without a client certificate, or without TLS, is not.
TEST(CoordinatorTlsTest, MutualTlsServesOnlyClientsWithACertificate) {
  char pattern[] = "/tmp/srlm_tls_test_XXXXXX";
  const std::string dir = mkdtemp(pattern);
  const std::string script = "cd " + dir + " && "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=srlm-test-ca && "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > ext && "
      "for who in server client; do "
      "openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who && "
      "openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 1 "
      "-extfile ext || exit 1; done";
  ASSERT_EQ(std::system(("(" + script + ") > " + dir + "/openssl.log 2>&1").c_str()), 0) << "openssl failed";
  RunCoordinatorOptions options;
  options.run_dir = dir + "/run";
  auto run = RunCoordinator::Open(options);
  ASSERT_TRUE(run.ok()) << run.status();
  ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.token = kToken;
  server_options.tls_cert_file = dir + "/server.pem";
  server_options.tls_key_file = dir + "/server.key";
  server_options.tls_client_ca_file = dir + "/ca.pem";
  auto server = CoordinatorServer::Start(run->get(), server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto connect = [&](bool tls, bool client_cert) {
    ClientOptions client;
    client.address = "127.0.0.1:" + std::to_string((*server)->port());
    client.token = kToken;
    client.deadline_seconds = 5;
    if (tls) {
      client.tls_root_ca_file = dir + "/ca.pem";
      client.tls_server_name = "localhost";
      if (client_cert) {
        client.tls_client_cert_file = dir + "/client.pem";
        client.tls_client_key_file = dir + "/client.key";
      }
    }
    return std::move(CoordinatorClient::Connect(client)).value();
  };
  auto served = connect(true, true)->GetStatus();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->phase(), v1::PHASE_SFT);
  EXPECT_FALSE(connect(true, false)->GetStatus().ok());
  EXPECT_FALSE(connect(false, false)->GetStatus().ok());
  (*server)->Shutdown();
  server->reset();
  run->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace srlm::coordinator
