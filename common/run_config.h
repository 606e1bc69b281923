// The run configuration: one YAML file, every field with a default and a comment.
// The field list lives in one place (VisitRunConfig in run_config.cc); reading the YAML file,
// writing the documented example and applying command-line overrides all walk that same list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace srlm {

struct ModelConfig {
  std::string path;                   // start model directory (Hugging Face layout)
  std::string dtype = "float32";      // float32 | bfloat16
  std::string device = "cpu";         // cpu | cuda
  std::string chat_template = "plain";  // plain | llama2 | llama3 | chatml
  int64_t max_seq_len = 0;            // 0: the model's max_position_embeddings
};

struct DataConfig {
  std::string ift;   // instruction data, JSONL with prompt, response
  std::string eft;   // judge data, JSONL with prompt (a judge prompt), response (the judgement)
  std::string eval;  // held-out prompts with known answers, JSONL with prompt, answer (not empty):
                     // every model the run trains is evaluated on them (worker_loop.cc Evaluate)
};

struct RunSection {
  int64_t iterations = 2;  // self-rewarding iterations after SFT
  int64_t seed = 1234;     // seeds sampling, shuffling and initialisation
  bool sft = true;         // run SFT at iteration 0 (false: the start model is already fine-tuned)
};

struct SamplingConfig {
  double temperature = 0.7;
  double top_p = 0.9;
  int64_t top_k = 0;  // 0: off
  int64_t max_new_tokens = 512;   // a candidate cut off here is no answer (never judged or paired)
  std::vector<std::string> stop;  // stop strings
};

struct PromptsConfig {
  int64_t per_iteration = 64;  // new prompts wanted per iteration
  int64_t shots = 8;           // few-shot examples drawn from the IFT prompts
  int64_t shard_size = 8;      // prompts generated per leased shard
  SamplingConfig sampling{0.8, 0.9, 0, 64, {}};
  int64_t min_chars = 4;
  int64_t max_chars = 512;
  int64_t ngram = 3;                   // n of the n-gram overlap used for near-duplicates
  double near_duplicate_threshold = 0.7;  // overlap at or above this drops the prompt
};

struct GenerateConfig {
  int64_t candidates = 4;   // N responses per prompt
  int64_t shard_size = 8;   // prompts per leased shard
  SamplingConfig sampling;  // paper: temperature 0.7, top-p 0.9
  bool length_control = false;  // among candidates near the top score, pick the shortest
  double length_band = 0.5;     // "near": within this many points of the best score
};

struct JudgeConfig {
  int64_t samples = 3;           // k judgements per candidate, averaged
  std::string template_file;     // empty: the built-in additive 5-point rubric
  std::string score_pattern = R"(Score:\s*([0-9]+(?:\.[0-9]+)?))";  // RE2 regex, group 1 is the score
  double min_score = 0;
  double max_score = 5;
  bool require_all_scores = false;  // true: one unparsable judgement of k keeps a candidate out of pairs
  // 256 tokens: the rubric's justification of at most 100 words and the score line, with room; a
  // judgement cut off before its score line is unparsable.
  SamplingConfig sampling{0.7, 0.9, 0, 256, {}};
};

// The most steps a training section (sft.*, dpo.*) may give or derive (steps, epochs, warmup_steps,
// and epochs x batches per epoch), and its largest batch_size and micro_batch_size: 2^31 - 1 each.
// Far beyond any real run, and small enough that the trainer's step and index arithmetic stays
// inside int64 (a batch_size of INT64_MAX overflowed it: a division by zero, or 0 steps).
inline constexpr int64_t kMaxTrainingSteps = 2147483647;
inline constexpr int64_t kMaxBatchSize = 2147483647;
inline constexpr int64_t kMaxCandidates = 256;   // generate.candidates
inline constexpr int64_t kMaxJudgeSamples = 64;  // judge.samples

struct TrainConfig {
  int64_t steps = 0;            // 0: one pass over the data (epochs)
  int64_t epochs = 1;
  int64_t batch_size = 16;      // global batch, whatever the number of ranks
  int64_t micro_batch_size = 4; // per-rank forward/backward chunk (gradient accumulation)
  double lr = 1e-6;
  std::string lr_schedule = "linear";  // constant | linear | cosine
  double min_lr = 1e-7;
  int64_t warmup_steps = 0;
  double weight_decay = 0.0;
  double max_grad_norm = 1.0;   // 0 turns clipping off
  double dropout = 0.1;
  int64_t seed = 1234;
};

struct DpoConfig {
  TrainConfig train;
  double beta = 0.1;
  std::string loss = "sigmoid";  // sigmoid | ipo
  double label_smoothing = 0.0;
  bool length_normalize = false;
};

struct CoordinatorConfig {
  double lease_seconds = 300;      // a lease not completed in time goes back to the pool
  double heartbeat_seconds = 10;   // how often workers heartbeat (extends their leases)
  int64_t max_message_bytes = 64 << 20;
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  RunSection run;
  PromptsConfig prompts;
  GenerateConfig generate;
  JudgeConfig judge;
  TrainConfig sft{0, 1, 16, 4, 1e-5, "linear", 1e-6, 0, 0.0, 1.0, 0.1, 1234};
  DpoConfig dpo;
  CoordinatorConfig coordinator;
};

// Visits every field of a RunConfig with its dotted key and a one-line comment.
class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void Section(const std::string& name, const std::string& comment) {}
  virtual void Field(const std::string& key, std::string* value, const std::string& comment) = 0;
  virtual void Field(const std::string& key, int64_t* value, const std::string& comment) = 0;
  virtual void Field(const std::string& key, double* value, const std::string& comment) = 0;
  virtual void Field(const std::string& key, bool* value, const std::string& comment) = 0;
  virtual void Field(const std::string& key, std::vector<std::string>* value,
                     const std::string& comment) = 0;
};
void VisitRunConfig(RunConfig* config, ConfigVisitor* visitor);

// Loads a run configuration: defaults, overridden by the file. Errors name the file, line and key.
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path);
absl::StatusOr<RunConfig> ParseRunConfig(const std::string& yaml_text,
                                         const std::string& source_name);
// Range and enum checks; the message names the key.
absl::Status ValidateRunConfig(const RunConfig& config);
// The documented YAML of `config` (with comments), e.g. of the defaults.
std::string RunConfigToYaml(const RunConfig& config);

}  // namespace srlm
