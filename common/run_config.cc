// Implementation of common/run_config.h: the one list of fields, and its readers and writers.
#include "common/run_config.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config_reader.h"
#include "common/int_math.h"
#include "common/score_pattern.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

void VisitSampling(const std::string& p, SamplingConfig* s, ConfigVisitor* v) {
  v->Field(p + ".temperature", &s->temperature, "sampling temperature; 0 is greedy");
  v->Field(p + ".top_p", &s->top_p, "nucleus sampling: keep the smallest set of tokens with this mass");
  v->Field(p + ".top_k", &s->top_k, "keep the k most likely tokens; 0 turns it off");
  v->Field(p + ".max_new_tokens", &s->max_new_tokens, "longest generation, in tokens; text cut off here is unfinished: a self-instructed prompt or a candidate is dropped, a judgement unparsable");
  v->Field(p + ".stop", &s->stop, "strings that end a generation (not included in the output)");
}

void VisitTrain(const std::string& p, TrainConfig* t, ConfigVisitor* v) {
  v->Field(p + ".steps", &t->steps,
           "optimizer steps, at most 2147483647 (2^31-1); 0 derives them from epochs (epochs x ceil(examples / "
           "batch_size), which training refuses above the same limit)");
  v->Field(p + ".epochs", &t->epochs, "passes over the data when steps is 0; at most 2147483647");
  v->Field(p + ".batch_size", &t->batch_size, "global batch size in examples, whatever the ranks; at most 2147483647");
  v->Field(p + ".micro_batch_size", &t->micro_batch_size,
           "examples per forward/backward on one rank (gradient accumulation); at most 2147483647");
  v->Field(p + ".lr", &t->lr, "peak learning rate");
  v->Field(p + ".lr_schedule", &t->lr_schedule, "constant | linear | cosine (decay to min_lr)");
  v->Field(p + ".min_lr", &t->min_lr, "learning rate at the end of the decay");
  v->Field(p + ".warmup_steps", &t->warmup_steps, "linear warm-up steps from 0 to lr; at most 2147483647");
  v->Field(p + ".weight_decay", &t->weight_decay, "AdamW decoupled weight decay");
  v->Field(p + ".max_grad_norm", &t->max_grad_norm, "clip the global gradient norm; 0 turns it off");
  v->Field(p + ".dropout", &t->dropout, "dropout probability during training");
  v->Field(p + ".seed", &t->seed,
           p == "dpo" ? "seeds data order and dropout (>= 0); the loop's iteration t trains with a seed derived from "
                        "it and t"
                      : "seeds data order and dropout (>= 0)");
}

// Reads each field from a YAML document.
class ReadVisitor : public ConfigVisitor {
 public:
  explicit ReadVisitor(ConfigReader* reader) : reader_(reader) {}
  void Field(const std::string& k, std::string* v, const std::string&) override { reader_->Read(k, v); }
  void Field(const std::string& k, int64_t* v, const std::string&) override { reader_->Read(k, v); }
  void Field(const std::string& k, double* v, const std::string&) override { reader_->Read(k, v); }
  void Field(const std::string& k, bool* v, const std::string&) override { reader_->Read(k, v); }
  void Field(const std::string& k, std::vector<std::string>* v, const std::string&) override {
    reader_->Read(k, v);
  }

 private:
  ConfigReader* reader_;
};

// A YAML double-quoted scalar that reads back as exactly `s`: quotes and backslashes escaped, and
// control characters as escapes (a literal line break inside quotes folds into a space).
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20 || u == 0x7f) {
      out += absl::StrFormat("\\x%02x", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The shortest decimal form that reads back as exactly `v` (the default stream precision kept only
// six digits: 1.23456789e-4 came back as 0.000123457).
std::string ExactDouble(double v) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, result.ptr);
}

// Every number of the configuration must be finite: yaml-cpp reads ".inf" and ".nan", which the
// range checks let through (inf > 0) and which the stored configuration could not be read back from.
class FiniteCheckVisitor : public ConfigVisitor {
 public:
  void Field(const std::string&, std::string*, const std::string&) override {}
  void Field(const std::string&, int64_t*, const std::string&) override {}
  void Field(const std::string& k, double* v, const std::string&) override {
    if (first_bad_.empty() && !std::isfinite(*v)) first_bad_ = k;
  }
  void Field(const std::string&, bool*, const std::string&) override {}
  void Field(const std::string&, std::vector<std::string>*, const std::string&) override {}
  const std::string& first_bad() const { return first_bad_; }

 private:
  std::string first_bad_;
};

// Writes each field as nested YAML with its comment.
class YamlWriteVisitor : public ConfigVisitor {
 public:
  void Section(const std::string& name, const std::string& comment) override {
    out_ << "\n# " << comment << "\n" << name << ":\n";
    open_.clear();
  }
  void Field(const std::string& k, std::string* v, const std::string& c) override { Emit(k, Quote(*v), c); }
  void Field(const std::string& k, int64_t* v, const std::string& c) override { Emit(k, std::to_string(*v), c); }
  void Field(const std::string& k, double* v, const std::string& c) override { Emit(k, ExactDouble(*v), c); }
  void Field(const std::string& k, bool* v, const std::string& c) override { Emit(k, *v ? "true" : "false", c); }
  void Field(const std::string& k, std::vector<std::string>* v, const std::string& c) override {
    std::vector<std::string> quoted;
    for (const auto& s : *v) quoted.push_back(Quote(s));
    Emit(k, "[" + absl::StrJoin(quoted, ", ") + "]", c);
  }
  std::string str() const { return out_.str(); }

 private:
  void Emit(const std::string& key, const std::string& value, const std::string& comment) {
    // key "a.b.c": open the intermediate mapping "b" when it changes.
    std::vector<std::string> parts;
    size_t start = 0, dot;
    while ((dot = key.find('.', start)) != std::string::npos) {
      parts.push_back(key.substr(start, dot - start));
      start = dot + 1;
    }
    const std::string leaf = key.substr(start);
    const std::string parent = parts.size() > 1 ? absl::StrJoin(parts.begin() + 1, parts.end(), ".") : "";
    if (parent != open_) {
      for (size_t i = 1; i < parts.size(); ++i) {
        out_ << std::string(2 * i, ' ') << parts[i] << ":\n";
      }
      open_ = parent;
    }
    out_ << std::string(2 * parts.size(), ' ') << leaf << ": " << value << "  # " << comment << "\n";
  }
  std::ostringstream out_;
  std::string open_;
};

}  // namespace

void VisitRunConfig(RunConfig* c, ConfigVisitor* v) {
  v->Section("model", "The model every iteration starts from, and how it runs.");
  v->Field("model.path", &c->model.path, "start model directory (Hugging Face layout: config.json, model.safetensors, tokenizer)");
  v->Field("model.dtype", &c->model.dtype, "float32 | bfloat16 (bfloat16 trains with float32 master weights)");
  v->Field("model.device", &c->model.device, "cpu | cuda");
  v->Field("model.chat_template", &c->model.chat_template, "plain | llama2 | llama3 | chatml");
  v->Field("model.max_seq_len", &c->model.max_seq_len, "longest prompt+response in tokens; 0: the model's max_position_embeddings");

  v->Section("data", "Seed data, JSONL.");
  v->Field("data.ift", &c->data.ift, "instruction fine-tuning data: lines with prompt, response; the coordinator keeps new prompts that repeat these out of the prompt pool");
  v->Field("data.eft", &c->data.eft, "judge (evaluation fine-tuning) data: lines with prompt (a judge prompt) and response (its judgement, in which judge.score_pattern must find a score: the coordinator checks that one does)");
  v->Field("data.eval", &c->data.eval, "held-out prompts with a known answer: lines with prompt, answer (both strings, answer not empty); each model the run trains answers them greedily, and status shows how many answers equal it (surrounding white space ignored); the coordinator keeps new prompts that repeat these out of the prompt pool, so DPO never trains on them");

  v->Section("run", "The loop.");
  v->Field("run.iterations", &c->run.iterations, "self-rewarding iterations after SFT");
  v->Field("run.seed", &c->run.seed, "seeds prompt sampling, generation and pair shuffling (>= 0)");
  v->Field("run.sft", &c->run.sft, "train SFT on IFT+EFT at iteration 0 (false: the start model is already fine-tuned)");

  v->Section("prompts", "Self-instruct: new prompts by few-shot prompting the current model.");
  v->Field("prompts.per_iteration", &c->prompts.per_iteration, "new prompts wanted per iteration");
  v->Field("prompts.shots", &c->prompts.shots, "few-shot examples drawn from the IFT prompts (paper: 8)");
  v->Field("prompts.shard_size", &c->prompts.shard_size, "prompts written per leased shard");
  VisitSampling("prompts.sampling", &c->prompts.sampling, v);
  v->Field("prompts.min_chars", &c->prompts.min_chars, "shorter prompts are dropped");
  v->Field("prompts.max_chars", &c->prompts.max_chars, "longer prompts are dropped");
  v->Field("prompts.ngram", &c->prompts.ngram, "n of the word n-gram overlap used to find near-duplicates");
  v->Field("prompts.near_duplicate_threshold", &c->prompts.near_duplicate_threshold, "overlap at or above this drops a prompt");

  v->Section("generate", "Candidate responses.");
  v->Field("generate.candidates", &c->generate.candidates, "N responses per prompt (paper: 4); at most 256");
  v->Field("generate.shard_size", &c->generate.shard_size, "prompts per leased shard");
  VisitSampling("generate.sampling", &c->generate.sampling, v);
  v->Field("generate.length_control", &c->generate.length_control, "among candidates within length_band of the best score, choose the shortest as chosen");
  v->Field("generate.length_band", &c->generate.length_band, "score band for length control, in points");

  v->Section("judge", "LLM-as-a-Judge.");
  v->Field("judge.samples", &c->judge.samples, "k judgements per candidate, averaged (paper: 3); at most 64");
  v->Field("judge.template_file", &c->judge.template_file, "judge prompt template file with {prompt} and {response}; empty: the built-in 5-point additive rubric");
  v->Field("judge.score_pattern", &c->judge.score_pattern, "RE2 regex (no backreferences or lookaround); its first group is the score, read from the last match");
  v->Field("judge.min_score", &c->judge.min_score, "scores below are unparsable");
  v->Field("judge.max_score", &c->judge.max_score, "scores above are unparsable");
  v->Field("judge.require_all_scores", &c->judge.require_all_scores, "true: a candidate with any unparsable judgement of its k takes no part in a pair; false: its mean is that of its parsed judgements (one is enough)");
  VisitSampling("judge.sampling", &c->judge.sampling, v);

  v->Section("sft", "Supervised fine-tuning at iteration 0 (masked cross-entropy on responses).");
  VisitTrain("sft", &c->sft, v);

  v->Section("dpo", "DPO at every self-rewarding iteration (paper: beta 0.1, lr 1e-6 to 1e-7, batch 16, dropout 0.1).");
  VisitTrain("dpo", &c->dpo.train, v);
  v->Field("dpo.beta", &c->dpo.beta, "DPO temperature");
  v->Field("dpo.loss", &c->dpo.loss, "sigmoid | ipo");
  v->Field("dpo.label_smoothing", &c->dpo.label_smoothing, "conservative DPO: assumed label noise in [0, 0.5)");
  v->Field("dpo.length_normalize", &c->dpo.length_normalize, "use per-token mean log-probabilities");

  v->Section("coordinator", "Coordinator service.");
  v->Field("coordinator.lease_seconds", &c->coordinator.lease_seconds, "a shard lease not completed (or heartbeated) in time returns to the pool; at least 2 x heartbeat_seconds");
  v->Field("coordinator.heartbeat_seconds", &c->coordinator.heartbeat_seconds, "how often workers heartbeat (>= 0.01)");
  v->Field("coordinator.max_message_bytes", &c->coordinator.max_message_bytes, "largest gRPC message accepted (1 MiB to 256 MiB)");
}

absl::StatusOr<RunConfig> ParseRunConfig(const std::string& yaml_text, const std::string& source_name) {
  SRLM_ASSIGN_OR_RETURN(ConfigReader reader, ConfigReader::FromString(yaml_text, source_name));
  RunConfig config;
  ReadVisitor visitor(&reader);
  VisitRunConfig(&config, &visitor);
  SRLM_RETURN_IF_ERROR(reader.Finish());
  SRLM_RETURN_IF_ERROR_CTX(ValidateRunConfig(config), source_name);
  return config;
}

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path) {
  SRLM_ASSIGN_OR_RETURN(ConfigReader reader, ConfigReader::FromFile(path));
  RunConfig config;
  ReadVisitor visitor(&reader);
  VisitRunConfig(&config, &visitor);
  SRLM_RETURN_IF_ERROR(reader.Finish());
  SRLM_RETURN_IF_ERROR_CTX(ValidateRunConfig(config), path);
  return config;
}

namespace {

absl::Status Check(bool ok, const std::string& key, const std::string& expected) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("key '", key, "': expected ", expected));
}

absl::Status ValidateSampling(const std::string& p, const SamplingConfig& s) {
  SRLM_RETURN_IF_ERROR(Check(s.temperature >= 0, p + ".temperature", "a number >= 0"));
  SRLM_RETURN_IF_ERROR(Check(s.top_p > 0 && s.top_p <= 1, p + ".top_p", "a number in (0, 1]"));
  SRLM_RETURN_IF_ERROR(Check(s.top_k >= 0, p + ".top_k", "an integer >= 0"));
  SRLM_RETURN_IF_ERROR(Check(s.max_new_tokens > 0, p + ".max_new_tokens", "an integer > 0"));
  return absl::OkStatus();
}

constexpr double kFloat32Max = std::numeric_limits<float>::max();

absl::Status ValidateTrain(const std::string& p, const TrainConfig& t) {
  const std::string steps_range = absl::StrCat("an integer in [0, ", kMaxTrainingSteps, "]");
  const std::string count_range = absl::StrCat("an integer in [1, ", kMaxTrainingSteps, "]");
  const std::string batch_range = absl::StrCat("an integer in [1, ", kMaxBatchSize, "]");
  SRLM_RETURN_IF_ERROR(Check(t.steps >= 0 && t.steps <= kMaxTrainingSteps, p + ".steps", steps_range));
  SRLM_RETURN_IF_ERROR(Check(t.epochs > 0 && t.epochs <= kMaxTrainingSteps, p + ".epochs", count_range));
  SRLM_RETURN_IF_ERROR(Check(t.batch_size > 0 && t.batch_size <= kMaxBatchSize, p + ".batch_size", batch_range));
  SRLM_RETURN_IF_ERROR(Check(t.micro_batch_size > 0 && t.micro_batch_size <= kMaxBatchSize,
                             p + ".micro_batch_size", batch_range));
  // Training computes in float32: a larger value failed the first step ("cannot be converted to type
  // float without overflow"), after a whole iteration of generation in the loop.
  const std::string float_range = absl::StrCat("a number in [0, ", kFloat32Max, "] (float32)");
  SRLM_RETURN_IF_ERROR(Check(t.lr >= 0 && t.lr <= kFloat32Max, p + ".lr", float_range));
  SRLM_RETURN_IF_ERROR(Check((t.min_lr >= 0 && t.min_lr <= t.lr) || t.lr_schedule == "constant",
                             p + ".min_lr", "a number in [0, lr]"));
  SRLM_RETURN_IF_ERROR(Check(t.lr_schedule == "constant" || t.lr_schedule == "linear" ||
                                 t.lr_schedule == "cosine",
                             p + ".lr_schedule", "constant, linear or cosine"));
  SRLM_RETURN_IF_ERROR(Check(t.warmup_steps >= 0 && t.warmup_steps <= kMaxTrainingSteps, p + ".warmup_steps",
                             steps_range));
  SRLM_RETURN_IF_ERROR(Check(t.weight_decay >= 0 && t.weight_decay <= kFloat32Max, p + ".weight_decay", float_range));
  SRLM_RETURN_IF_ERROR(Check(t.max_grad_norm >= 0 && t.max_grad_norm <= kFloat32Max, p + ".max_grad_norm",
                             float_range));
  SRLM_RETURN_IF_ERROR(Check(t.dropout >= 0 && t.dropout < 1, p + ".dropout", "a number in [0, 1)"));
  SRLM_RETURN_IF_ERROR(Check(t.seed >= 0, p + ".seed", "an integer >= 0"));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRunConfig(const RunConfig& c) {
  {
    RunConfig copy = c;
    FiniteCheckVisitor finite;
    VisitRunConfig(&copy, &finite);
    SRLM_RETURN_IF_ERROR(Check(finite.first_bad().empty(), finite.first_bad(), "a finite number"));
  }
  SRLM_RETURN_IF_ERROR(Check(c.model.dtype == "float32" || c.model.dtype == "bfloat16",
                             "model.dtype", "float32 or bfloat16"));
  SRLM_RETURN_IF_ERROR(Check(c.model.device == "cpu" || c.model.device == "cuda", "model.device", "cpu or cuda"));
  SRLM_RETURN_IF_ERROR(Check(c.model.chat_template == "plain" || c.model.chat_template == "llama2" ||
                                 c.model.chat_template == "llama3" || c.model.chat_template == "chatml",
                             "model.chat_template", "plain, llama2, llama3 or chatml"));
  SRLM_RETURN_IF_ERROR(Check(c.model.max_seq_len >= 0, "model.max_seq_len", "an integer >= 0"));
  // The counts the coordinator adds and multiplies (iterations, pool sizes, shard sizes) have the
  // training counts' bound: near INT64_MAX its shard arithmetic overflowed.
  const std::string pool_range = absl::StrCat("an integer in [1, ", kMaxBatchSize, "]");
  // As sft.seed and dpo.seed: a negative one was taken as its two's-complement bit pattern.
  SRLM_RETURN_IF_ERROR(Check(c.run.seed >= 0, "run.seed", "an integer >= 0"));
  SRLM_RETURN_IF_ERROR(Check(c.run.iterations >= 0 && c.run.iterations <= kMaxTrainingSteps, "run.iterations",
                             absl::StrCat("an integer in [0, ", kMaxTrainingSteps, "]")));
  // Without SFT the run starts at iteration 1: with no iteration either it has nothing to train
  // (and ran iteration 1 anyway).
  SRLM_RETURN_IF_ERROR(Check(c.run.iterations >= 1 || c.run.sft, "run.iterations",
                             "an integer >= 1 when run.sft is false (with neither SFT nor an iteration the "
                             "run has nothing to train)"));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.per_iteration > 0 && c.prompts.per_iteration <= kMaxBatchSize,
                             "prompts.per_iteration", pool_range));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.shots >= 0, "prompts.shots", "an integer >= 0"));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.shard_size > 0 && c.prompts.shard_size <= kMaxBatchSize, "prompts.shard_size",
                             pool_range));
  SRLM_RETURN_IF_ERROR(ValidateSampling("prompts.sampling", c.prompts.sampling));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.min_chars >= 0 && c.prompts.min_chars <= c.prompts.max_chars,
                             "prompts.min_chars", "an integer in [0, prompts.max_chars]"));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.ngram > 0, "prompts.ngram", "an integer > 0"));
  SRLM_RETURN_IF_ERROR(Check(c.prompts.near_duplicate_threshold > 0 && c.prompts.near_duplicate_threshold <= 1,
                             "prompts.near_duplicate_threshold", "a number in (0, 1]"));
  // Every candidate is judged judge.samples times, all of a prompt's at once: a billion candidates
  // ended the worker in std::bad_alloc, a hundred billion samples in the OOM killer, after SFT.
  SRLM_RETURN_IF_ERROR(Check(c.generate.candidates >= 2 && c.generate.candidates <= kMaxCandidates,
                             "generate.candidates", absl::StrCat("an integer in [2, ", kMaxCandidates, "]")));
  SRLM_RETURN_IF_ERROR(Check(c.generate.shard_size > 0 && c.generate.shard_size <= kMaxBatchSize,
                             "generate.shard_size", pool_range));
  SRLM_RETURN_IF_ERROR(ValidateSampling("generate.sampling", c.generate.sampling));
  SRLM_RETURN_IF_ERROR(Check(c.generate.length_band >= 0, "generate.length_band", "a number >= 0"));
  SRLM_RETURN_IF_ERROR(Check(c.judge.samples > 0 && c.judge.samples <= kMaxJudgeSamples, "judge.samples",
                             absl::StrCat("an integer in [1, ", kMaxJudgeSamples, "]")));
  SRLM_RETURN_IF_ERROR(Check(c.judge.min_score < c.judge.max_score, "judge.max_score", "a number > judge.min_score"));
  SRLM_RETURN_IF_ERROR(CompileScorePattern(c.judge.score_pattern).status());
  SRLM_RETURN_IF_ERROR(ValidateSampling("judge.sampling", c.judge.sampling));
  SRLM_RETURN_IF_ERROR(ValidateTrain("sft", c.sft));
  SRLM_RETURN_IF_ERROR(ValidateTrain("dpo", c.dpo.train));
  SRLM_RETURN_IF_ERROR(Check(c.dpo.beta > 0 && c.dpo.beta <= kFloat32Max, "dpo.beta",
                             absl::StrCat("a number in (0, ", kFloat32Max, "] (float32)")));
  // An iteration's pairs are at most its prompts: epochs past the step limit for that many were
  // refused by the trainer only at the first DPO, after a whole iteration of generation.
  if (c.dpo.train.steps == 0) {
    const int64_t most_batches = CeilDiv(c.prompts.per_iteration, c.dpo.train.batch_size);
    SRLM_RETURN_IF_ERROR(Check(c.dpo.train.epochs <= kMaxTrainingSteps / most_batches, "dpo.epochs",
                               absl::StrCat("an integer in [1, ", kMaxTrainingSteps / most_batches,
                                            "] when dpo.steps is 0 (with up to prompts.per_iteration = ",
                                            c.prompts.per_iteration, " pairs, ", most_batches,
                                            " batches per epoch, the steps stay at most ", kMaxTrainingSteps, ")")));
  }
  SRLM_RETURN_IF_ERROR(Check(c.dpo.loss == "sigmoid" || c.dpo.loss == "ipo", "dpo.loss", "sigmoid or ipo"));
  SRLM_RETURN_IF_ERROR(Check(c.dpo.label_smoothing >= 0 && c.dpo.label_smoothing < 0.5,
                             "dpo.label_smoothing", "a number in [0, 0.5)"));
  // A lease must outlive one late heartbeat (shorter, a shard that takes longer than the lease is
  // handed on before its first heartbeat, again and again), and its expiry in milliseconds must fit
  // an int64 (1e16 s, meant as "never", overflowed into a lease born expired): at most 100 years.
  constexpr double kLongestLeaseSeconds = 100 * 365.25 * 24 * 3600;
  SRLM_RETURN_IF_ERROR(Check(c.coordinator.heartbeat_seconds >= 0.01, "coordinator.heartbeat_seconds",
                             "a number >= 0.01"));
  SRLM_RETURN_IF_ERROR(Check(c.coordinator.lease_seconds >= 2 * c.coordinator.heartbeat_seconds &&
                                 c.coordinator.lease_seconds <= kLongestLeaseSeconds,
                             "coordinator.lease_seconds",
                             absl::StrCat("a number in [2 x coordinator.heartbeat_seconds, ", kLongestLeaseSeconds,
                                          "] (at least two heartbeats; at most 100 years), here heartbeat_seconds is ",
                                          c.coordinator.heartbeat_seconds)));
  // A stored GENERATE result (its detail and the pair's texts, up to about twice the message) must
  // fit SQLite's limit of 1e9 bytes for one value or row: a commit that fails ends the coordinator.
  // At least 1 MiB: the registration's answer alone (the configuration's text) passed 4 KiB, so no
  // worker could register.
  SRLM_RETURN_IF_ERROR(Check(c.coordinator.max_message_bytes >= (1 << 20) &&
                                 c.coordinator.max_message_bytes <= (256 << 20),
                             "coordinator.max_message_bytes",
                             "an integer in [1048576, 268435456] (1 MiB to 256 MiB: a result must fit in one "
                             "SQLite row)"));
  return absl::OkStatus();
}

std::string RunConfigToYaml(const RunConfig& config) {
  RunConfig copy = config;
  YamlWriteVisitor writer;
  VisitRunConfig(&copy, &writer);
  return "# srlm run configuration. Every key is optional; the values shown are the defaults.\n" +
         writer.str();
}

}  // namespace srlm
