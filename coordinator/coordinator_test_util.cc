// Implementation of coordinator/coordinator_test_util.h.
#include "coordinator/coordinator_test_util.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {

RunConfig SmallConfig() {
  RunConfig config;
  config.model.path = "/models/m0";
  config.run.sft = true;
  config.run.iterations = 1;
  config.run.seed = 77;
  config.prompts.per_iteration = 6;
  config.prompts.shard_size = 3;
  config.generate.shard_size = 2;
  config.coordinator.lease_seconds = 10;
  config.coordinator.heartbeat_seconds = 5;  // a lease spans at least two
  return config;
}

void WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

void CoordinatorServiceTest::SetUp() {
  char pattern[] = "/tmp/srlm_coord_test_XXXXXX";
  run_dir_ = mkdtemp(pattern);
  Start(SmallConfig());
}

void CoordinatorServiceTest::TearDown() {
  Stop();
  std::filesystem::remove_all(run_dir_);
}

void CoordinatorServiceTest::Start(std::optional<RunConfig> config, bool force, int64_t max_message_bytes) {
  RunCoordinatorOptions options;
  options.run_dir = run_dir_;
  options.config = config;
  options.force_config = force;
  options.clock_ms = [this] { return now_ms_.load(); };
  auto run = RunCoordinator::Open(options);
  ASSERT_TRUE(run.ok()) << run.status();
  run_ = std::move(*run);
  ServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.token = kToken;
  server_options.max_message_bytes = max_message_bytes;
  auto server = CoordinatorServer::Start(run_.get(), server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  client_ = MakeClient(kToken);
}

std::unique_ptr<CoordinatorClient> CoordinatorServiceTest::NetworkClient() {
  ClientOptions options;
  options.address = "127.0.0.1:" + std::to_string(server_->port());
  options.token = kToken;
  return std::move(CoordinatorClient::Connect(options)).value();
}

void CoordinatorServiceTest::Stop() {
  client_.reset();
  if (server_) server_->Shutdown();
  server_.reset();
  run_.reset();
}

RunConfig CoordinatorServiceTest::DiscardRun() {
  Stop();
  std::filesystem::remove_all(run_dir_);
  return SmallConfig();
}

absl::Status CoordinatorServiceTest::OpenStatus(std::optional<RunConfig> config, bool force) {
  RunCoordinatorOptions options;
  options.run_dir = run_dir_;
  options.config = std::move(config);
  options.force_config = force;
  return RunCoordinator::Open(options).status();
}

std::unique_ptr<CoordinatorClient> CoordinatorServiceTest::MakeClient(const std::string& token) {
  ClientOptions options;
  options.token = token;
  options.deadline_seconds = 20;
  return std::make_unique<CoordinatorClient>(
      v1::Coordinator::NewStub(server_->grpc_server()->InProcessChannel(grpc::ChannelArguments())),
      options);
}

std::string CoordinatorServiceTest::Register(int rank, int world_size) {
  v1::RegisterWorkerRequest request;
  request.set_hostname("host");
  request.set_pid(100 + rank);
  request.set_rank(rank);
  request.set_world_size(world_size);
  request.set_device("cpu");
  auto response = client_->RegisterWorker(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->worker_id() : "";
}

v1::LeaseShardResponse CoordinatorServiceTest::Lease(const std::string& worker, bool stopping) {
  v1::LeaseShardRequest request;
  request.set_worker_id(worker);
  request.set_stopping(stopping);
  auto response = client_->LeaseShard(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? *response : v1::LeaseShardResponse();
}

absl::StatusOr<v1::SubmitShardResponse> CoordinatorServiceTest::SubmitPrompts(
    const std::string& worker, const std::string& lease, std::vector<std::string> prompts) {
  v1::SubmitShardRequest request;
  request.set_worker_id(worker);
  request.set_lease_id(lease);
  request.mutable_prompts();  // set even when there are none
  for (auto& p : prompts) request.mutable_prompts()->add_prompts(p);
  return client_->SubmitShard(request);
}

v1::SubmitShardRequest CoordinatorServiceTest::GenerateRequest(const std::string& worker,
                                                               const v1::LeaseShardResponse& lease) {
  v1::SubmitShardRequest request;
  request.set_worker_id(worker);
  request.set_lease_id(lease.lease().lease_id());
  for (const v1::PoolPrompt& prompt : lease.generate().prompts()) {
    v1::PromptResult* result = request.mutable_generate()->add_results();
    result->set_prompt_id(prompt.prompt_id());
    for (int c = 0; c < 3; ++c) {
      v1::Candidate* candidate = result->add_candidates();
      candidate->set_text("answer " + std::to_string(c) + " to " + prompt.text());
      candidate->set_num_tokens(5 + c);
      v1::Judgement* judgement = result->add_judgements();
      judgement->set_candidate_index(c);
      judgement->set_raw_text("Score: " + std::to_string(c + 1));
      judgement->set_score(c + 1);
      // Prompt 0's first candidate has no parsed judgement: its mean is sent as min_score - 1.
      result->add_mean_scores(prompt.prompt_id() == 0 && c == 0 ? -1 : c + 1);
    }
    if (prompt.prompt_id() % 5 == 0) {
      result->set_drop_reason(v1::DROP_REASON_TIE);
    } else {
      v1::PreferencePair* pair = result->mutable_pair();
      pair->set_chosen_index(2);
      pair->set_rejected_index(0);
      pair->set_chosen_score(3);
      pair->set_rejected_score(1);
      pair->set_ref_chosen_logprob(-10.5 - prompt.prompt_id());
      pair->set_ref_rejected_logprob(-12.25);
      pair->set_chosen_num_tokens(7);
      pair->set_rejected_num_tokens(5);
    }
  }
  return request;
}

absl::StatusOr<v1::ReportCheckpointResponse> CoordinatorServiceTest::Checkpoint(
    const std::string& worker, int rank, int ws, int64_t iteration, const std::string& dir) {
  v1::ReportCheckpointRequest request;
  request.set_worker_id(worker);
  request.set_rank(rank);
  request.set_world_size(ws);
  request.set_iteration(iteration);
  request.set_checkpoint_dir(dir);
  return client_->ReportCheckpoint(request);
}

void CoordinatorServiceTest::FinishSft(const std::string& w0, const std::string& w1) {
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
  auto done = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_TRUE(done->committed());
}

void CoordinatorServiceTest::FinishSftWithRanks(const std::vector<std::string>& workers) {
  const int ws = static_cast<int>(workers.size());
  for (int rank = 0; rank < ws; ++rank) {
    auto reported = Checkpoint(workers[rank], rank, ws, 0, "/ckpt/m1");
    ASSERT_TRUE(reported.ok()) << reported.status();
    EXPECT_EQ(reported->committed(), rank + 1 == ws);
  }
}

v1::LeaseShardResponse CoordinatorServiceTest::LeaseAndSubmitGenerate(const std::string& worker) {
  v1::LeaseShardResponse lease = Lease(worker);
  EXPECT_TRUE(lease.has_generate()) << lease.DebugString();
  auto accepted = client_->SubmitShard(GenerateRequest(worker, lease));
  EXPECT_TRUE(accepted.ok()) << accepted.status();
  return lease;
}

void CoordinatorServiceTest::FillPrompts(const std::string& worker) {
  for (int shard = 0; shard < 2; ++shard) {
    v1::LeaseShardResponse lease = Lease(worker);
    ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
    std::vector<std::string> prompts;
    for (int i = 0; i < 3; ++i) {
      prompts.push_back("Explain topic number " + std::to_string(shard * 3 + i) + " in plain words " +
                        std::string(1, 'a' + shard * 3 + i) + " please");
    }
    ASSERT_TRUE(SubmitPrompts(worker, lease.lease().lease_id(), prompts).ok());
  }
}

void CoordinatorServiceTest::StartPromptsWithSeenPrompts(std::string* w0, std::string* w1) {
  RunConfig config = DiscardRun();
  std::filesystem::create_directories(run_dir_);
  config.data.ift = run_dir_ + "/ift.jsonl";
  config.data.eval = run_dir_ + "/eval.jsonl";
  WriteTextFile(config.data.ift,
                "{\"prompt\": \"Describe how rainbows form in the sky\", \"response\": \"Light bends.\"}\n"
                "{\"prompt\": \"List three uses of copper wire\", \"response\": \"Wiring, motors, coils.\"}\n");
  WriteTextFile(config.data.eval,
                "{\"prompt\": \"What is the capital city of France?\", \"answer\": \"Paris\"}\n"
                "\n"
                "{\"prompt\": \"Name the largest planet in our solar system\", \"answer\": \"Jupiter\"}\n");
  Start(config);
  *w0 = Register(0, 2);
  *w1 = Register(1, 2);
  FinishSft(*w0, *w1);
}

void CoordinatorServiceTest::ExpectSeenPromptsDropped(const std::string& worker, const std::string& fresh) {
  v1::LeaseShardResponse lease = Lease(worker);
  ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
  auto submitted = SubmitPrompts(worker, lease.lease().lease_id(),
                                 {"Describe how rainbows form in the sky", "what is the CAPITAL city of france",
                                  "Name the largest planet in our solar system today", fresh});
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->prompts_accepted(), 1);
  EXPECT_EQ(submitted->prompts_dropped_seen(), 3);
  EXPECT_EQ(submitted->prompts_dropped_duplicate(), 0);
  EXPECT_EQ(submitted->prompts_dropped_near_duplicate(), 0);
  EXPECT_EQ(submitted->prompts_dropped_length(), 0);
}

std::vector<std::string> CoordinatorServiceTest::StoredPool() {
  auto db = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadOnly);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return {};
  auto pool = (*db)->Prepare("SELECT text FROM prompts WHERE iteration = 1 ORDER BY prompt_id");
  EXPECT_TRUE(pool.ok()) << pool.status();
  if (!pool.ok()) return {};
  std::vector<std::string> texts;
  while (*(*pool)->Step()) texts.push_back((*pool)->ColumnText(0));
  (*pool)->Reset();
  return texts;
}

}  // namespace srlm::coordinator
