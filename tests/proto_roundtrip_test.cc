// A gRPC round trip through the generated srlm.v1 stubs, in process: proves the generated code,
// the build of srlm_proto and the unary and server-streaming paths.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "srlm/v1/coordinator.grpc.pb.h"

namespace srlm {
namespace {

class FixedStatusService final : public v1::Coordinator::Service {
 public:
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::GetStatusResponse* response) override {
    response->set_iteration(7);
    response->set_phase(v1::PHASE_GENERATE);
    response->set_run_id("run-a");
    return grpc::Status::OK;
  }
  grpc::Status WatchStatus(grpc::ServerContext*, const v1::WatchStatusRequest*,
                           grpc::ServerWriter<v1::GetStatusResponse>* writer) override {
    for (int i = 0; i < 3; ++i) {
      v1::GetStatusResponse update;
      update.set_iteration(i);
      update.set_phase(i == 2 ? v1::PHASE_DONE : v1::PHASE_TRAIN);
      if (!writer->Write(update)) break;
    }
    return grpc::Status::OK;
  }
};

TEST(ProtoRoundTrip, UnaryAndStreamingThroughGeneratedStubs) {
  FixedStatusService service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::Coordinator::NewStub(server->InProcessChannel(grpc::ChannelArguments()));

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetStatusResponse status;
  grpc::Status rpc = stub->GetStatus(&context, v1::GetStatusRequest(), &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(status.iteration(), 7);
  EXPECT_EQ(status.phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(status.run_id(), "run-a");

  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto reader = stub->WatchStatus(&watch_context, v1::WatchStatusRequest());
  std::vector<int64_t> iterations;
  v1::GetStatusResponse update;
  while (reader->Read(&update)) iterations.push_back(update.iteration());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(iterations, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(update.phase(), v1::PHASE_DONE);
  server->Shutdown();
}

}  // namespace
}  // namespace srlm
