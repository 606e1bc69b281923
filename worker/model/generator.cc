#include "worker/model/generator.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/model/out_of_memory.h"
#include "worker/model/sampler.h"

namespace srlm {
namespace {

// Restores the model's training flag on scope exit.
class EvalScope {
 public:
  explicit EvalScope(LlamaModel& model) : model_(model), was_training_(model->is_training()) { model_->eval(); }
  ~EvalScope() { model_->train(was_training_); }

 private:
  LlamaModel& model_;
  bool was_training_;
};

// The earliest position of any stop string in `text`, or npos.
size_t FindStop(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    best = std::min(best, text.find(s));
  }
  return best;
}

// After a stop string cut `text` to `kept` bytes: drops the trailing tokens that only the stop string
// (and what followed it in the same token) needed, so that the tokens are those of the text kept
// and count its length. A token that holds the end of the kept text and the start of the stop stays.
void DropTokensPastTheCut(const Tokenizer& tokenizer, size_t kept, std::vector<int32_t>& tokens) {
  while (!tokens.empty()) {
    auto shorter = tokenizer.Decode(std::vector<int32_t>(tokens.begin(), tokens.end() - 1));
    // A prefix that ends inside a character does not decode: the last token is needed.
    if (!shorter.ok() || shorter->size() < kept) break;
    tokens.pop_back();
  }
}

}  // namespace

absl::StatusOr<std::vector<TokenGeneration>> GenerateTokens(LlamaModel& model,
                                                            const std::vector<std::vector<int32_t>>& prompts,
                                                            const SamplingOptions& options,
                                                            const std::vector<uint64_t>& seeds,
                                                            const std::vector<int64_t>& eos_ids,
                                                            const StopPredicate& should_stop) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (B == 0) return std::vector<TokenGeneration>{};
  if (seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", seeds.size(), " seeds for ", B, " prompts"));
  }
  if (options.max_new_tokens < 0) return absl::InvalidArgumentError("max_new_tokens must be >= 0");
  int64_t P = 0;
  for (const auto& p : prompts) {
    if (p.empty()) return absl::InvalidArgumentError("empty prompt (give at least a BOS token)");
    P = std::max<int64_t>(P, p.size());
    for (int32_t id : p) {
      if (id < 0 || id >= model->config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("prompt token id ", id, " outside the vocabulary"));
      }
    }
  }
  // Each sequence's own limit: max_new_tokens, and the room its prompt leaves under max_total_tokens.
  std::vector<int64_t> limit(B, options.max_new_tokens);
  for (int64_t b = 0; b < B; ++b) {
    if (options.max_total_tokens <= 0) continue;
    const int64_t room = options.max_total_tokens - static_cast<int64_t>(prompts[b].size());
    if (room <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("prompt ", b, " has ", prompts[b].size(),
                                                     " tokens, no room under max_total_tokens ",
                                                     options.max_total_tokens));
    }
    limit[b] = std::min(limit[b], room);
  }
  const int64_t steps = *std::max_element(limit.begin(), limit.end());
  std::vector<TokenGeneration> results(B);
  if (steps == 0) {
    for (auto& r : results) r.finish_reason = "length";
    return results;
  }
  const std::set<int64_t> eos(eos_ids.begin(), eos_ids.end());
  try {
    EvalScope eval(model);
    c10::InferenceMode inference;
    const torch::Device device = model->device();
    const int64_t capacity = P + steps;
    KVCache cache = model->make_cache(B, capacity);

    // Left-padded prompts (pad id 0, never attended to) and their positions.
    std::vector<int64_t> ids(B * P, 0), positions(B * P, 0), pads(B);
    auto key_valid_cpu = torch::ones({B, capacity}, torch::kBool);
    bool any_pad = false;
    for (int64_t b = 0; b < B; ++b) {
      pads[b] = P - static_cast<int64_t>(prompts[b].size());
      any_pad = any_pad || pads[b] > 0;
      if (pads[b] > 0) key_valid_cpu[b].narrow(0, 0, pads[b]).fill_(false);
      for (size_t t = 0; t < prompts[b].size(); ++t) {
        ids[b * P + pads[b] + t] = prompts[b][t];
        positions[b * P + pads[b] + t] = static_cast<int64_t>(t);
      }
    }
    auto to_device = [&](std::vector<int64_t>& v, int64_t rows, int64_t cols) {
      return torch::from_blob(v.data(), {rows, cols}, torch::kInt64).to(device, /*non_blocking=*/false, /*copy=*/true);
    };
    const auto key_valid = key_valid_cpu.to(device);
    torch::Tensor prefill_mask;
    if (any_pad) {
      auto causal = torch::ones({P, P}, key_valid.options()).tril();
      auto eye = torch::eye(P, key_valid.options());
      prefill_mask = causal.unsqueeze(0).logical_and(key_valid.narrow(1, 0, P).unsqueeze(1)).logical_or(eye).unsqueeze(1);
    }
    auto logits = model->forward_cached(to_device(ids, B, P), to_device(positions, B, P), prefill_mask, &cache,
                                        /*last_only=*/true);

    std::vector<int64_t> next_positions(B);
    for (int64_t b = 0; b < B; ++b) next_positions[b] = static_cast<int64_t>(prompts[b].size());
    auto step_positions = to_device(next_positions, B, 1);
    TokenSampler sampler({options.temperature, options.top_p, options.top_k}, seeds);
    const int64_t V = model->config.vocab_size;
    const int64_t sampled_vocab = options.vocab_limit > 0 ? std::min(options.vocab_limit, V) : V;
    std::vector<bool> done(B, false);
    int64_t remaining = B;
    std::vector<int64_t> step_ids(B);
    for (int64_t step = 0; step < steps && remaining > 0; ++step) {
      std::vector<int64_t> next = sampler.Sample(logits.select(1, 0).narrow(-1, 0, sampled_vocab));
      for (int64_t b = 0; b < B; ++b) {
        step_ids[b] = next[b];
        if (done[b]) continue;
        auto& r = results[b];
        if (eos.count(next[b])) {
          r.finish_reason = "eos";
        } else {
          r.tokens.push_back(static_cast<int32_t>(next[b]));
          if (should_stop && should_stop(b, r.tokens)) {
            r.finish_reason = "stop";
          } else if (static_cast<int64_t>(r.tokens.size()) >= limit[b]) {
            r.finish_reason = "length";
          }
        }
        if (!r.finish_reason.empty()) {
          done[b] = true;
          --remaining;
        }
      }
      if (remaining == 0 || step + 1 == steps) break;
      torch::Tensor mask;
      if (any_pad) mask = key_valid.narrow(1, 0, cache.length + 1).view({B, 1, 1, cache.length + 1});
      logits = model->forward_cached(to_device(step_ids, B, 1), step_positions, mask, &cache, /*last_only=*/false);
      step_positions = step_positions + 1;
    }
    for (auto& r : results) {
      if (r.finish_reason.empty()) r.finish_reason = "length";
    }
  } catch (const c10::Error& e) {
    if (IsOutOfMemory(e)) {
      return absl::ResourceExhaustedError(absl::StrCat("generation of ", B, " sequences (", P, " + ", steps,
                                                       " tokens each) ran out of memory: ",
                                                       e.what_without_backtrace()));
    }
    return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
  }
  return results;
}

absl::StatusOr<std::vector<Generation>> Generate(LlamaModel& model, const Tokenizer& tokenizer,
                                                 const std::vector<std::vector<int32_t>>& prompts,
                                                 const SamplingOptions& options, const std::vector<uint64_t>& seeds) {
  std::vector<int64_t> eos_ids(model->config.eos_token_ids.begin(), model->config.eos_token_ids.end());
  if (tokenizer.eos_id() >= 0) eos_ids.push_back(tokenizer.eos_id());
  for (int32_t id : options.extra_eos_ids) eos_ids.push_back(id);
  SamplingOptions bounded = options;
  if (bounded.vocab_limit <= 0) bounded.vocab_limit = tokenizer.vocab_size();  // 0 when unknown: no bound
  StopPredicate should_stop;
  if (!options.stop.empty()) {
    should_stop = [&](size_t, const std::vector<int32_t>& tokens) {
      auto text = tokenizer.Decode(tokens);
      return text.ok() && FindStop(*text, options.stop) != std::string::npos;
    };
  }
  SRLM_ASSIGN_OR_RETURN(std::vector<TokenGeneration> generated,
                        GenerateTokens(model, prompts, bounded, seeds, eos_ids, should_stop));
  std::vector<Generation> out(generated.size());
  for (size_t i = 0; i < generated.size(); ++i) {
    out[i].tokens = std::move(generated[i].tokens);
    out[i].finish_reason = std::move(generated[i].finish_reason);
    SRLM_ASSIGN_OR_RETURN(out[i].text, tokenizer.Decode(out[i].tokens));
    if (out[i].finish_reason == "stop") {
      out[i].text.resize(FindStop(out[i].text, options.stop));
      DropTokensPastTheCut(tokenizer, out[i].text.size(), out[i].tokens);
    }
  }
  return out;
}

}  // namespace srlm
