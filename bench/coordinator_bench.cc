// Coordinator throughput over loopback: 64 simulated workers lease GENERATE shards and submit small
// results (8 prompt results per shard, each durable before its acknowledgement), then GetStatus is
// called from many threads. Three coordinator processes run side by side: a small pool with group
// commit, the same with group commit off (one transaction and fsync per transition: the baseline),
// and a 1,000,000-prompt pool with group commit. Prints rates, ratios and the coordinator's peak
// memory (VmHWM). The pool is seeded straight into the run database (phase GENERATE) so that the
// measurement is the leasing and submitting alone.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "absl/strings/str_format.h"
#include "coordinator/client/coordinator_client.h"
#include "coordinator/run_coordinator.h"
#include "coordinator/run_schema.h"
#include "coordinator/sqlite_db.h"
#include "tests/coordinator_process.h"

namespace srlm::coordinator {
namespace {

constexpr char kToken[] = "bench-token";

struct RunResult {
  double results_per_second = 0;
  double submits_per_second = 0;
  double status_per_second = 0;
  int64_t peak_rss_kb = 0;
  int64_t errors = 0;
  int64_t empty_leases = 0;  // the pool ran dry inside the window: the rate is then a lower bound
  uint64_t transactions = 0;
};

absl::Status SeedRun(const std::string& run_dir, int64_t pool, int64_t shard_size) {
  std::filesystem::remove_all(run_dir);
  RunConfig config;
  config.run.sft = false;
  config.run.iterations = 1;
  config.prompts.per_iteration = pool;
  config.generate.shard_size = shard_size;
  config.coordinator.lease_seconds = 300;
  {
    RunCoordinatorOptions options;
    options.run_dir = run_dir;
    options.config = config;
    auto run = RunCoordinator::Open(options);  // creates the database and the run
    if (!run.ok()) return run.status();
  }
  auto db = SqliteDb::Open(run_dir + "/state.db", SqliteDb::Mode::kReadWrite);
  if (!db.ok()) return db.status();
  absl::Status s = (*db)->Exec("BEGIN");
  auto insert = (*db)->Prepare("INSERT INTO prompts(iteration, prompt_id, text, lease_id) VALUES(1, ?, ?, 'seed')");
  if (!insert.ok()) return insert.status();
  for (int64_t id = 0; id < pool && s.ok(); ++id) {
    (*insert)->Reset();
    s = (*insert)->Bind(1, id).Bind(2, absl::StrCat("Seeded prompt number ", id, ": explain topic ", id * 7919 % 100003))
            .Run();
  }
  if (s.ok()) s = PutRunValue(**db, "phase", absl::StrCat(static_cast<int>(v1::PHASE_GENERATE)));
  if (s.ok()) s = PutRunValue(**db, "pool_size", absl::StrCat(pool));
  if (s.ok()) s = PutRunValue(**db, "generate_shard_size", absl::StrCat(shard_size));
  if (s.ok()) s = (*db)->Exec("COMMIT");
  return s;
}

int64_t PeakRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      int64_t kb;
      in >> kb;
      return kb;
    }
  }
  return -1;
}

RunResult Measure(const std::string& run_dir, int64_t pool, int workers, double seconds,
                  const std::vector<std::string>& extra_args) {
  RunResult result;
  absl::Status seeded = SeedRun(run_dir, pool, 8);
  if (!seeded.ok()) {
    std::cerr << "seed: " << seeded << std::endl;
    std::exit(1);
  }
  std::vector<std::string> args = {"--token-file", run_dir + "/bench.token"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::ofstream(run_dir + "/bench.token") << kToken << "\n";
  test_support::CoordinatorProcess process(run_dir, args);
  if (!process.Start()) {
    std::cerr << "srlm-coordinator did not start (" << test_support::CoordinatorProcess::BinaryPath() << ")\n";
    std::exit(1);
  }
  ClientOptions options;
  options.address = process.address();
  options.token = kToken;
  options.deadline_seconds = 30;

  // Leasing and submitting.
  std::atomic<bool> go{false}, stop{false};
  std::atomic<int64_t> results{0}, submits{0}, errors{0}, empty_leases{0};
  std::vector<std::thread> threads;
  for (int rank = 0; rank < workers; ++rank) {
    threads.emplace_back([&, rank] {
      auto client = std::move(CoordinatorClient::Connect(options)).value();
      v1::RegisterWorkerRequest registration;
      registration.set_rank(rank);
      registration.set_world_size(workers);
      registration.set_hostname("bench");
      auto worker = client->RegisterWorker(registration);
      if (!worker.ok()) {
        ++errors;
        return;
      }
      v1::LeaseShardRequest lease_request;
      lease_request.set_worker_id(worker->worker_id());
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      while (!stop) {
        auto lease = client->LeaseShard(lease_request);
        if (lease.ok() && !lease->has_generate()) {  // nothing left to lease
          ++empty_leases;
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        if (!lease.ok()) {
          ++errors;
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
          continue;
        }
        v1::SubmitShardRequest submit;
        submit.set_worker_id(worker->worker_id());
        submit.set_lease_id(lease->lease().lease_id());
        for (const v1::PoolPrompt& prompt : lease->generate().prompts()) {
          v1::PromptResult* r = submit.mutable_generate()->add_results();
          r->set_prompt_id(prompt.prompt_id());
          r->add_candidates()->set_text("a good answer");
          r->add_candidates()->set_text("a weak answer");
          r->add_mean_scores(4);
          r->add_mean_scores(2);
          r->mutable_pair()->set_chosen_index(0);
          r->mutable_pair()->set_rejected_index(1);
          r->mutable_pair()->set_chosen_score(4);
          r->mutable_pair()->set_rejected_score(2);
          r->mutable_pair()->set_ref_chosen_logprob(-3);
          r->mutable_pair()->set_ref_rejected_logprob(-4);
        }
        auto submitted = client->SubmitShard(submit);
        if (!submitted.ok()) {
          ++errors;
          continue;
        }
        if (stop) break;  // count only what completed inside the window
        results += submitted->results_accepted();
        ++submits;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // registrations
  go = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // warm-up
  int64_t results_start = results, submits_start = submits;
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.results_per_second = (results - results_start) / elapsed;
  result.empty_leases = empty_leases;
  result.submits_per_second = (submits - submits_start) / elapsed;
  stop = true;
  for (auto& t : threads) t.join();
  threads.clear();

  // GetStatus from many threads.
  std::atomic<int64_t> calls{0};
  std::atomic<bool> status_stop{false};
  const int status_threads = 32;
  for (int i = 0; i < status_threads; ++i) {
    threads.emplace_back([&] {
      auto client = std::move(CoordinatorClient::Connect(options)).value();
      while (!status_stop) {
        if (client->GetStatus().ok()) ++calls; else ++errors;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t calls_start = calls;
  start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000 / 2)));
  elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.status_per_second = (calls - calls_start) / elapsed;
  status_stop = true;
  for (auto& t : threads) t.join();
  result.peak_rss_kb = PeakRssKb(process.pid());
  result.errors = errors;
  process.Kill(SIGTERM);
  return result;
}

void Print(const std::string& name, const RunResult& r) {
  std::cout << absl::StrFormat("%-34s %10.0f results/s %8.0f submits/s %9.0f status/s  peak RSS %6.1f MB  errors %d%s\n",
                               name, r.results_per_second, r.submits_per_second, r.status_per_second,
                               r.peak_rss_kb / 1024.0, r.errors,
                               r.empty_leases > 0 ? "  (POOL RAN DRY: a lower bound; raise --small-pool)" : "");
}

}  // namespace
}  // namespace srlm::coordinator

int main(int argc, char** argv) {
  CLI::App app{"coordinator_bench: 64 simulated workers over loopback against srlm-coordinator"};
  int workers = 64;
  double seconds = 6;
  int64_t small_pool = 300000, large_pool = 1000000;  // small: not exhausted at ~40k results/s x 6 s
  std::string work_dir = "/tmp/srlm_coordinator_bench";
  app.add_option("--workers", workers)->capture_default_str();
  app.add_option("--seconds", seconds, "measurement window per run")->capture_default_str();
  app.add_option("--small-pool", small_pool)->capture_default_str();
  app.add_option("--large-pool", large_pool)->capture_default_str();
  app.add_option("--work-dir", work_dir)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  setenv("SRLM_BUILD_DIR", SRLM_BUILD_DIR_PATH, /*overwrite=*/0);  // where srlm-coordinator is
  srlm::SetMinLogSeverity(srlm::LogSeverity::kWARNING);
  using srlm::coordinator::Measure;
  using srlm::coordinator::Print;
  std::cout << "coordinator_bench: " << workers << " workers, " << std::thread::hardware_concurrency()
            << " hardware threads, shard size 8, " << seconds << " s windows\n";
  auto grouped = Measure(work_dir + "/small", small_pool, workers, seconds, {});
  Print(absl::StrCat("pool ", small_pool, ", group commit"), grouped);
  auto baseline = Measure(work_dir + "/baseline", small_pool, workers, seconds, {"--max-writes-per-transaction", "1"});
  Print(absl::StrCat("pool ", small_pool, ", one txn per write"), baseline);
  auto large = Measure(work_dir + "/large", large_pool, workers, seconds, {});
  Print(absl::StrCat("pool ", large_pool, ", group commit"), large);
  std::cout << absl::StrFormat("group commit / baseline: %.2fx results/s\n",
                               grouped.results_per_second / std::max(1.0, baseline.results_per_second));
  std::cout << absl::StrFormat("large pool / small pool: %.2f results/s, %.2f status/s\n",
                               large.results_per_second / std::max(1.0, grouped.results_per_second),
                               large.status_per_second / std::max(1.0, grouped.status_per_second));
  std::filesystem::remove_all(work_dir);
  return 0;
}
