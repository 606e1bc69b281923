// A scripted WorkerBackend for end-to-end tests of the loop's distributed protocol without a
// neural model: it "answers" the demo's "Reverse the word: X" tasks right or wrong by seed, judges
// by checking the reversal (Score: 5 right, Score: 1 wrong), writes self-instruct prompts from the
// seed, and "trains" by having rank 0 write a checkpoint folder (the other ranks wait for it, as
// they would in a collective). Ranks enter training together (`enter_collective`, a barrier), as
// the real trainer's first collective makes them: the coordinator relies on it (a rank that asks
// for training after another reported must be a relaunched one). What it produces is therefore
// known independently of the loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "worker/loop/worker_loop.h"

namespace srlm::e2e {

inline std::string WordFromSeed(uint64_t seed, int length) {
  std::string w;
  for (int i = 0; i < length; ++i) {
    w += static_cast<char>('a' + seed % 26);
    seed /= 26;
  }
  return w;
}

class ScriptedModel : public LoopModel {
 public:
  explicit ScriptedModel(int delay_ms = 0) : delay_ms_(delay_ms) {}
  // Chat-formats a user message as "[...]" (raw requests are used as they are).
  absl::StatusOr<std::vector<GeneratedText>> Generate(const std::vector<std::string>& texts, PromptFormat format,
                                                     const SamplingConfig&,
                                                     const std::vector<uint64_t>& seeds) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    std::vector<std::string> prompts;
    for (const std::string& t : texts) prompts.push_back(format == PromptFormat::kChat ? "[" + t + "]" : t);
    static const std::regex kJudge(R"(Task: Reverse the word: (\w+)\nAnswer: (\w*)\n)");
    static const std::regex kAsk(R"(^\[Reverse the word: (\w+)\]$)");
    std::vector<GeneratedText> out;
    for (size_t i = 0; i < prompts.size(); ++i) {
      std::smatch m;
      GeneratedText g;
      g.finish_reason = "eos";
      if (prompts[i].rfind("Below are example tasks.", 0) == 0) {
        g.text = "Reverse the word: " + WordFromSeed(seeds[i], 6) + "\n";
        g.finish_reason = "stop";
      } else if (std::regex_search(prompts[i], m, kJudge)) {
        const std::string word = m[1], answer = m[2];
        g.text = std::string(word.rbegin(), word.rend()) == answer ? "right.\nScore: 5" : "wrong.\nScore: 1";
      } else if (std::regex_match(prompts[i], m, kAsk)) {
        const std::string word = m[1];
        g.text = seeds[i] % 2 == 0 ? std::string(word.rbegin(), word.rend()) : word;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("scripted model: unexpected prompt ", prompts[i]));
      }
      g.num_tokens = static_cast<int64_t>(g.text.size());
      out.push_back(g);
    }
    return out;
  }
  absl::StatusOr<std::vector<ScoredResponse>> ScoreResponses(
      const std::string&, const std::vector<std::string>& responses) override {
    std::vector<ScoredResponse> out;
    for (const auto& r : responses) out.push_back({-1.0 * static_cast<double>(r.size()), static_cast<int64_t>(r.size())});
    return out;
  }

 private:
  int delay_ms_;
};

// A reusable barrier for `parties` threads (the in-process tests' stand-in for MPI_Barrier).
class ThreadBarrier {
 public:
  explicit ThreadBarrier(int parties) : parties_(parties) {}
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t generation = generation_;
    if (++waiting_ == parties_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != generation; });
  }

 private:
  const int parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  int64_t generation_ = 0;
};

class ScriptedBackend : public WorkerBackend {
 public:
  // Delays make the phases last long enough for fault tests to strike inside them.
  explicit ScriptedBackend(int rank, int generate_delay_ms = 0, int train_delay_ms = 0)
      : rank_(rank), generate_delay_ms_(generate_delay_ms), train_delay_ms_(train_delay_ms) {}
  absl::StatusOr<std::unique_ptr<LoopModel>> LoadModel(const std::string& dir) override {
    loaded_dirs.push_back(dir);
    return std::make_unique<ScriptedModel>(generate_delay_ms_);
  }
  absl::Status TrainSft(const RunConfig&, const std::string& model_dir, const std::string& out_dir,
                        const TrainStepReporter& report) override {
    if (enter_collective) enter_collective();
    report({1, 1, 1.0, 1, {}});
    return WriteOrWait(out_dir, "sft from " + model_dir + "\n");
  }
  absl::Status TrainDpo(const RunConfig&, const std::string& model_dir,
                        const std::vector<v1::TrainingPair>& pairs, int64_t total,
                        const std::string& out_dir, const TrainStepReporter& report) override {
    if (enter_collective) enter_collective();
    std::string text = absl::StrCat("dpo from ", model_dir, " total ", total, "\n");
    for (const auto& p : pairs) {
      absl::StrAppend(&text, p.position(), " ", p.prompt(), " | ", p.chosen(), " > ", p.rejected(), "\n");
    }
    report({1, 1, 0.5, 1, {}});
    std::this_thread::sleep_for(std::chrono::milliseconds(train_delay_ms_));
    return WriteOrWait(out_dir, text, absl::StrCat("/pairs-rank", rank_, ".txt"));
  }
  std::vector<std::string> loaded_dirs;  // every LoadModel, in order
  std::function<void()> enter_collective;  // a barrier of all ranks (MPI_Barrier under mpirun)

 private:
  absl::Status WriteOrWait(const std::string& out_dir, const std::string& text,
                           const std::string& per_rank_file = "") {
    std::filesystem::create_directories(out_dir);
    if (!per_rank_file.empty()) std::ofstream(out_dir + per_rank_file) << text;
    if (rank_ == 0) {
      std::ofstream(out_dir + "/model.txt.tmp") << text;
      std::filesystem::rename(out_dir + "/model.txt.tmp", out_dir + "/model.txt");
      return absl::OkStatus();
    }
    for (int i = 0; i < 600; ++i) {
      if (std::filesystem::exists(out_dir + "/model.txt")) return absl::OkStatus();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return absl::DeadlineExceededError("rank 0 did not write " + out_dir);
  }
  int rank_;
  int generate_delay_ms_;
  int train_delay_ms_;
};

}  // namespace srlm::e2e
