// In-process tests of every Coordinator RPC through the real gRPC server and the client library:
// the iteration cycle SFT -> PROMPTS -> GENERATE -> TRAIN -> COMMIT -> DONE, the prompt filter (and
// the data.ift and data.eval prompts it treats as seen), lease expiry and hand-on, duplicate
// submissions, re-registration, authentication, argument checks and resuming from the database.
// Time is a fake clock, so lease expiry is exact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "coordinator/client/coordinator_client.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/pair_shuffle.h"
#include "coordinator/run_coordinator.h"
#include "coordinator/seen_prompt_index.h"
#include "coordinator/seen_prompts.h"
#include "coordinator/shard_order.h"
#include "coordinator/sqlite_db.h"

namespace srlm::coordinator {
namespace {

constexpr char kToken[] = "test-token-123";

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
  return config;
}

void WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class CoordinatorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/srlm_coord_test_XXXXXX";
    run_dir_ = mkdtemp(pattern);
    Start(SmallConfig());
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(run_dir_);
  }

  void Start(std::optional<RunConfig> config, bool force = false, int64_t max_message_bytes = 64 << 20) {
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
  // A client over loopback TCP with default options, as workers and srlmctl connect.
  std::unique_ptr<CoordinatorClient> NetworkClient() {
    ClientOptions options;
    options.address = "127.0.0.1:" + std::to_string(server_->port());
    options.token = kToken;
    return std::move(CoordinatorClient::Connect(options)).value();
  }
  void Stop() {
    client_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
    run_.reset();
  }
  // Ends the fixture's run and removes its directory, for a test that starts a run of its own
  // (Start(config)); returns SmallConfig() to change first.
  RunConfig DiscardRun() {
    Stop();
    std::filesystem::remove_all(run_dir_);
    return SmallConfig();
  }
  // What opening the run directory with `config` gives, while no coordinator holds it (the run is
  // closed again at once).
  absl::Status OpenStatus(std::optional<RunConfig> config, bool force = false) {
    RunCoordinatorOptions options;
    options.run_dir = run_dir_;
    options.config = std::move(config);
    options.force_config = force;
    return RunCoordinator::Open(options).status();
  }
  std::unique_ptr<CoordinatorClient> MakeClient(const std::string& token) {
    ClientOptions options;
    options.token = token;
    options.deadline_seconds = 20;
    return std::make_unique<CoordinatorClient>(
        v1::Coordinator::NewStub(server_->grpc_server()->InProcessChannel(grpc::ChannelArguments())),
        options);
  }
  std::string Register(int rank, int world_size) {
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
  v1::LeaseShardResponse Lease(const std::string& worker, bool stopping = false) {
    v1::LeaseShardRequest request;
    request.set_worker_id(worker);
    request.set_stopping(stopping);
    auto response = client_->LeaseShard(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::LeaseShardResponse();
  }
  absl::StatusOr<v1::SubmitShardResponse> SubmitPrompts(const std::string& worker, const std::string& lease,
                                                        std::vector<std::string> prompts) {
    v1::SubmitShardRequest request;
    request.set_worker_id(worker);
    request.set_lease_id(lease);
    request.mutable_prompts();  // set even when there are none
    for (auto& p : prompts) request.mutable_prompts()->add_prompts(p);
    return client_->SubmitShard(request);
  }
  // A GENERATE result for every prompt of the shard: a pair unless the prompt id is divisible by 5.
  static v1::SubmitShardRequest GenerateRequest(const std::string& worker, const v1::LeaseShardResponse& lease) {
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
  absl::StatusOr<v1::ReportCheckpointResponse> Checkpoint(const std::string& worker, int rank, int ws,
                                                          int64_t iteration, const std::string& dir) {
    v1::ReportCheckpointRequest request;
    request.set_worker_id(worker);
    request.set_rank(rank);
    request.set_world_size(ws);
    request.set_iteration(iteration);
    request.set_checkpoint_dir(dir);
    return client_->ReportCheckpoint(request);
  }
  // SFT at iteration 0 with two ranks -> iteration 1 PROMPTS.
  void FinishSft(const std::string& w0, const std::string& w1) {
    ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
    auto done = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_TRUE(done->committed());
  }
  // SFT at iteration 0 reported by each of `workers` (rank = position) -> iteration 1 PROMPTS.
  void FinishSftWithRanks(const std::vector<std::string>& workers) {
    const int ws = static_cast<int>(workers.size());
    for (int rank = 0; rank < ws; ++rank) {
      auto reported = Checkpoint(workers[rank], rank, ws, 0, "/ckpt/m1");
      ASSERT_TRUE(reported.ok()) << reported.status();
      EXPECT_EQ(reported->committed(), rank + 1 == ws);
    }
  }
  // Leases a GENERATE shard for `worker` and submits its results; returns the lease.
  v1::LeaseShardResponse LeaseAndSubmitGenerate(const std::string& worker) {
    v1::LeaseShardResponse lease = Lease(worker);
    EXPECT_TRUE(lease.has_generate()) << lease.DebugString();
    auto accepted = client_->SubmitShard(GenerateRequest(worker, lease));
    EXPECT_TRUE(accepted.ok()) << accepted.status();
    return lease;
  }
  // Fills the PROMPTS pool with 6 distinct prompts.
  void FillPrompts(const std::string& worker) {
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

  // A run whose data.ift and data.eval are files in the run directory, at iteration 1 PROMPTS after
  // SFT (a fresh PROMPTS phase, not one rebuilt at Open), registered as `w0` and `w1`. The pool's
  // near-duplicates are by 3-grams at 0.7 (the defaults).
  void StartPromptsWithSeenPrompts(std::string* w0, std::string* w1) {
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
  // Submits, as one PROMPTS shard of `worker`: a copy of an IFT prompt, an eval prompt in another
  // case and punctuation, a near-duplicate of an eval prompt, and `fresh`. The first three must be
  // dropped, counted as two duplicates and one near-duplicate, and `fresh` accepted.
  void ExpectSeenPromptsDropped(const std::string& worker, const std::string& fresh) {
    v1::LeaseShardResponse lease = Lease(worker);
    ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
    auto submitted = SubmitPrompts(worker, lease.lease().lease_id(),
                                   {"Describe how rainbows form in the sky", "what is the CAPITAL city of france",
                                    "Name the largest planet in our solar system today", fresh});
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    EXPECT_EQ(submitted->prompts_accepted(), 1);
    EXPECT_EQ(submitted->prompts_dropped_duplicate(), 2);
    EXPECT_EQ(submitted->prompts_dropped_near_duplicate(), 1);
    EXPECT_EQ(submitted->prompts_dropped_length(), 0);
  }
  // The texts of iteration 1's pool in the database, by prompt id.
  std::vector<std::string> StoredPool() {
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

  std::string run_dir_;
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
  std::unique_ptr<RunCoordinator> run_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<CoordinatorClient> client_;
};

TEST(PromptFilterTest, NormalisesAndDropsDuplicatesNearDuplicatesAndLengths) {
  EXPECT_EQ(NormalizePrompt("  Hello,   WORLD!\n How are\tyou? "), "hello world how are you");
  PromptFilter filter({/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5});
  EXPECT_EQ(filter.Offer("Write a poem about the sea"), PromptVerdict::kAccepted);
  EXPECT_EQ(filter.Offer("write a POEM about the sea!!"), PromptVerdict::kDuplicate);
  // Bigrams: write a | a poem | poem about | about the | the ocean -> 3 of 5 shared (0.6 >= 0.5).
  EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kNearDuplicate);
  EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted);
  EXPECT_EQ(filter.Offer("abc"), PromptVerdict::kLength);
  EXPECT_EQ(filter.Offer(std::string(61, 'x')), PromptVerdict::kLength);
  EXPECT_EQ(filter.accepted(), 2);
  // Overlap is over the smaller gram set: a prompt inside a longer accepted one is near-duplicate.
  auto a = PromptNgrams("one two three four five six", 3);
  auto b = PromptNgrams("two three four", 3);
  EXPECT_DOUBLE_EQ(NgramOverlap(a, b), 1.0);
  EXPECT_DOUBLE_EQ(NgramOverlap(a, PromptNgrams("seven eight nine", 3)), 0.0);
}

// A seen prompt (AddSeen: data.ift, data.eval) drops its repeats and near-repeats as an accepted
// one does, but is not one of accepted().
TEST(PromptFilterTest, SeenPromptsDropTheirRepeatsButAreNotAccepted) {
  PromptFilter filter({/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5});
  filter.AddSeen("Write a poem about the sea");
  EXPECT_EQ(filter.accepted(), 0);
  EXPECT_EQ(filter.Offer("write a POEM about the sea!!"), PromptVerdict::kDuplicate);
  EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kNearDuplicate);
  EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted);
  filter.AddAccepted("List three uses of copper");
  EXPECT_EQ(filter.accepted(), 2);
  filter.AddSeen("Explain how tides work");
  EXPECT_EQ(filter.accepted(), 2);
  EXPECT_EQ(filter.Offer("explain how TIDES work?"), PromptVerdict::kDuplicate);
}

// The verdicts of a PromptFilter's indexed search against those of comparing each prompt with every
// indexed one, on prompts built to stress it: shared openings, short prompts (one gram), near
// copies, several n and thresholds. With `seen_every` > 0 every seen_every-th prompt is seen instead
// of offered, and some offers must be dropped because of a seen prompt alone: added with AddSeen in
// turn (`shared_index` false), or all in a SeenPromptIndex the filter is built with (true; the
// small vocabulary repeats some, which the index keeps once).
void ExpectIndexedVerdictsOfComparingWithEveryPrompt(int seen_every, bool shared_index = false) {
  const std::vector<std::string> openings = {"how do i", "what is the best way to", "write a", "explain", ""};
  const std::vector<std::string> words = {"cat", "dog", "sea", "poem", "rome", "code", "tree", "song", "rain", "map",
                                          "list", "sort", "bake", "bread", "fix", "bike"};
  // Whether a prompt (normalised, grams) repeats one of `norms` or nearly repeats one of `grams_of`.
  auto repeats = [](const std::string& norm, const std::vector<uint64_t>& grams, const std::vector<std::string>& norms,
                    const std::vector<std::vector<uint64_t>>& grams_of, double threshold) {
    if (std::find(norms.begin(), norms.end(), norm) != norms.end()) return PromptVerdict::kDuplicate;
    for (const auto& other : grams_of) {
      if (NgramOverlap(grams, other) >= threshold) return PromptVerdict::kNearDuplicate;
    }
    return PromptVerdict::kAccepted;
  };
  int64_t repeated_seen = 0;  // seen texts the shared index kept once
  for (int64_t n : {1, 2, 3}) {
    for (double threshold : {0.3, 0.5, 0.7, 1.0}) {
      std::mt19937 rng(static_cast<uint32_t>(n * 100 + threshold * 10));
      std::vector<std::string> prompts;
      for (int i = 0; i < 1500; ++i) {
        std::string prompt = openings[rng() % openings.size()];
        const int length = 1 + static_cast<int>(rng() % 7);
        for (int w = 0; w < length; ++w) prompt += " " + words[rng() % words.size()];
        prompts.push_back(std::move(prompt));
      }
      auto is_seen = [&](int i) { return seen_every > 0 && i % seen_every == seen_every - 1; };
      PromptFilterOptions options{/*min_chars=*/1, /*max_chars=*/400, n, threshold};
      std::vector<std::string> accepted_norm, seen_norm;
      std::vector<std::vector<uint64_t>> accepted_grams, seen_grams;
      std::shared_ptr<const SeenPromptIndex> index;
      if (shared_index) {
        std::vector<std::string> seen_texts;
        for (int i = 0; i < 1500; ++i) {
          if (!is_seen(i)) continue;
          seen_texts.push_back(prompts[i]);
          seen_norm.push_back(NormalizePrompt(TrimPrompt(prompts[i])));
          seen_grams.push_back(PromptNgrams(seen_norm.back(), n));
        }
        index = std::make_shared<const SeenPromptIndex>(seen_texts, n);
        repeated_seen += static_cast<int64_t>(seen_texts.size()) - index->size();
      }
      PromptFilter filter(options, index);
      int near = 0, kept = 0, dropped_for_seen = 0;
      for (int i = 0; i < 1500; ++i) {
        const std::string& prompt = prompts[i];
        const std::string norm = NormalizePrompt(TrimPrompt(prompt));
        const std::vector<uint64_t> grams = PromptNgrams(norm, n);
        if (is_seen(i)) {
          if (!shared_index) {
            filter.AddSeen(prompt);
            seen_norm.push_back(norm);
            seen_grams.push_back(grams);
          }
          continue;
        }
        // The reference: exact duplicate of any indexed prompt, then overlap with every one.
        const PromptVerdict by_accepted = repeats(norm, grams, accepted_norm, accepted_grams, threshold);
        const PromptVerdict by_seen = repeats(norm, grams, seen_norm, seen_grams, threshold);
        PromptVerdict want = PromptVerdict::kAccepted;
        if (by_accepted == PromptVerdict::kDuplicate || by_seen == PromptVerdict::kDuplicate) {
          want = PromptVerdict::kDuplicate;
        } else if (by_accepted == PromptVerdict::kNearDuplicate || by_seen == PromptVerdict::kNearDuplicate) {
          want = PromptVerdict::kNearDuplicate;
        }
        ASSERT_EQ(filter.Offer(prompt), want) << "n " << n << ", threshold " << threshold << ", prompt " << i << ": '"
                                              << prompt << "'";
        if (want == PromptVerdict::kAccepted) {
          accepted_norm.push_back(norm);
          accepted_grams.push_back(grams);
          ++kept;
        }
        near += want == PromptVerdict::kNearDuplicate;
        dropped_for_seen += by_accepted == PromptVerdict::kAccepted && want != PromptVerdict::kAccepted;
      }
      EXPECT_GT(near, 0);
      EXPECT_EQ(filter.accepted(), kept);
      if (seen_every == 0) {
        EXPECT_GE(kept, 5);
      } else {
        // Seen prompts take some of the few distinct ones the small vocabulary allows; all of them
        // at once (the shared index) leave no unigram set new.
        if (!shared_index || n > 1) {
          EXPECT_GT(kept, 0) << "n " << n << ", threshold " << threshold;
        }
        EXPECT_GT(dropped_for_seen, 0) << "n " << n << ", threshold " << threshold;
      }
    }
  }
  if (shared_index) {
    EXPECT_GT(repeated_seen, 0);
  }
}

TEST(PromptFilterTest, IndexedSearchGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/0);
}

// Seen prompts are indexed as accepted ones: the same exact verdicts with every tenth prompt seen.
TEST(PromptFilterTest, IndexedSearchWithSeenPromptsGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/10);
}

// The same with the seen prompts in a shared SeenPromptIndex (the coordinator's way): its flat
// postings give the verdicts of comparing with every prompt, pool and seen, too.
TEST(PromptFilterTest, IndexedSearchWithASharedSeenIndexGivesTheVerdictsOfComparingWithEveryPrompt) {
  ExpectIndexedVerdictsOfComparingWithEveryPrompt(/*seen_every=*/10, /*shared_index=*/true);
}

// A SeenPromptIndex keeps each normalised prompt once, and is never changed by the filters that
// consult it: two filters over one index each accept the same fresh prompt, and drop a seen one.
TEST(PromptFilterTest, ASharedSeenIndexKeepsEachPromptOnceAndIsNotChangedByItsFilters) {
  const PromptFilterOptions options{/*min_chars=*/4, /*max_chars=*/60, /*ngram=*/2, /*threshold=*/0.5};
  auto index = std::make_shared<const SeenPromptIndex>(
      std::vector<std::string>{"Write a poem about the sea", "  write a POEM about the sea!! ", "Explain how tides work"},
      options.ngram);
  EXPECT_EQ(index->size(), 2);
  EXPECT_TRUE(index->Contains("write a poem about the sea"));
  EXPECT_FALSE(index->Contains("summarise the history of rome"));
  EXPECT_TRUE(SeenPromptIndex({}, 3).Postings(42).first == SeenPromptIndex({}, 3).Postings(42).second);
  for (int pass = 0; pass < 2; ++pass) {
    PromptFilter filter(options, index);
    EXPECT_EQ(filter.Offer("WRITE a poem about the sea"), PromptVerdict::kDuplicate);
    EXPECT_EQ(filter.Offer("Write a poem about the ocean"), PromptVerdict::kNearDuplicate);
    EXPECT_EQ(filter.Offer("Summarise the history of Rome"), PromptVerdict::kAccepted) << "pass " << pass;
    EXPECT_EQ(filter.Offer("summarise the history of rome"), PromptVerdict::kDuplicate);
    EXPECT_EQ(filter.accepted(), 1);
  }
  EXPECT_EQ(index->size(), 2);
  EXPECT_FALSE(index->Contains("summarise the history of rome"));
}

TEST(PairShuffleTest, PermutationDeterministicAndSeedDependent) {
  std::vector<int64_t> a = ShuffledPositions(1000, 5, 1);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(a, ShuffledPositions(1000, 5, 1));
  EXPECT_NE(a, ShuffledPositions(1000, 5, 2));
  EXPECT_NE(a, ShuffledPositions(1000, 6, 1));
  int fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) fixed += a[i] == i;
  EXPECT_LT(fixed, 10);  // a shuffle, not the identity (expected ~1 fixed point)
}

std::vector<int64_t> ShardsOf(const std::vector<ShardSubmission>& submissions) {
  std::vector<int64_t> shards;
  for (const ShardSubmission& submission : submissions) shards.push_back(submission.shard);
  return shards;
}

TEST(ShardOrderTest, ReleasesShardsInOrderAndRestoresHeldOnes) {
  ShardOrder order;
  EXPECT_TRUE(order.Add({2, "l2", {"c"}}).empty());
  EXPECT_TRUE(order.IsHeld(2));
  std::vector<ShardSubmission> first = order.Add({0, "l0", {"a"}});
  EXPECT_THAT(ShardsOf(first), ::testing::ElementsAre(0));
  EXPECT_EQ(first[0].prompts, std::vector<std::string>{"a"});
  EXPECT_EQ(order.next_shard(), 1);
  EXPECT_EQ(order.held(), 1);
  EXPECT_EQ(order.held_prompts(), 1);
  std::vector<ShardSubmission> rest = order.Add({1, "l1", {"b"}});
  EXPECT_THAT(ShardsOf(rest), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(rest[1].lease_id, "l2");
  EXPECT_EQ(order.held(), 0);
  EXPECT_EQ(order.held_prompts(), 0);
  EXPECT_EQ(order.next_shard(), 3);

  ASSERT_TRUE(order.Restore(1, {{3, "l3", {}}, {2, "l2", {"c"}}}).ok());
  EXPECT_EQ(order.held(), 2);
  EXPECT_THAT(ShardsOf(order.Add({1, "l1", {}})), ::testing::ElementsAre(1, 2, 3));
  EXPECT_EQ(order.Restore(2, {{2, "l2", {}}}).code(), absl::StatusCode::kDataLoss);  // not after 2
  EXPECT_EQ(order.Restore(0, {{4, "a", {}}, {4, "b", {}}}).code(), absl::StatusCode::kDataLoss);
}

// Ranks finish PROMPTS shards in any order, but the pool is filled in shard order, so that the
// filter's verdicts (and so the pool) are the same in every run. Held shards survive a restart,
// also one that brought no prompts.
TEST_F(CoordinatorServiceTest, PromptShardsEnterThePoolInShardOrderWhateverOrderTheyArrive) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.prompts.shard_size = 2;
  Start(config);
  const std::string w0 = Register(0, 3), w1 = Register(1, 3), w2 = Register(2, 3);
  v1::LeaseShardResponse s0 = Lease(w0), s1 = Lease(w1), s2 = Lease(w2);
  ASSERT_EQ(s0.lease().shard_id(), 0);
  ASSERT_EQ(s1.lease().shard_id(), 1);
  ASSERT_EQ(s2.lease().shard_id(), 2);

  auto empty = SubmitPrompts(w2, s2.lease().lease_id(), {});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->shards_held(), 1);
  auto early = SubmitPrompts(w1, s1.lease().lease_id(), {"Describe how rainbows form in the sky", "x"});
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->prompts_accepted(), 0);
  EXPECT_EQ(early->prompts_dropped_length(), 0);  // not filtered yet
  EXPECT_EQ(early->shards_held(), 2);
  EXPECT_EQ(early->phase(), v1::PHASE_PROMPTS);
  // Held shards count as supply by the prompts they hold: shard 1's 2 and the leased shard 0's 2
  // leave 2 of the 6 wanted uncovered (the empty shard 2 covers none), so a fourth shard is made;
  // with it the 6 are covered and a fifth is not.
  v1::LeaseShardResponse s3 = Lease(w1);
  ASSERT_TRUE(s3.has_prompts()) << s3.DebugString();
  EXPECT_EQ(s3.lease().shard_id(), 3);
  EXPECT_TRUE(Lease(w2).has_wait());
  // Nothing is exported while the pool is being written.
  EXPECT_EQ(client_->ExportPairs(1, [](const v1::ExportedPair&) { return true; }).code(),
            absl::StatusCode::kNotFound);
  // A lease id must be spelled as the coordinator spelled it.
  auto misspelled = SubmitPrompts(w0, "i1-P-s00-a1", {"Why is the sky blue at noon"});
  EXPECT_EQ(misspelled.status().code(), absl::StatusCode::kInvalidArgument) << misspelled.status();

  Stop();
  Start(std::nullopt);
  v1::GetStatusResponse held = *client_->GetStatus();
  EXPECT_EQ(held.prompts_accepted(), 0);
  EXPECT_EQ(held.shards().done(), 2);
  EXPECT_EQ(held.shards().held(), 2);
  auto duplicate = SubmitPrompts(w1, s1.lease().lease_id(), {"Describe how rainbows form in the sky", "x"});
  ASSERT_TRUE(duplicate.ok());
  EXPECT_TRUE(duplicate->duplicate());

  // Shard 0 completes the order: it enters first, then shard 1 (whose rainbow prompt is now the
  // duplicate), then the empty shard 2.
  auto last = SubmitPrompts(w0, s0.lease().lease_id(),
                            {"describe how RAINBOWS form in the sky!", "Why is the ocean salty"});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->prompts_accepted(), 2);
  EXPECT_EQ(last->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(last->prompts_dropped_length(), 1);
  EXPECT_EQ(last->shards_held(), 0);
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.prompts_accepted(), 2);
  EXPECT_EQ(status.prompts_dropped_duplicate(), 1);
  EXPECT_EQ(status.shards().held(), 0);

  auto db = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadOnly);
  ASSERT_TRUE(db.ok()) << db.status();
  auto pool = (*db)->Prepare("SELECT prompt_id, text, lease_id FROM prompts WHERE iteration = 1 ORDER BY prompt_id");
  ASSERT_TRUE(pool.ok());
  std::vector<std::string> rows;
  while (*(*pool)->Step()) {
    rows.push_back(absl::StrCat((*pool)->ColumnInt(0), " ", (*pool)->ColumnText(1), " ", (*pool)->ColumnText(2)));
  }
  (*pool)->Reset();
  EXPECT_THAT(rows, ::testing::ElementsAre("0 describe how RAINBOWS form in the sky! i1-P-s0-a1",
                                           "1 Why is the ocean salty i1-P-s0-a1"));
  EXPECT_EQ(*(*db)->QueryInt("SELECT COUNT(*) FROM held_prompts", -1), 0);
  EXPECT_EQ(*(*db)->QueryInt("SELECT dropped_duplicate * 10 + dropped_length FROM leases "
                             "WHERE lease_id = 'i1-P-s1-a1'", -1), 11);
  // The pool lacks 4 prompts; shard 3 (leased) may bring 2: another shard is handed out.
  v1::LeaseShardResponse s4 = Lease(w1);
  ASSERT_TRUE(s4.has_prompts()) << s4.DebugString();
  EXPECT_EQ(s4.lease().shard_id(), 4);
}

// The prompts of data.ift (the few-shot examples) and data.eval (the held-out evaluation) count
// as seen: a new prompt repeating one, exactly or nearly, is dropped as a duplicate of a pool prompt
// would be. They are not pool prompts: no ids, no rows, no share of prompts.per_iteration.
TEST_F(CoordinatorServiceTest, PromptsRepeatingIftOrEvalPromptsAreKeptOutOfThePool) {
  std::string w0, w1;
  StartPromptsWithSeenPrompts(&w0, &w1);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 0);
  ExpectSeenPromptsDropped(w0, "Why is the ocean salty");
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(status.prompts_accepted(), 1);
  EXPECT_EQ(status.prompts_dropped_duplicate(), 2);
  EXPECT_EQ(status.prompts_dropped_near_duplicate(), 1);
  EXPECT_THAT(StoredPool(), ::testing::ElementsAre("Why is the ocean salty"));
}

// A coordinator reopened mid-PROMPTS on the same run directory seeds its rebuilt filter with the
// same seen prompts, next to the stored pool: the same verdicts as before the restart.
TEST_F(CoordinatorServiceTest, PromptsRepeatingIftOrEvalPromptsAreKeptOutAfterARestartMidPrompts) {
  std::string w0, w1;
  StartPromptsWithSeenPrompts(&w0, &w1);
  ExpectSeenPromptsDropped(w0, "Why is the ocean salty");
  Stop();
  Start(std::nullopt);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  ExpectSeenPromptsDropped(w0, "Explain the rules of chess briefly");
  v1::GetStatusResponse status = *client_->GetStatus();
  EXPECT_EQ(status.prompts_accepted(), 2);
  EXPECT_EQ(status.prompts_dropped_duplicate(), 4);
  EXPECT_EQ(status.prompts_dropped_near_duplicate(), 2);
  EXPECT_THAT(StoredPool(), ::testing::ElementsAre("Why is the ocean salty", "Explain the rules of chess briefly"));
  // The stored pool is in the rebuilt filter too.
  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
  auto again = SubmitPrompts(w0, lease.lease().lease_id(), {"why is the OCEAN salty?"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->prompts_dropped_duplicate(), 1);
}

TEST(SeenPromptsTest, ReadsThePromptsOfIftThenEvalAndNoneForAnUnsetPath) {
  char pattern[] = "/tmp/srlm_seen_prompts_XXXXXX";
  const std::string dir = mkdtemp(pattern);
  DataConfig data;
  data.ift = dir + "/ift.jsonl";
  data.eval = dir + "/eval.jsonl";
  WriteTextFile(data.ift, "{\"prompt\": \"a\", \"response\": \"1\"}\n\n{\"prompt\": \"b\", \"response\": \"2\"}\n");
  WriteTextFile(data.eval, "{\"prompt\": \"c\", \"answer\": \"3\"}\n");
  auto both = ReadSeenPrompts(data);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_THAT(*both, ::testing::ElementsAre("a", "b", "c"));
  data.ift.clear();
  auto eval_only = ReadSeenPrompts(data);
  ASSERT_TRUE(eval_only.ok()) << eval_only.status();
  EXPECT_THAT(*eval_only, ::testing::ElementsAre("c"));
  EXPECT_TRUE(ReadSeenPrompts(DataConfig{})->empty());
  std::filesystem::remove_all(dir);
}

// A coordinator that cannot read data.ift or data.eval does not open the run: not a new one (and
// stores nothing), nor a stored one with a PROMPTS phase current or ahead whose file went missing
// (one without is ARunWithNoPromptsPhaseLeftOpensWithoutItsDataFiles). The error names the file and
// the line.
TEST_F(CoordinatorServiceTest, UnreadableIftOrEvalPromptsRefuseToOpenTheRun) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  std::filesystem::create_directories(run_dir_);
  const std::string ift = run_dir_ + "/ift.jsonl", eval = run_dir_ + "/eval.jsonl";

  config.data.ift = run_dir_ + "/missing.jsonl";
  absl::Status missing = OpenStatus(config);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_THAT(std::string(missing.message()), ::testing::HasSubstr("data.ift: cannot open " + run_dir_ + "/missing.jsonl"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n{\"prompt\": 5}\n");
  config.data.ift = ift;
  absl::Status not_string = OpenStatus(config);
  EXPECT_EQ(not_string.code(), absl::StatusCode::kInvalidArgument) << not_string;
  EXPECT_THAT(std::string(not_string.message()), ::testing::HasSubstr("data.ift: " + ift + ":2: no string 'prompt'"));

  WriteTextFile(ift, "\n\n");  // no prompts: no few-shot examples, no pool
  absl::Status no_prompts = OpenStatus(config);
  EXPECT_EQ(no_prompts.code(), absl::StatusCode::kInvalidArgument) << no_prompts;
  EXPECT_THAT(std::string(no_prompts.message()), ::testing::HasSubstr("data.ift: " + ift + " holds no prompts"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n{\"prompt\": \" \", \"response\": \"x\"}\n");
  absl::Status blank = OpenStatus(config);  // the worker refuses a blank IFT prompt too
  EXPECT_EQ(blank.code(), absl::StatusCode::kInvalidArgument) << blank;
  EXPECT_THAT(std::string(blank.message()), ::testing::HasSubstr("data.ift: " + ift + ":2: 'prompt' is"));

  WriteTextFile(ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n");
  WriteTextFile(eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n\n{\"answer\": \"5\"}\n");
  config.data.eval = eval;
  absl::Status no_prompt = OpenStatus(config);
  EXPECT_EQ(no_prompt.code(), absl::StatusCode::kInvalidArgument) << no_prompt;
  EXPECT_THAT(std::string(no_prompt.message()), ::testing::HasSubstr("data.eval: " + eval + ":3: no string 'prompt'"));

  WriteTextFile(eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\nWhat is 3 + 3\n");
  absl::Status not_json = OpenStatus(config);
  EXPECT_EQ(not_json.code(), absl::StatusCode::kInvalidArgument) << not_json;
  EXPECT_THAT(std::string(not_json.message()), ::testing::HasSubstr("data.eval: " + eval + ":2: not a JSON object"));

  // None of the refused opens stored a run: another configuration opens without --force-config.
  RunConfig other = config;
  other.data.eval.clear();
  other.run.iterations = 3;
  ASSERT_TRUE(OpenStatus(other).ok());
  // A stored run (in PROMPTS) whose data.ift went missing is refused at the next start, naming the file.
  std::filesystem::remove(ift);
  absl::Status gone = OpenStatus(std::nullopt);
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound) << gone;
  EXPECT_THAT(std::string(gone.message()), ::testing::HasSubstr("data.ift: cannot open " + ift));
}

// The seen prompts are needed only while a PROMPTS phase is current or ahead (run not DONE, and in
// SFT or PROMPTS or below run.iterations): a run whose data.ift and data.eval moved away is refused
// in GENERATE of iteration 1 of 2, but opens in GENERATE of its last iteration and when DONE (a
// warning), where it answers status and exports its pairs (srlmctl export-pairs goes through it).
// A DONE run given more iterations (--force-config) has PROMPTS ahead again and is refused, keeping
// its stored configuration.
TEST_F(CoordinatorServiceTest, ARunWithNoPromptsPhaseLeftOpensWithoutItsDataFiles) {
  RunConfig config = DiscardRun();
  config.run.iterations = 2;
  const std::string data_dir = run_dir_ + "-data";
  std::filesystem::create_directories(data_dir);
  config.data.ift = data_dir + "/ift.jsonl";
  config.data.eval = data_dir + "/eval.jsonl";
  const std::string ift_text = "{\"prompt\": \"Describe how rainbows form in the sky\", \"response\": \"Light.\"}\n";
  const std::string eval_text = "{\"prompt\": \"What is the capital city of France?\", \"answer\": \"Paris\"}\n";
  WriteTextFile(config.data.ift, ift_text);
  WriteTextFile(config.data.eval, eval_text);
  Start(config);
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  auto move_data_away = [&] {
    std::filesystem::remove(config.data.ift);
    std::filesystem::remove(config.data.eval);
  };
  // Iteration 1 of 2: PROMPTS of iteration 2 is ahead.
  Stop();
  move_data_away();
  absl::Status ahead = OpenStatus(std::nullopt);
  EXPECT_EQ(ahead.code(), absl::StatusCode::kNotFound) << ahead;
  EXPECT_THAT(std::string(ahead.message()), ::testing::HasSubstr("data.ift: cannot open " + config.data.ift));
  WriteTextFile(config.data.ift, ift_text);
  WriteTextFile(config.data.eval, eval_text);
  Start(std::nullopt);
  for (int shard = 0; shard < 3; ++shard) LeaseAndSubmitGenerate(shard % 2 ? w1 : w0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 1, "/ckpt/m2").ok());
  ASSERT_TRUE(Checkpoint(w1, 1, 2, 1, "/ckpt/m2")->committed());
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->iteration(), 2);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);

  // GENERATE of the last iteration: nothing ahead but TRAIN, COMMIT and DONE. A warning names the error.
  Stop();
  move_data_away();
  ::testing::internal::CaptureStderr();
  Start(std::nullopt);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, ::testing::HasSubstr("cannot read the prompts kept out of the prompt pool (data.ift, data.eval): "
                                        "NOT_FOUND: data.ift: cannot open " + config.data.ift));
  EXPECT_THAT(log, ::testing::HasSubstr("going on without them"));
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  for (int shard = 0; shard < 3; ++shard) LeaseAndSubmitGenerate(shard % 2 ? w1 : w0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 2, "/ckpt/m3").ok());
  ASSERT_TRUE(Checkpoint(w1, 1, 2, 2, "/ckpt/m3")->committed());
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_DONE);

  // DONE: status and both iterations' pairs, as srlmctl reads them.
  Stop();
  Start(std::nullopt);
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->phase(), v1::PHASE_DONE);
  EXPECT_EQ(status->model_dir(), "/ckpt/m3");
  EXPECT_EQ(status->committed_iterations_size(), 3);  // SFT and iterations 1, 2
  for (int64_t iteration : {1, 2}) {
    int64_t exported = 0;
    ASSERT_TRUE(client_->ExportPairs(iteration, [&](const v1::ExportedPair&) { return ++exported, true; }).ok());
    EXPECT_EQ(exported, 4) << "iteration " << iteration;  // prompts 0 and 5 are ties
  }

  // More iterations for the finished run: PROMPTS of iteration 3 is current, so it needs them.
  Stop();
  RunConfig more = config;
  more.run.iterations = 3;
  absl::Status reopened = OpenStatus(more, /*force=*/true);
  EXPECT_EQ(reopened.code(), absl::StatusCode::kNotFound) << reopened;
  EXPECT_THAT(std::string(reopened.message()), ::testing::HasSubstr("data.ift: cannot open " + config.data.ift));
  Start(std::nullopt);  // the refused --force-config stored nothing
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_DONE);
  EXPECT_EQ(client_->GetStatus()->total_iterations(), 2);
  std::filesystem::remove_all(data_dir);
}

// data.eval is read with the workers' rules (common/run_data.h): a line without a string `answer`, or
// with a blank one, which every worker would refuse at registration, refuses the run here, naming
// the file and the line, before anything is stored.
TEST_F(CoordinatorServiceTest, AnEvalLineWithoutAnAnswerRefusesTheRunBeforeItIsStored) {
  RunConfig config = DiscardRun();
  std::filesystem::create_directories(run_dir_);
  config.data.ift = run_dir_ + "/ift.jsonl";
  config.data.eval = run_dir_ + "/eval.jsonl";
  WriteTextFile(config.data.ift, "{\"prompt\": \"Add two numbers\", \"response\": \"ok\"}\n");

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n\n"
                                  "{\"prompt\": \"Name the largest planet\"}\n");
  absl::Status no_answer = OpenStatus(config);
  EXPECT_EQ(no_answer.code(), absl::StatusCode::kInvalidArgument) << no_answer;
  EXPECT_THAT(std::string(no_answer.message()),
              ::testing::HasSubstr("data.eval: " + config.data.eval + ":3: no string 'answer'"));

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \" \\t\"}\n");
  absl::Status blank = OpenStatus(config);
  EXPECT_EQ(blank.code(), absl::StatusCode::kInvalidArgument) << blank;
  EXPECT_THAT(std::string(blank.message()), ::testing::HasSubstr("data.eval: " + config.data.eval + ":1: 'answer' is empty"));

  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": 4}\n");
  absl::Status not_string = OpenStatus(config);
  EXPECT_EQ(not_string.code(), absl::StatusCode::kInvalidArgument) << not_string;
  EXPECT_THAT(std::string(not_string.message()),
              ::testing::HasSubstr("data.eval: " + config.data.eval + ":1: no string 'answer'"));

  // Nothing was stored: once corrected, another configuration opens without --force-config.
  WriteTextFile(config.data.eval, "{\"prompt\": \"What is 2 + 2\", \"answer\": \"4\"}\n");
  RunConfig other = config;
  other.run.iterations = 3;
  EXPECT_TRUE(OpenStatus(other).ok());
}

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

TEST_F(CoordinatorServiceTest, FullIterationCycleFromSftToDone) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  auto registered = client_->GetStatus();
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ(registered->workers_size(), 2);

  // SFT at iteration 0: both ranks train; progress is reported; every rank must report.
  v1::LeaseShardResponse sft = Lease(w0);
  ASSERT_TRUE(sft.has_train()) << sft.DebugString();
  EXPECT_EQ(sft.train().phase(), v1::PHASE_SFT);
  EXPECT_EQ(sft.train().model_dir(), "/models/m0");
  v1::ReportTrainStepRequest step;
  step.set_worker_id(w0);
  step.set_iteration(0);
  step.set_step(3);
  step.set_total_steps(10);
  step.set_loss(1.25);
  (*step.mutable_metrics())["lr"] = 1e-5;
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  EXPECT_EQ(client_->GetStatus()->train_step(), 3);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->train_loss(), 1.25);
  auto first = Checkpoint(w0, 0, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->committed());
  EXPECT_EQ(first->phase(), v1::PHASE_COMMIT);
  EXPECT_EQ(first->ranks_reported(), 1);
  EXPECT_TRUE(Lease(w0).has_wait());  // this rank is done; the other is not
  // A rank that asks for training after another reported can only be a relaunched one (ranks train
  // together): it is told the checkpoint is written, so it reports instead of training alone.
  v1::LeaseShardResponse late = Lease(w1);
  ASSERT_TRUE(late.has_train());
  EXPECT_EQ(late.train().written_checkpoint_dir(), "/ckpt/m1");
  EXPECT_EQ(client_->GetStatus()->iteration(), 0);  // not advanced before every rank reported
  auto second = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->committed());
  EXPECT_EQ(second->iteration(), 1);
  EXPECT_EQ(second->phase(), v1::PHASE_PROMPTS);
  EXPECT_EQ(second->model_dir(), "/ckpt/m1");
  // A retry of a committed report is OK and changes nothing.
  auto retry = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->committed());
  EXPECT_EQ(retry->iteration(), 1);

  // PROMPTS: the filter drops duplicates, near-duplicates and bad lengths.
  v1::LeaseShardResponse p0 = Lease(w0);
  ASSERT_TRUE(p0.has_prompts()) << p0.DebugString();
  EXPECT_EQ(p0.prompts().num_prompts(), 3);
  EXPECT_EQ(p0.lease().attempt(), 1);
  auto submitted = SubmitPrompts(w0, p0.lease().lease_id(),
                                 {"Describe how rainbows form in the sky", "describe how RAINBOWS form in the sky!",
                                  "Describe how rainbows form in the sky today", "no", "List three uses of copper wire"});
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->prompts_accepted(), 2);
  EXPECT_EQ(submitted->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(submitted->prompts_dropped_near_duplicate(), 1);
  EXPECT_EQ(submitted->prompts_dropped_length(), 1);
  EXPECT_EQ(submitted->phase(), v1::PHASE_PROMPTS);
  v1::LeaseShardResponse p1 = Lease(w1);
  ASSERT_TRUE(p1.has_prompts());
  ASSERT_TRUE(SubmitPrompts(w1, p1.lease().lease_id(),
                            {"Why is the ocean salty", "How do vaccines train immunity", "What is a prime number"})
                  .ok());
  v1::LeaseShardResponse p2 = Lease(w0);
  ASSERT_TRUE(p2.has_prompts());
  auto last_prompts = SubmitPrompts(w0, p2.lease().lease_id(),
                                    {"Compare cats and dogs as pets", "Explain the rules of chess briefly"});
  ASSERT_TRUE(last_prompts.ok());
  EXPECT_EQ(last_prompts->prompts_accepted(), 1);  // the pool holds exactly per_iteration (6)
  EXPECT_EQ(last_prompts->phase(), v1::PHASE_GENERATE);
  auto status = client_->GetStatus();
  EXPECT_EQ(status->prompts_accepted(), 6);
  EXPECT_EQ(status->prompts_dropped_duplicate(), 1);
  EXPECT_EQ(status->prompts_dropped_near_duplicate(), 1);
  EXPECT_EQ(status->prompts_dropped_length(), 1);
  EXPECT_EQ(status->shards().total(), 3);  // 6 prompts / shard_size 2

  // GENERATE: three shards of two prompts; prompt 0 is a tie, the others pairs.
  std::set<int64_t> seen_prompts;
  for (int shard = 0; shard < 3; ++shard) {
    const std::string& worker = shard % 2 ? w1 : w0;
    v1::LeaseShardResponse lease = Lease(worker);
    ASSERT_TRUE(lease.has_generate()) << lease.DebugString();
    ASSERT_EQ(lease.generate().prompts_size(), 2);
    for (const auto& prompt : lease.generate().prompts()) {
      EXPECT_FALSE(prompt.text().empty());
      seen_prompts.insert(prompt.prompt_id());
    }
    auto accepted = client_->SubmitShard(GenerateRequest(worker, lease));
    ASSERT_TRUE(accepted.ok()) << accepted.status();
    EXPECT_EQ(accepted->results_accepted(), 2);
    EXPECT_EQ(accepted->phase(), shard == 2 ? v1::PHASE_TRAIN : v1::PHASE_GENERATE);
  }
  EXPECT_EQ(seen_prompts, (std::set<int64_t>{0, 1, 2, 3, 4, 5}));
  status = client_->GetStatus();
  EXPECT_EQ(status->phase(), v1::PHASE_TRAIN);
  EXPECT_EQ(status->pairs(), 4);  // prompts 0 and 5 are ties
  EXPECT_EQ(status->dropped_ties(), 2);
  EXPECT_EQ(status->candidates(), 18);
  EXPECT_EQ(status->judgements(), 18);
  int64_t histogram_total = 0;
  for (int64_t count : status->score_histogram()) histogram_total += count;
  EXPECT_EQ(histogram_total, 17);  // the unscored candidate is in no bucket
  EXPECT_EQ(status->score_histogram(0), 0);
  EXPECT_EQ(status->score_histogram(2), 5);  // score 1 of [0,5] in 10 buckets -> bucket 2
  EXPECT_EQ(status->score_histogram(9), 0);

  // TRAIN: the frozen pairs split by position across ranks, in the documented shuffle.
  v1::LeaseShardResponse train = Lease(w0);
  ASSERT_TRUE(train.has_train());
  EXPECT_EQ(train.train().num_pairs(), 4);
  EXPECT_EQ(train.train().model_dir(), "/ckpt/m1");
  std::map<int64_t, int64_t> prompt_at_position;
  for (int rank = 0; rank < 2; ++rank) {
    v1::StreamPairsRequest request;
    request.set_worker_id(rank ? w1 : w0);
    request.set_iteration(1);
    request.set_rank(rank);
    request.set_world_size(2);
    int64_t last = -1;
    ASSERT_TRUE(client_->StreamPairs(request, [&](const v1::TrainingPair& pair) {
      EXPECT_EQ(pair.position() % 2, rank);
      EXPECT_GT(pair.position(), last);
      last = pair.position();
      EXPECT_EQ(pair.total(), 4);
      EXPECT_EQ(pair.chosen(), "answer 2 to " + pair.prompt());
      EXPECT_EQ(pair.rejected(), "answer 0 to " + pair.prompt());
      EXPECT_DOUBLE_EQ(pair.ref_chosen_logprob(), -10.5 - pair.prompt_id());
      prompt_at_position[pair.position()] = pair.prompt_id();
      return true;
    }).ok());
  }
  std::vector<int64_t> expected_positions = ShuffledPositions(4, 77, 1);  // pairs 1,2,3,4 in id order
  ASSERT_EQ(prompt_at_position.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(prompt_at_position[expected_positions[i]], i + 1);

  // COMMIT -> DONE (run.iterations = 1).
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 1, "/ckpt/m2").ok());
  auto done = Checkpoint(w1, 1, 2, 1, "/ckpt/m2");
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->committed());
  EXPECT_EQ(done->phase(), v1::PHASE_DONE);
  v1::LeaseShardResponse final_lease = Lease(w0);
  ASSERT_TRUE(final_lease.has_done());
  EXPECT_EQ(final_lease.done().final_model_dir(), "/ckpt/m2");

  // Export of iteration 1: the four pairs with provenance, in prompt order.
  std::vector<v1::ExportedPair> exported;
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair& p) { exported.push_back(p); return true; }).ok());
  ASSERT_EQ(exported.size(), 4u);
  EXPECT_EQ(exported[0].prompt_id(), 1);
  EXPECT_EQ(exported[0].model_dir(), "/ckpt/m1");
  EXPECT_EQ(exported[0].attempt(), 1);
  EXPECT_THAT(exported[0].candidate_scores(), ::testing::ElementsAre(1, 2, 3));
  EXPECT_FALSE(exported[0].worker_id().empty());
}

TEST_F(CoordinatorServiceTest, ExpiredLeaseHandedOnIsRefusedAndDuplicatesAreAcceptedOnce) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);

  v1::LeaseShardResponse first = Lease(w0);
  ASSERT_TRUE(first.has_generate());
  // A heartbeat naming other leases extends none of this worker's (an orphaned grant expires).
  v1::HeartbeatRequest naming_others;
  naming_others.set_worker_id(w0);
  naming_others.add_lease_ids("i1-G-s2-a1");
  auto none = client_->Heartbeat(naming_others);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->leases_extended(), 0);
  // A heartbeat extends the lease: 8 s later plus 8 s more is still inside 10 s of the heartbeat.
  now_ms_ += 8000;
  v1::HeartbeatRequest heartbeat;
  heartbeat.add_lease_ids(first.lease().lease_id());
  heartbeat.set_worker_id(w0);
  heartbeat.mutable_stats()->set_tokens_per_second(123.5);
  auto beat = client_->Heartbeat(heartbeat);
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->leases_extended(), 1);
  now_ms_ += 8000;
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->tokens_per_second(), 123.5);
  // Now it expires; w1 gets the same shard as attempt 2.
  now_ms_ += 3000;
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 0);
  v1::LeaseShardResponse second = Lease(w1);
  ASSERT_TRUE(second.has_generate());
  EXPECT_EQ(second.lease().shard_id(), first.lease().shard_id());
  EXPECT_EQ(second.lease().attempt(), 2);
  const int64_t results_before = client_->GetStatus()->results_accepted();
  auto stale = client_->SubmitShard(GenerateRequest(w0, first));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  EXPECT_EQ(client_->GetStatus()->results_accepted(), results_before);  // changed nothing

  // The same submission twice: accepted once, OK both times.
  auto once = client_->SubmitShard(GenerateRequest(w1, second));
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_FALSE(once->duplicate());
  auto twice = client_->SubmitShard(GenerateRequest(w1, second));
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_TRUE(twice->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), results_before + 2);
  // The stale lease stays refused once its shard is done by the other attempt.
  EXPECT_EQ(client_->SubmitShard(GenerateRequest(w0, first)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // An expired lease whose shard was not handed on is still taken.
  v1::LeaseShardResponse third = Lease(w0);
  ASSERT_TRUE(third.has_generate());
  now_ms_ += 20000;
  auto late = client_->SubmitShard(GenerateRequest(w0, third));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_FALSE(late->duplicate());

  // Duplicates of a lease from a phase that has ended are still answered OK.
  v1::LeaseShardResponse fourth = Lease(w0);
  ASSERT_TRUE(fourth.has_generate());
  auto last = client_->SubmitShard(GenerateRequest(w0, fourth));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->phase(), v1::PHASE_TRAIN);
  auto after_phase = client_->SubmitShard(GenerateRequest(w0, fourth));
  ASSERT_TRUE(after_phase.ok()) << after_phase.status();
  EXPECT_TRUE(after_phase->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 6);
}

TEST_F(CoordinatorServiceTest, BadRequestsAreInvalidArgumentAndChangeNothing) {
  v1::RegisterWorkerRequest bad_rank;
  bad_rank.set_rank(2);
  bad_rank.set_world_size(2);
  auto refused = client_->RegisterWorker(bad_rank);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("rank 2"));
  EXPECT_EQ(client_->GetStatus()->workers_size(), 0);

  v1::LeaseShardRequest unknown;
  unknown.set_worker_id("nobody");
  EXPECT_EQ(client_->LeaseShard(unknown).status().code(), absl::StatusCode::kNotFound);

  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  EXPECT_EQ(Checkpoint(w0, 0, 2, 5, "/x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Checkpoint(w0, 0, 2, 0, "").status().code(), absl::StatusCode::kInvalidArgument);
  FinishSft(w0, w1);
  FillPrompts(w0);
  v1::StreamPairsRequest early;
  early.set_worker_id(w0);
  early.set_iteration(1);
  early.set_world_size(1);
  EXPECT_EQ(client_->StreamPairs(early, [](const v1::TrainingPair&) { return true; }).code(),
            absl::StatusCode::kFailedPrecondition);  // not frozen yet

  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_generate());
  v1::SubmitShardRequest malformed = GenerateRequest(w0, lease);
  malformed.set_lease_id("garbage");
  EXPECT_EQ(client_->SubmitShard(malformed).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest missing = GenerateRequest(w0, lease);
  missing.mutable_generate()->mutable_results()->RemoveLast();
  EXPECT_EQ(client_->SubmitShard(missing).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest bad_index = GenerateRequest(w0, lease);
  bad_index.mutable_generate()->mutable_results(1)->mutable_pair()->set_chosen_index(9);
  auto index_refused = client_->SubmitShard(bad_index);
  EXPECT_EQ(index_refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(index_refused.status().message()), ::testing::HasSubstr("out of range"));
  v1::SubmitShardRequest wrong_kind = GenerateRequest(w0, lease);
  wrong_kind.mutable_prompts()->add_prompts("x");
  EXPECT_EQ(client_->SubmitShard(wrong_kind).status().code(), absl::StatusCode::kInvalidArgument);
  v1::SubmitShardRequest no_outcome = GenerateRequest(w0, lease);
  no_outcome.mutable_generate()->mutable_results(1)->clear_pair();
  EXPECT_EQ(client_->SubmitShard(no_outcome).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 0);
  // After the refusals the lease still takes the valid submission.
  EXPECT_TRUE(client_->SubmitShard(GenerateRequest(w0, lease)).ok());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 2);
}

// The whole job died after rank 0 reported the SFT checkpoint and before rank 1 did (rank 1 was
// still evaluating it), and the coordinator restarted too. Relaunched, rank 1 used to get a plain
// training lease and enter the collective alone, while rank 0 waited as "reported": the job hung.
// Now rank 1 is told the checkpoint is written, reports it with its evaluation, and the run goes on.
TEST_F(CoordinatorServiceTest, ARelaunchAfterAHalfReportedCheckpointReportsInsteadOfTraining) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  ASSERT_TRUE(Lease(w1).has_train());
  v1::ReportCheckpointRequest report;
  report.set_worker_id(w0);
  report.set_rank(0);
  report.set_world_size(2);
  report.set_iteration(0);
  report.set_checkpoint_dir("/ckpt/m1");
  report.set_eval_correct(3);
  report.set_eval_total(5);
  ASSERT_TRUE(client_->ReportCheckpoint(report).ok());
  Stop();
  Start(std::nullopt);
  const std::string r0 = Register(0, 2), r1 = Register(1, 2);
  EXPECT_TRUE(Lease(r0).has_wait());  // rank 0's report survived the restart
  v1::LeaseShardResponse lease = Lease(r1);
  ASSERT_TRUE(lease.has_train()) << lease.DebugString();
  EXPECT_EQ(lease.train().written_checkpoint_dir(), "/ckpt/m1");
  report.set_worker_id(r1);
  report.set_rank(1);
  report.set_eval_correct(4);
  auto committed = client_->ReportCheckpoint(report);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
  EXPECT_EQ(committed->phase(), v1::PHASE_PROMPTS);
  auto status = client_->GetStatus();
  ASSERT_EQ(status->committed_iterations_size(), 1);
  EXPECT_EQ(status->committed_iterations(0).eval_correct(), 7);  // both ranks' shares
  EXPECT_EQ(status->committed_iterations(0).eval_total(), 10);
}

// Ranks of another world size cannot finish a half-reported commit: a smaller launch would wait for
// ever (the reported ranks only wait), so registration refuses it and names the launch needed.
TEST_F(CoordinatorServiceTest, ARelaunchWithAnotherRankCountDuringACommitIsRefusedAtRegistration) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
  Stop();
  Start(std::nullopt);
  for (int world_size : {1, 3}) {
    v1::RegisterWorkerRequest request;
    request.set_rank(0);
    request.set_world_size(world_size);
    auto refused = client_->RegisterWorker(request);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << world_size;
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::HasSubstr(absl::StrCat("iteration 0 is being committed: 1 of 2 ranks reported checkpoint "
                                                  "/ckpt/m1 before the job ended; relaunch with 2 ranks (this launch has ",
                                                  world_size, ")")));
  }
  const std::string r0 = Register(0, 2), r1 = Register(1, 2);  // the right launch goes on
  EXPECT_TRUE(Lease(r0).has_wait());
  EXPECT_EQ(Lease(r1).train().written_checkpoint_dir(), "/ckpt/m1");
  auto committed = Checkpoint(r1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
  EXPECT_TRUE(Register(0, 1).size() > 0);  // after the commit any rank count may go on
}

// A relaunch with fewer ranks: the ranks of the earlier, larger launch are no longer listed, also
// after a coordinator restart, and their leases go back to the pool at once.
TEST_F(CoordinatorServiceTest, RanksOfAnEarlierLargerLaunchAreDroppedAndTheirLeasesReleased) {
  const std::string w0 = Register(0, 3), w1 = Register(1, 3), w2 = Register(2, 3);
  FinishSftWithRanks({w0, w1, w2});
  ASSERT_TRUE(Lease(w2).has_prompts());
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  const std::string r0 = Register(0, 2);
  auto status = client_->GetStatus();
  EXPECT_EQ(status->shards().leased(), 0);
  std::vector<std::string> listed;
  for (const auto& w : status->workers()) listed.push_back(w.worker_id());
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre(r0, w1));
  Stop();
  Start(std::nullopt);
  listed.clear();
  auto restarted = client_->GetStatus();
  ASSERT_TRUE(restarted.ok());
  for (const auto& w : restarted->workers()) {
    listed.push_back(w.worker_id());
    // Not heard from since this coordinator started: no heartbeat time (it showed the restart's).
    EXPECT_EQ(w.last_heartbeat_unix_ms(), 0) << w.worker_id();
  }
  EXPECT_THAT(listed, ::testing::UnorderedElementsAre(r0, w1));
  v1::HeartbeatRequest beat;
  beat.set_worker_id(r0);
  ASSERT_TRUE(client_->Heartbeat(beat).ok());
  auto heard = client_->GetStatus();
  ASSERT_TRUE(heard.ok());
  for (const auto& w : heard->workers()) {
    EXPECT_EQ(w.last_heartbeat_unix_ms() > 0, w.worker_id() == r0) << w.worker_id();
  }
}

// A run directory whose state.db was deleted or emptied but which holds a run's files is not taken
// for a new run (which would overwrite its checkpoints and pairs).
TEST_F(CoordinatorServiceTest, FilesOfARunWithoutItsStateAreNotOverwrittenByANewRun) {
  Stop();
  std::filesystem::create_directories(run_dir_ + "/checkpoints/iter-1");
  for (const char* file : {"state.db", "state.db-wal", "state.db-shm"}) std::filesystem::remove(run_dir_ + "/" + file);
  const absl::Status refused = OpenStatus(SmallConfig());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("holds files of an earlier run (checkpoints/iter-1) but " + run_dir_ +
                                   "/state.db holds no run"));
  std::filesystem::remove_all(run_dir_ + "/checkpoints");
  Start(SmallConfig());  // an empty directory starts a new run
}

// A run directory whose path is not UTF-8 is refused before anything is created: the checkpoint
// folders under it could not travel in the RPCs' strings.
TEST_F(CoordinatorServiceTest, ARunDirectoryThatIsNotUtf8IsRefused) {
  Stop();
  RunCoordinatorOptions options;
  options.run_dir = run_dir_ + "/r\xe9";
  options.config = SmallConfig();
  const absl::Status refused = RunCoordinator::Open(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("is not a UTF-8 path"));
  EXPECT_FALSE(std::filesystem::exists(options.run_dir));
}

// --force-config may raise run.iterations or keep it, not lower it past what the run has reached.
TEST_F(CoordinatorServiceTest, ForcedConfigCannotEndTheRunBeforeIterationsItReached) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);  // iteration 1 in progress
  Stop();
  RunConfig fewer = SmallConfig();
  fewer.run.iterations = 0;
  const absl::Status refused = OpenStatus(fewer, /*force=*/true);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("run.iterations 0 is below the 1 iteration(s) this run has committed or started"));
  RunConfig same_end = SmallConfig();
  same_end.run.iterations = 1;
  same_end.prompts.per_iteration = 7;  // another change, so the config differs
  Start(same_end, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->iteration(), 1);
}

TEST_F(CoordinatorServiceTest, ReRegisteringARankReleasesItsLeasesAtOnce) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  v1::LeaseShardResponse held = Lease(w0);
  ASSERT_TRUE(held.has_prompts());
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  v1::RegisterWorkerRequest again;
  again.set_rank(0);
  again.set_world_size(2);
  auto relaunched = client_->RegisterWorker(again);
  ASSERT_TRUE(relaunched.ok());
  EXPECT_EQ(relaunched->released_leases(), 1);
  EXPECT_NE(relaunched->worker_id(), w0);
  EXPECT_EQ(relaunched->iteration(), 1);
  EXPECT_EQ(relaunched->model_dir(), "/ckpt/m1");
  EXPECT_FALSE(relaunched->run_config_yaml().empty());
  auto parsed = ParseRunConfig(relaunched->run_config_yaml(), "registration");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->prompts.per_iteration, 6);
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 0);
  v1::LeaseShardResponse handed = Lease(w1);
  ASSERT_TRUE(handed.has_prompts());
  EXPECT_EQ(handed.lease().shard_id(), held.lease().shard_id());
  EXPECT_EQ(handed.lease().attempt(), 2);
}

TEST_F(CoordinatorServiceTest, RestartResumesStateAndRefusesADifferentConfig) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  const v1::LeaseShardResponse lease = LeaseAndSubmitGenerate(w1);
  v1::LeaseShardResponse open_lease = Lease(w0);
  ASSERT_TRUE(open_lease.has_generate());
  v1::GetStatusResponse before = *client_->GetStatus();
  Stop();

  RunConfig different = SmallConfig();
  different.prompts.per_iteration = 99;
  const absl::Status refused = OpenStatus(different);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--force-config"));

  Start(std::nullopt);  // the stored config
  v1::GetStatusResponse after = *client_->GetStatus();
  EXPECT_EQ(after.run_id(), before.run_id());
  EXPECT_EQ(after.iteration(), 1);
  EXPECT_EQ(after.phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(after.model_dir(), "/ckpt/m1");
  EXPECT_EQ(after.results_accepted(), 2);
  EXPECT_EQ(after.pairs(), before.pairs());
  EXPECT_EQ(after.prompts_accepted(), 6);
  EXPECT_EQ(after.shards().done(), 1);
  EXPECT_EQ(after.shards().leased(), 1);
  EXPECT_EQ(after.workers_size(), 2);
  EXPECT_THAT(after.score_histogram(), ::testing::ElementsAreArray(before.score_histogram()));
  // Workers keep their ids; the open lease is still theirs and is accepted; the duplicate too.
  auto resumed = client_->SubmitShard(GenerateRequest(w0, open_lease));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  auto duplicate = client_->SubmitShard(GenerateRequest(w1, lease));
  ASSERT_TRUE(duplicate.ok());
  EXPECT_TRUE(duplicate->duplicate());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 4);
  Stop();

  Start(different, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->prompts_wanted(), 99);
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 4);
}

// A run whose stored configuration an older build wrote (doubles with six digits: 0.0003 where this
// build writes 3e-04) resumes with the same --config: configurations are compared by their values.
TEST_F(CoordinatorServiceTest, AConfigStoredInAnOlderSpellingStillMatchesTheSameFile) {
  RunConfig config = DiscardRun();
  config.sft.lr = 3e-4;
  Start(config);
  Stop();
  {
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("UPDATE run SET value = replace(value, 'lr: 3e-04', 'lr: 0.0003') WHERE key = 'config_yaml'").ok());
    auto stored = (*db)->Prepare("SELECT value FROM run WHERE key = 'config_yaml'");
    ASSERT_TRUE(stored.ok() && *(*stored)->Step());
    ASSERT_NE((*stored)->ColumnText(0).find("lr: 0.0003"), std::string::npos);
  }
  Start(config);  // the same file: accepted, and the stored text is rewritten in this build's spelling
  EXPECT_EQ(run_->config().sft.lr, 3e-4);
  Stop();
  RunConfig other = config;
  other.sft.lr = 4e-4;
  const absl::Status refused = OpenStatus(other);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("stored '  lr: 3e-04"));
  Start(std::nullopt);
}

// A stored configuration that this build refuses (here a message limit above today's cap, which an
// older build accepted) stops a plain restart with a message naming the way out, and --force-config
// with a corrected file starts the run again (it used to be refused before --force-config was read).
TEST_F(CoordinatorServiceTest, AStoredConfigThisBuildRefusesCanBeReplacedWithForceConfig) {
  Stop();
  {
    auto db = SqliteDb::Open(run_dir_ + "/state.db", SqliteDb::Mode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("UPDATE run SET value = replace(value, 'max_message_bytes: 67108864', "
                            "'max_message_bytes: 536870912') WHERE key = 'config_yaml'").ok());
  }
  const absl::Status refused = OpenStatus(std::nullopt);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("coordinator.max_message_bytes"));
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--config FILE --force-config"));
  EXPECT_FALSE(OpenStatus(SmallConfig()).ok());  // without --force-config, a file does not replace it
  Start(SmallConfig(), /*force=*/true);
  EXPECT_EQ(run_->config().coordinator.max_message_bytes, SmallConfig().coordinator.max_message_bytes);
  Stop();
  Start(std::nullopt);  // the replacement was stored
}

// A rank's latest registration is its current one after a restart too, also when the clock stepped
// back between two registrations (they were read back in order of registration time, so the older
// process became current again and the live one's checkpoint reports were refused).
TEST_F(CoordinatorServiceTest, TheLatestRegistrationOfARankWinsAfterARestartWhateverTheClock) {
  const std::string old0 = Register(0, 1);
  now_ms_ -= 3'600'000;  // the clock steps back an hour
  const std::string new0 = Register(0, 1);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(Checkpoint(old0, 0, 1, 0, "/ckpt/m1").status().code(), absl::StatusCode::kFailedPrecondition);
  auto reported = Checkpoint(new0, 0, 1, 0, "/ckpt/m1");
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_TRUE(reported->committed());
}

// One coordinator per run directory: a second Open while the first is alive is refused; once the
// first is gone the directory opens again.
TEST_F(CoordinatorServiceTest, SecondCoordinatorOnTheSameRunDirectoryIsRefused) {
  RunCoordinatorOptions options;
  options.run_dir = run_dir_;
  auto second = RunCoordinator::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr(absl::StrCat("is in use by another srlm-coordinator (pid ", getpid(), " on ")));
  Stop();
  auto after = RunCoordinator::Open(options);
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST_F(CoordinatorServiceTest, WatchStatusStreamsUpdates) {
  int updates = 0;
  ASSERT_TRUE(client_->WatchStatus(0.1, [&](const v1::GetStatusResponse& status) {
    EXPECT_EQ(status.phase(), v1::PHASE_SFT);
    return ++updates < 3;
  }).ok());
  EXPECT_EQ(updates, 3);
}

// A watch has no deadline: `srlmctl watch` follows a run of any length. Here it outlives a stream
// deadline several times over (with one, it ended in DEADLINE_EXCEEDED after an hour).
TEST_F(CoordinatorServiceTest, AWatchOutlivesTheStreamDeadline) {
  ClientOptions options;
  options.token = kToken;
  options.deadline_seconds = 0.3;
  options.stream_deadline_seconds = 0.3;
  CoordinatorClient client(
      v1::Coordinator::NewStub(server_->grpc_server()->InProcessChannel(grpc::ChannelArguments())), options);
  const auto start = std::chrono::steady_clock::now();
  int updates = 0;
  const absl::Status watched = client.WatchStatus(0.1, [&](const v1::GetStatusResponse&) {
    ++updates;
    return std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1200);
  });
  EXPECT_TRUE(watched.ok()) << watched;
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
  EXPECT_GE(updates, 5);
}

// One NaN loss used to end the coordinator: SQLite stores NaN as NULL, the insert into
// train_steps (loss NOT NULL) failed, and a failed commit aborts. It is refused and changes nothing.
TEST_F(CoordinatorServiceTest, ANonFiniteLossMovesTheStepOnAndIsNotStored) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  ASSERT_TRUE(Lease(w0).has_train());
  v1::ReportTrainStepRequest step;
  step.set_worker_id(w0);
  step.set_iteration(0);
  step.set_step(1);
  step.set_total_steps(10);
  step.set_loss(0.75);
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  // Steps every rank skipped for a non-finite gradient: the step moves on, the loss shown stays the
  // last finite one, and nothing reaches the database (a NaN there failed the commit and ended the
  // coordinator).
  int64_t n = 1;
  for (double loss : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    step.set_step(++n);
    step.set_loss(loss);
    (*step.mutable_metrics())["skipped"] = 1;
    auto accepted = client_->ReportTrainStep(step);
    ASSERT_TRUE(accepted.ok()) << loss << ": " << accepted.status();
    auto status = client_->GetStatus();
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->train_step(), n);
    EXPECT_DOUBLE_EQ(status->train_loss(), 0.75);
  }
  step.set_step(++n);
  step.set_loss(0.5);
  (*step.mutable_metrics())["grad_norm"] = INFINITY;  // stored as text: no harm
  ASSERT_TRUE(client_->ReportTrainStep(step).ok());
  auto status = client_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->train_step(), n);
  EXPECT_DOUBLE_EQ(status->train_loss(), 0.5);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(client_->GetStatus()->train_step(), n);
  EXPECT_DOUBLE_EQ(client_->GetStatus()->train_loss(), 0.5);
}

// --force-config with a smaller prompts.per_iteration can find the pool complete already. Only a
// submission checked that, and none would come: every LeaseShard answered wait for ever.
TEST_F(CoordinatorServiceTest, AForcedConfigUnderWhichThePoolIsCompleteGoesOnToGenerate) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.prompts.per_iteration = 4;
  config.prompts.shard_size = 2;
  Start(config);
  const std::string w0 = Register(0, 1);
  v1::LeaseShardResponse lease = Lease(w0);
  ASSERT_TRUE(lease.has_prompts()) << lease.DebugString();
  ASSERT_TRUE(SubmitPrompts(w0, lease.lease().lease_id(),
                            {"Describe how rainbows form in the sky", "List three uses of copper wire"})
                  .ok());
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_PROMPTS);
  Stop();
  RunConfig smaller = config;
  smaller.prompts.per_iteration = 2;
  Start(smaller, /*force=*/true);
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_GENERATE);
  v1::LeaseShardResponse generate = Lease(w0);
  ASSERT_TRUE(generate.has_generate()) << generate.DebugString();
  EXPECT_EQ(generate.generate().prompts_size(), 2);
  Stop();
  Start(std::nullopt);  // the phase change was stored
  auto status = client_->GetStatus();
  EXPECT_EQ(status->phase(), v1::PHASE_GENERATE);
  EXPECT_EQ(status->shards().leased(), 1);
}

// An iteration's pairs are exported once they are frozen (GENERATE has ended); before, an export
// was a part of them, with exit status 0.
TEST_F(CoordinatorServiceTest, PairsAreExportedOnlyOnceGenerateHasEnded) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  LeaseAndSubmitGenerate(w0);
  int exported = 0;
  const absl::Status early = client_->ExportPairs(1, [&](const v1::ExportedPair&) { return ++exported > 0; });
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition) << early;
  EXPECT_THAT(std::string(early.message()),
              ::testing::HasSubstr("the pairs of iteration 1 are still being generated"));
  EXPECT_EQ(exported, 0);
  for (int shard = 1; shard < 3; ++shard) LeaseAndSubmitGenerate(w0);
  ASSERT_EQ(client_->GetStatus()->phase(), v1::PHASE_TRAIN);
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair&) { return ++exported > 0; }).ok());
  EXPECT_EQ(exported, 4);
}

// A checkpoint report counts for the rank its worker registered as, and only from that rank's
// current registration: rank 1 of 2 reporting as rank 0 of 1 committed the iteration at once.
TEST_F(CoordinatorServiceTest, ACheckpointReportCountsOnlyForItsWorkersRegistration) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  for (auto [rank, world_size] : {std::pair{0, 1}, std::pair{0, 2}, std::pair{1, 3}}) {
    auto refused = Checkpoint(w1, rank, world_size, 0, "/ckpt/m1");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << rank << "/" << world_size;
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::HasSubstr(absl::StrCat("registered as rank 1 of 2")));
  }
  auto status = client_->GetStatus();
  EXPECT_EQ(status->iteration(), 0);
  EXPECT_EQ(status->phase(), v1::PHASE_SFT);
  EXPECT_EQ(status->ranks_reported(), 0);
  // Rank 1 relaunched: the old registration's report no longer counts; the new one's does.
  const std::string r1 = Register(1, 2);
  auto superseded = Checkpoint(w1, 1, 2, 0, "/ckpt/m1");
  EXPECT_EQ(superseded.status().code(), absl::StatusCode::kFailedPrecondition) << superseded.status();
  EXPECT_EQ(client_->GetStatus()->ranks_reported(), 0);
  ASSERT_TRUE(Checkpoint(w0, 0, 2, 0, "/ckpt/m1").ok());
  auto committed = Checkpoint(r1, 1, 2, 0, "/ckpt/m1");
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_TRUE(committed->committed());
}

// run.sft false starts at iteration 1: with run.iterations 0 too the run has nothing to do, and it
// used to run iteration 1 anyway ("iteration 1 of 0").
TEST_F(CoordinatorServiceTest, ARunWithNeitherSftNorAnIterationIsRefused) {
  RunConfig config = DiscardRun();
  config.run.sft = false;
  config.run.iterations = 0;
  const absl::Status refused = OpenStatus(config);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_THAT(std::string(refused.message()),
              ::testing::HasSubstr("key 'run.iterations': expected an integer >= 1 when run.sft is false"));
  config.run.sft = true;  // SFT alone is a run
  EXPECT_TRUE(OpenStatus(config).ok());
}

// Per-worker shards_submitted is rebuilt from the completed leases at a restart (it was 0).
TEST_F(CoordinatorServiceTest, SubmittedShardCountsSurviveARestart) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);  // two PROMPTS shards
  LeaseAndSubmitGenerate(w1);
  auto counts = [&] {
    std::map<std::string, int64_t> submitted;
    const absl::StatusOr<v1::GetStatusResponse> status = client_->GetStatus();
    EXPECT_TRUE(status.ok()) << status.status();
    for (const v1::WorkerStatus& worker : status->workers()) {
      submitted[worker.worker_id()] = worker.shards_submitted();
    }
    return submitted;
  };
  const std::map<std::string, int64_t> expected = {{w0, 2}, {w1, 1}};
  EXPECT_EQ(counts(), expected);
  Stop();
  Start(std::nullopt);
  EXPECT_EQ(counts(), expected);
}

// Mean scores are stored exactly: with six digits a score moved to another histogram bucket at a
// restart (2.4999999999 read back as 2.5), and exported candidate_scores differed from chosen_score.
TEST_F(CoordinatorServiceTest, MeanScoresReadBackExactlyInTheHistogramAndTheExport) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  FillPrompts(w0);
  const double edge = 2.4999999999, third = 10.0 / 3;  // bucket 4 of 10 over [0, 5]; 3.33333...
  for (int shard = 0; shard < 3; ++shard) {
    v1::LeaseShardResponse lease = Lease(w0);
    ASSERT_TRUE(lease.has_generate());
    v1::SubmitShardRequest request = GenerateRequest(w0, lease);
    for (v1::PromptResult& result : *request.mutable_generate()->mutable_results()) {
      result.set_mean_scores(1, edge);
      result.set_mean_scores(2, third);
      if (result.has_pair()) result.mutable_pair()->set_chosen_score(third);
    }
    ASSERT_TRUE(client_->SubmitShard(request).ok());
  }
  const v1::GetStatusResponse before = *client_->GetStatus();
  ASSERT_EQ(before.phase(), v1::PHASE_TRAIN);
  EXPECT_EQ(before.score_histogram(4), 6);
  EXPECT_EQ(before.score_histogram(5), 0);
  Stop();
  Start(std::nullopt);
  EXPECT_THAT(client_->GetStatus()->score_histogram(), ::testing::ElementsAreArray(before.score_histogram()));
  int exported = 0;
  ASSERT_TRUE(client_->ExportPairs(1, [&](const v1::ExportedPair& pair) {
    ++exported;
    EXPECT_THAT(pair.candidate_scores(), ::testing::ElementsAre(1, edge, third));
    EXPECT_EQ(pair.candidate_scores(2), pair.chosen_score());
    return true;
  }).ok());
  EXPECT_EQ(exported, 4);
}

// Lease ids are predictable: another worker may not complete a lease it does not hold.
TEST_F(CoordinatorServiceTest, OnlyTheHolderOfALeaseCanSubmitIt) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  FinishSft(w0, w1);
  v1::LeaseShardResponse prompts = Lease(w0);
  ASSERT_TRUE(prompts.has_prompts());
  auto taken = SubmitPrompts(w1, prompts.lease().lease_id(), {"Describe how rainbows form in the sky"});
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition) << taken.status();
  EXPECT_THAT(std::string(taken.status().message()), ::testing::HasSubstr("is held by worker " + w0));
  EXPECT_EQ(client_->GetStatus()->prompts_accepted(), 0);
  EXPECT_EQ(client_->GetStatus()->shards().leased(), 1);
  ASSERT_TRUE(SubmitPrompts(w0, prompts.lease().lease_id(), {"Describe how rainbows form in the sky"}).ok());
  FillPrompts(w0);
  v1::LeaseShardResponse generate = Lease(w0);
  ASSERT_TRUE(generate.has_generate());
  auto stolen = client_->SubmitShard(GenerateRequest(w1, generate));
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kFailedPrecondition) << stolen.status();
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 0);
  ASSERT_TRUE(client_->SubmitShard(GenerateRequest(w0, generate)).ok());
  EXPECT_EQ(client_->GetStatus()->results_accepted(), 2);
}

// Stopping is one decision for a launch: a rank that leaves before training starts keeps the others
// from starting it (they are told to leave too), and a rank that stops while others already train
// is told to end the whole job rather than leave them waiting in a collective. A relaunch clears it.
TEST_F(CoordinatorServiceTest, AStoppingRankLeavesAndNoOtherRankOfItsLaunchStartsTraining) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);  // the run starts in SFT
  const v1::LeaseShardResponse left = Lease(w1, /*stopping=*/true);
  ASSERT_TRUE(left.has_stop()) << left.DebugString();
  EXPECT_FALSE(left.stop().end_job());  // nobody trains yet
  const v1::LeaseShardResponse told = Lease(w0);
  ASSERT_TRUE(told.has_stop()) << told.DebugString();
  EXPECT_THAT(told.stop().reason(), ::testing::HasSubstr("rank 1 of this launch has stopped"));
  EXPECT_FALSE(told.stop().end_job());

  // The relaunch registers both ranks again: training is handed out; then rank 1 stops while rank 0
  // trains, and is told to end the job.
  const std::string again0 = Register(0, 2), again1 = Register(1, 2);
  ASSERT_TRUE(Lease(again0).has_train());
  const v1::LeaseShardResponse late = Lease(again1, /*stopping=*/true);
  ASSERT_TRUE(late.has_stop()) << late.DebugString();
  EXPECT_TRUE(late.stop().end_job());
  EXPECT_EQ(client_->GetStatus()->phase(), v1::PHASE_SFT);  // leaving changes no state
}

// After a restart in a training phase, the ranks registered before it may be training without
// having asked this process: a rank that stops then ends the job rather than leave them waiting.
TEST_F(CoordinatorServiceTest, AfterARestartInTrainingAStoppingRankEndsTheJob) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);
  Stop();
  Start(SmallConfig());
  const v1::LeaseShardResponse stop = Lease(w0, /*stopping=*/true);
  ASSERT_TRUE(stop.has_stop()) << stop.DebugString();
  EXPECT_TRUE(stop.stop().end_job());  // w1 may be training
}

// A departure is durable: after a coordinator restart, the other rank of the departed rank's launch
// is still told to stop instead of being handed training it would wait in for the departed rank.
TEST_F(CoordinatorServiceTest, ADepartureOutlivesACoordinatorRestart) {
  const std::string w0 = Register(0, 2), w1 = Register(1, 2);  // the run starts in SFT
  ASSERT_TRUE(Lease(w1, /*stopping=*/true).has_stop());
  Stop();
  Start(SmallConfig());
  const v1::LeaseShardResponse told = Lease(w0);
  ASSERT_TRUE(told.has_stop()) << told.DebugString();
  EXPECT_THAT(told.stop().reason(), ::testing::HasSubstr("rank 1 of this launch has stopped"));
  // A relaunch registers rank 1 again, and training is handed out.
  const std::string again0 = Register(0, 2);
  Register(1, 2);
  EXPECT_TRUE(Lease(again0).has_train());
}

// A status answer shows only committed state. Another connection holds the database's write lock,
// so a registration is applied in memory but cannot commit; no status answer given before the lock
// is released may show that worker (a crash then would have undone it).
TEST_F(CoordinatorServiceTest, StatusShowsOnlyWhatHasCommitted) {
  auto blocker = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadWrite);
  ASSERT_TRUE(blocker.ok()) << blocker.status();
  ASSERT_TRUE((*blocker)->Exec("BEGIN IMMEDIATE").ok());
  std::thread registration([&] { Register(0, 1); });

  struct Answer {
    std::chrono::steady_clock::time_point at;
    int workers;
  };
  std::vector<Answer> answers;
  std::atomic<bool> watching{true};
  std::thread watcher([&] {
    while (watching) {
      const absl::StatusOr<v1::GetStatusResponse> status = client_->GetStatus();
      if (!status.ok()) {
        ADD_FAILURE() << status.status();
        return;
      }
      answers.push_back({std::chrono::steady_clock::now(), status->workers_size()});
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the registration is in memory by now
  const auto released = std::chrono::steady_clock::now();
  ASSERT_TRUE((*blocker)->Exec("ROLLBACK").ok());
  registration.join();
  watching = false;
  watcher.join();

  ASSERT_FALSE(answers.empty());
  int early = 0;  // answers given before the release that show the worker
  for (const Answer& answer : answers) early += answer.at < released && answer.workers > 0;
  EXPECT_EQ(early, 0) << "of " << answers.size() << " answers, " << early
                      << " showed a worker before its registration committed";
  EXPECT_EQ(client_->GetStatus()->workers_size(), 1);
}

TEST_F(CoordinatorServiceTest, DatabaseUsesWalAndFullSync) {
  auto db = SqliteDb::Open(run_->database_path(), SqliteDb::Mode::kReadOnly);
  ASSERT_TRUE(db.ok());
  auto stmt = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(stmt.ok());
  ASSERT_TRUE(*(*stmt)->Step());
  EXPECT_EQ((*stmt)->ColumnText(0), "wal");
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
