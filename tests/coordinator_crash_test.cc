// Crash safety of the real coordinator on loopback: four simulated workers (real processes' worth
// of gRPC traffic from threads) drive the run through PROMPTS, GENERATE, TRAIN and COMMIT while the
// srlm-coordinator process is killed with SIGKILL at random moments (20+ trials) and restarted on
// the same run directory. After each restart the iteration and phase equal what the database held
// at the kill and are at least what any acknowledged response showed; at the end every
// acknowledged submission is in the database, and no shard or prompt result is in it twice. Also: a
// client reconnects within seconds of a restart that ends a long outage.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/client/coordinator_client.h"
#include "coordinator/sqlite_db.h"
#include "tests/coordinator_process.h"

namespace srlm {
namespace {

using coordinator::ClientOptions;
using coordinator::CoordinatorClient;
using coordinator::SqliteDb;

constexpr int kWorldSize = 4;
constexpr int kTrials = 22;
constexpr char kToken[] = "crash-test-token";

int PhaseOrder(v1::Phase phase) {
  switch (phase) {
    case v1::PHASE_SFT: return 0;
    case v1::PHASE_PROMPTS: return 1;
    case v1::PHASE_GENERATE: return 2;
    case v1::PHASE_TRAIN: return 3;
    case v1::PHASE_COMMIT: return 4;
    case v1::PHASE_DONE: return 5;
    default: return -1;
  }
}
int64_t Progress(int64_t iteration, v1::Phase phase) { return iteration * 10 + PhaseOrder(phase); }

struct Ack {
  std::string lease_id;
  int64_t iteration;  // the lease's (its id begins "i<iteration>-")
  char kind;
  bool duplicate;
  int64_t prompts_accepted;
  std::vector<int64_t> prompt_ids;
};

class Shared {
 public:
  std::atomic<bool> stop{false};
  std::atomic<bool> paused{false};
  std::atomic<int> in_rpc{0};
  std::mutex mutex;
  std::vector<Ack> acks;
  int64_t max_acked_progress = 0;
  std::string address;

  void Record(Ack ack, int64_t iteration, v1::Phase phase) {
    std::lock_guard<std::mutex> lock(mutex);
    acks.push_back(std::move(ack));
    max_acked_progress = std::max(max_acked_progress, Progress(iteration, phase));
  }
  void Observe(int64_t iteration, v1::Phase phase) {
    std::lock_guard<std::mutex> lock(mutex);
    max_acked_progress = std::max(max_acked_progress, Progress(iteration, phase));
  }
};

// One simulated worker: retries every call through coordinator restarts until it succeeds or the
// coordinator refuses it for good.
class SimulatedWorker {
 public:
  SimulatedWorker(Shared* shared, int rank) : shared_(shared), rank_(rank) {}

  void Run() {
    ClientOptions options;
    options.address = shared_->address;
    options.token = kToken;
    options.deadline_seconds = 2;
    client_ = std::move(CoordinatorClient::Connect(options)).value();
    v1::RegisterWorkerRequest registration;
    registration.set_hostname("loopback");
    registration.set_rank(rank_);
    registration.set_world_size(kWorldSize);
    auto registered = Call([&] { return client_->RegisterWorker(registration); });
    if (!registered.ok()) return;
    worker_id_ = registered->worker_id();
    while (!shared_->stop) Step();
  }

 private:
  template <typename F>
  auto Call(F f) -> decltype(f()) {
    while (true) {
      // Count this call as in flight before looking at `paused`: the main thread sets `paused`,
      // then waits for no call in flight, so no call reaches a restarted coordinator before the
      // test has read its status.
      while (true) {
        ++shared_->in_rpc;
        if (!shared_->paused || shared_->stop) break;
        --shared_->in_rpc;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      auto result = f();
      --shared_->in_rpc;
      if (result.ok() || shared_->stop) return result;
      const absl::StatusCode code = result.status().code();
      if (code != absl::StatusCode::kUnavailable && code != absl::StatusCode::kDeadlineExceeded &&
          code != absl::StatusCode::kCancelled && code != absl::StatusCode::kUnknown &&
          code != absl::StatusCode::kInternal) {
        return result;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void Step() {
    v1::LeaseShardRequest request;
    request.set_worker_id(worker_id_);
    auto lease = Call([&] { return client_->LeaseShard(request); });
    if (!lease.ok()) return;
    shared_->Observe(lease->iteration(), lease->phase());
    if (lease->has_wait()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else if (lease->has_prompts()) {
      v1::SubmitShardRequest submit;
      submit.set_worker_id(worker_id_);
      submit.set_lease_id(lease->lease().lease_id());
      for (int64_t i = 0; i < lease->prompts().num_prompts(); ++i) {
        submit.mutable_prompts()->add_prompts(
            absl::StrCat("w", rank_, "x", counter_, " describe item ", rank_, "-", counter_, " in detail"));
        ++counter_;
      }
      Submit(submit, 'P');
    } else if (lease->has_generate()) {
      v1::SubmitShardRequest submit;
      submit.set_worker_id(worker_id_);
      submit.set_lease_id(lease->lease().lease_id());
      for (const v1::PoolPrompt& prompt : lease->generate().prompts()) {
        v1::PromptResult* result = submit.mutable_generate()->add_results();
        result->set_prompt_id(prompt.prompt_id());
        result->add_candidates()->set_text("good answer to " + prompt.text());
        result->add_candidates()->set_text("bad answer to " + prompt.text());
        result->add_mean_scores(4);
        result->add_mean_scores(1);
        if (prompt.prompt_id() % 7 == 3) {
          result->set_drop_reason(v1::DROP_REASON_UNPARSABLE);
        } else {
          result->mutable_pair()->set_chosen_index(0);
          result->mutable_pair()->set_rejected_index(1);
          result->mutable_pair()->set_chosen_score(4);
          result->mutable_pair()->set_rejected_score(1);
        }
      }
      Submit(submit, 'G');
    } else if (lease->has_train()) {
      v1::StreamPairsRequest stream;
      stream.set_worker_id(worker_id_);
      stream.set_iteration(lease->train().iteration());
      stream.set_rank(rank_);
      stream.set_world_size(kWorldSize);
      auto streamed = Call([&]() -> absl::StatusOr<int> {
        int count = 0;
        absl::Status s = client_->StreamPairs(stream, [&](const v1::TrainingPair& pair) {
          EXPECT_EQ(pair.position() % kWorldSize, rank_);
          ++count;
          return true;
        });
        if (!s.ok()) return s;
        return count;
      });
      v1::ReportCheckpointRequest checkpoint;
      checkpoint.set_worker_id(worker_id_);
      checkpoint.set_rank(rank_);
      checkpoint.set_world_size(kWorldSize);
      checkpoint.set_iteration(lease->train().iteration());
      checkpoint.set_checkpoint_dir(absl::StrCat("/ckpt/m", lease->train().iteration() + 1));
      auto reported = Call([&] { return client_->ReportCheckpoint(checkpoint); });
      if (reported.ok()) shared_->Observe(reported->iteration(), reported->phase());
    }
  }

  void Submit(const v1::SubmitShardRequest& submit, char kind) {
    auto response = Call([&] { return client_->SubmitShard(submit); });
    if (!response.ok()) {
      // Refusals are legitimate (a lease whose grant was lost in a crash expired and was handed on).
      EXPECT_TRUE(response.status().code() == absl::StatusCode::kFailedPrecondition ||
                  response.status().code() == absl::StatusCode::kNotFound)
          << response.status();
      return;
    }
    const std::string& lease_id = submit.lease_id();
    Ack ack{lease_id, std::stoll(lease_id.substr(1, lease_id.find('-') - 1)), kind, response->duplicate(),
            response->prompts_accepted(), {}};
    if (kind == 'G') {
      for (const auto& r : submit.generate().results()) ack.prompt_ids.push_back(r.prompt_id());
    }
    shared_->Record(std::move(ack), response->iteration(), response->phase());
  }

  Shared* shared_;
  int rank_;
  int64_t counter_ = 0;
  std::string worker_id_;
  std::unique_ptr<CoordinatorClient> client_;
};

struct DbState {
  int64_t iteration = -1;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
};

DbState ReadDbState(const std::string& path) {
  DbState state;
  auto db = SqliteDb::Open(path, SqliteDb::Mode::kReadOnly);
  EXPECT_TRUE(db.ok()) << db.status();
  if (!db.ok()) return state;
  state.iteration = *(*db)->QueryInt("SELECT CAST(value AS INTEGER) FROM run WHERE key = 'iteration'", -1);
  state.phase = static_cast<v1::Phase>(
      *(*db)->QueryInt("SELECT CAST(value AS INTEGER) FROM run WHERE key = 'phase'", 0));
  return state;
}

// A new folder from mkdtemp(`pattern`) holding run.yaml (the demo's data section, then `yaml`) and
// token.txt (kToken).
std::string NewRunDir(std::string pattern, const std::string& yaml) {
  const std::string run_dir = mkdtemp(pattern.data());
  std::ofstream(run_dir + "/run.yaml") << test_support::DemoDataYaml() << yaml;
  std::ofstream(run_dir + "/token.txt") << kToken << "\n";
  return run_dir;
}

// The coordinator's flags for a NewRunDir folder.
std::vector<std::string> CoordinatorArgs(const std::string& run_dir) {
  return {"--config", run_dir + "/run.yaml", "--token-file", run_dir + "/token.txt"};
}

constexpr char kOneIterationRun[] = "model:\n  path: /models/m0\nrun:\n  sft: false\n  iterations: 1\n";

TEST(CoordinatorCrashTest, KillNineUnderLoadLosesNoAcknowledgedSubmission) {
  const std::string run_dir = NewRunDir("/tmp/srlm_crash_test_XXXXXX",
                                         "model:\n  path: /models/m0\nrun:\n  sft: false\n  iterations: 1000\n  seed: 9\n"
                                         "prompts:\n  per_iteration: 24\n  shard_size: 4\n"
                                         "generate:\n  shard_size: 3\n"
                                         "coordinator:\n  lease_seconds: 1\n  heartbeat_seconds: 0.5\n");
  test_support::CoordinatorProcess process(run_dir, CoordinatorArgs(run_dir));
  ASSERT_TRUE(process.Start()) << "srlm-coordinator did not start: " << test_support::CoordinatorProcess::BinaryPath();
  Shared shared;
  shared.address = process.address();
  std::vector<std::unique_ptr<SimulatedWorker>> workers;
  std::vector<std::thread> threads;
  struct JoinOnExit {
    Shared* shared;
    std::vector<std::thread>* threads;
    ~JoinOnExit() {
      shared->stop = true;
      for (auto& t : *threads) if (t.joinable()) t.join();
    }
  } join_on_exit{&shared, &threads};
  for (int rank = 0; rank < kWorldSize; ++rank) {
    workers.push_back(std::make_unique<SimulatedWorker>(&shared, rank));
    threads.emplace_back([w = workers.back().get()] { w->Run(); });
  }
  ClientOptions options;
  options.address = process.address();
  options.token = kToken;
  options.deadline_seconds = 5;
  auto observer = std::move(CoordinatorClient::Connect(options)).value();

  std::mt19937 random(12345);
  std::set<int64_t> iterations_seen;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(40, 400)(random)));
    ASSERT_EQ(process.Kill(SIGKILL) & 0x7f, SIGKILL) << "trial " << trial;
    shared.paused = true;
    // Calls already on their way fail against the dead coordinator (within their 2 s deadline).
    while (shared.in_rpc > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    DbState at_kill = ReadDbState(run_dir + "/state.db");
    {
      std::lock_guard<std::mutex> lock(shared.mutex);
      EXPECT_GE(Progress(at_kill.iteration, at_kill.phase), shared.max_acked_progress)
          << "trial " << trial << ": an acknowledged transition is not in the database";
    }
    ASSERT_TRUE(process.Start()) << "restart failed at trial " << trial;
    auto status = observer->GetStatus();
    for (int retry = 0; retry < 100 && !status.ok(); ++retry) {  // the channel reconnects
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      status = observer->GetStatus();
    }
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->iteration(), at_kill.iteration) << "trial " << trial;
    EXPECT_EQ(status->phase(), at_kill.phase) << "trial " << trial;
    iterations_seen.insert(status->iteration());
    shared.paused = false;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  shared.stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(process.Kill(SIGTERM), 0) << "graceful stop";

  // Every acknowledged submission is present; nothing is there twice.
  auto db = std::move(SqliteDb::Open(run_dir + "/state.db", SqliteDb::Mode::kReadOnly)).value();
  std::map<std::string, int> first_acks;
  int generate_acks = 0, prompt_acks = 0;
  std::map<int64_t, int64_t> acked_prompts;  // iteration -> prompts_accepted over first acks
  for (const Ack& ack : shared.acks) {
    if (!ack.duplicate) ++first_acks[ack.lease_id];
    auto state = db->Prepare("SELECT state FROM leases WHERE lease_id = ?");
    ASSERT_TRUE(state.ok());
    (*state)->Bind(1, ack.lease_id);
    ASSERT_TRUE(*(*state)->Step()) << ack.lease_id << " acknowledged but not in the database";
    EXPECT_EQ((*state)->ColumnText(0), "completed") << ack.lease_id;
    (*state)->Reset();
    if (ack.kind == 'G') {
      ++generate_acks;
      auto rows = db->Prepare("SELECT prompt_id FROM results WHERE lease_id = ? ORDER BY prompt_id");
      ASSERT_TRUE(rows.ok());
      (*rows)->Bind(1, ack.lease_id);
      std::vector<int64_t> stored;
      while (*(*rows)->Step()) stored.push_back((*rows)->ColumnInt(0));
      (*rows)->Reset();
      EXPECT_EQ(stored, ack.prompt_ids) << ack.lease_id;
    } else {
      ++prompt_acks;
      // A PROMPTS ack counts the prompts its submission let into the pool (its own shard's and
      // those of later shards that were held for it), so per iteration they add up to at most the
      // pool (an ack can be lost to a kill).
      if (!ack.duplicate) acked_prompts[ack.iteration] += ack.prompts_accepted;
    }
  }
  for (const auto& [iteration, acked] : acked_prompts) {
    EXPECT_LE(acked, *db->QueryInt(absl::StrCat("SELECT COUNT(*) FROM prompts WHERE iteration = ", iteration), -1))
        << "iteration " << iteration;
  }
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM leases l WHERE kind = 'P' AND state = 'completed' AND "
                          "prompts_accepted != (SELECT COUNT(*) FROM prompts p WHERE p.lease_id = l.lease_id)", -1),
            0)
      << "a PROMPTS lease's count disagrees with the prompts stored from it";
  // The pool fills in shard order: a later prompt id never comes from an earlier shard.
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM prompts a JOIN leases la ON la.lease_id = a.lease_id "
                          "JOIN prompts b ON b.iteration = a.iteration AND b.prompt_id > a.prompt_id "
                          "JOIN leases lb ON lb.lease_id = b.lease_id WHERE lb.shard_id < la.shard_id", -1),
            0)
      << "prompts entered the pool out of shard order";
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM held_prompts h JOIN leases l ON l.lease_id = h.lease_id "
                          "WHERE l.state != 'completed' OR h.iteration IN (SELECT iteration FROM results)", -1),
            0)
      << "held prompts of a lease that was not accepted, or of an iteration past PROMPTS";
  for (const auto& [lease, count] : first_acks) EXPECT_EQ(count, 1) << lease << " accepted twice";
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM (SELECT 1 FROM leases WHERE state = 'completed' "
                          "GROUP BY iteration, kind, shard_id HAVING COUNT(*) > 1)", -1), 0)
      << "a shard was completed twice";
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM results r JOIN leases l ON l.lease_id = r.lease_id "
                          "WHERE l.state != 'completed'", -1), 0)
      << "results stored from a lease that was not accepted";
  EXPECT_EQ(*db->QueryInt("SELECT COUNT(*) FROM (SELECT 1 FROM prompts GROUP BY iteration "
                          "HAVING COUNT(*) > 24)", -1), 0);
  // The run moved through whole iterations during the trials.
  EXPECT_GE(generate_acks, 8);  // the run did real work between kills (loose: the machine is shared)
  EXPECT_GE(prompt_acks, 4);
  EXPECT_GE(*db->QueryInt("SELECT COUNT(*) FROM commits", 0), 1);
  std::cout << "acks " << shared.acks.size() << " (generate " << generate_acks << ", prompts " << prompt_acks
            << "), iterations seen at restarts " << iterations_seen.size() << ", committed iterations "
            << *db->QueryInt("SELECT COUNT(*) FROM commits", 0) << ", PROMPTS shards completed before an earlier one "
            << *db->QueryInt("SELECT COUNT(DISTINCT b.lease_id) FROM leases a JOIN leases b ON b.iteration = a.iteration "
                             "AND b.kind = 'P' AND b.state = 'completed' AND b.shard_id > a.shard_id AND "
                             "b.completed_ms < a.completed_ms WHERE a.kind = 'P' AND a.state = 'completed'", -1)
            << std::endl;
  db.reset();
  std::filesystem::remove_all(run_dir);
}

// A coordinator back after a 65 s outage answers its clients within seconds. With gRPC's own
// reconnect backoff (1 s, x1.6, up to 120 s) the channel's attempts drift apart and every call
// between two attempts fails at once (UNAVAILABLE): the first answer came 13.3 s after the restart
// (after a 31 s outage, 1.7 s: the outage is long on purpose), so a worker's --retry-seconds covered
// much less outage than it says. With the client's reconnect settings it came in 0.6 s.
TEST(CoordinatorCrashTest, ClientReconnectsWithinSecondsOfARestartAfterALongOutage) {
  const std::string run_dir = NewRunDir("/tmp/srlm_reconnect_test_XXXXXX", kOneIterationRun);
  test_support::CoordinatorProcess process(run_dir, CoordinatorArgs(run_dir));
  ASSERT_TRUE(process.Start());
  ClientOptions options;
  options.address = process.address();
  options.token = kToken;
  options.deadline_seconds = 2;
  auto client = std::move(CoordinatorClient::Connect(options)).value();
  ASSERT_TRUE(client->GetStatus().ok());
  ASSERT_EQ(process.Kill(SIGKILL) & 0x7f, SIGKILL);
  // Calls every 100 ms through the outage, as RetryingCoordinatorLink makes them.
  using Clock = std::chrono::steady_clock;
  const auto outage_ends = Clock::now() + std::chrono::seconds(65);
  while (Clock::now() < outage_ends) {
    EXPECT_FALSE(client->GetStatus().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(process.Start());
  const auto restarted = Clock::now();
  bool answered = false;
  while (!answered && Clock::now() - restarted < std::chrono::seconds(30)) {
    answered = client->GetStatus().ok();
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - restarted).count();
  ASSERT_TRUE(answered);
  EXPECT_LT(seconds, 5.0) << "the first answer came " << seconds << " s after the restart";
  EXPECT_EQ(process.Kill(SIGTERM), 0);
  std::filesystem::remove_all(run_dir);
}

// A watch (no deadline) on a coordinator that stops answering without closing its connection (a
// host that vanished; here the process is stopped with SIGSTOP) ends with an error once a keepalive
// ping goes unanswered. Pings 1 s apart here (6 minutes in use): the live coordinator streams an
// item every 0.2 s, so it takes them, and the watch runs 5 s (several pings) before the stop. With
// pings 6 minutes apart the watch still waits 30 s after the stop (checked): no ping, no end.
TEST(CoordinatorCrashTest, AWatchEndsWhenTheCoordinatorStopsAnsweringPings) {
  const std::string run_dir = NewRunDir("/tmp/srlm_keepalive_test_XXXXXX", kOneIterationRun);
  test_support::CoordinatorProcess process(run_dir, CoordinatorArgs(run_dir));
  ASSERT_TRUE(process.Start());
  ClientOptions options;
  options.address = process.address();
  options.token = kToken;
  options.keepalive_seconds = 1;
  options.keepalive_timeout_seconds = 1;
  auto client = std::move(CoordinatorClient::Connect(options)).value();
  using Clock = std::chrono::steady_clock;
  std::atomic<int64_t> items{0};
  std::atomic<bool> ended{false};
  absl::Status watch_status;
  std::thread watch([&] {
    watch_status = client->WatchStatus(0.2, [&](const v1::GetStatusResponse&) {
      ++items;
      return true;
    });
    ended = true;
  });
  std::this_thread::sleep_for(std::chrono::seconds(5));
  EXPECT_FALSE(ended.load()) << watch_status;  // the live coordinator took the pings
  EXPECT_GE(items.load(), 10);
  ASSERT_EQ(::kill(process.pid(), SIGSTOP), 0);
  const auto stopped = Clock::now();
  while (!ended && Clock::now() - stopped < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - stopped).count();
  EXPECT_TRUE(ended.load()) << "the watch still waits " << seconds << " s after the coordinator stopped";
  EXPECT_LT(seconds, 10.0);
  // Ends the watch (if it still waits) with the process.
  EXPECT_EQ(process.Kill(SIGKILL) & 0x7f, SIGKILL);
  watch.join();
  EXPECT_EQ(watch_status.code(), absl::StatusCode::kUnavailable) << watch_status;
  std::filesystem::remove_all(run_dir);
}

}  // namespace
}  // namespace srlm
