// Implementation of worker/train/examples.h.
#include "worker/train/examples.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <functional>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/jsonl.h"
#include "common/status_macros.h"

namespace srlm {
namespace {

constexpr int kMaxReportedErrors = 10;

// The most negative reference log-probability sum taken: the most negative float32, in which the
// trainer takes them (-1e308 became -inf there). A sum near it is still absurd, but one the
// trainer handles: a step whose loss overflows is skipped as non-finite on every rank.
constexpr double kMinReferenceLogprob = -std::numeric_limits<float>::max();

absl::StatusOr<TokenIds> ReadIds(const nlohmann::json& line, const std::string& key) {
  const auto it = line.find(key);
  if (it == line.end()) return absl::InvalidArgumentError(absl::StrCat("missing key '", key, "'"));
  if (!it->is_array()) return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not a list of token ids"));
  TokenIds ids;
  for (const auto& v : *it) {
    if (!v.is_number_integer()) return absl::InvalidArgumentError(absl::StrCat("'", key, "' holds a non-integer"));
    // Read wide, then range-check: get<int32_t> would wrap 4294967303 to 7.
    const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t{INT32_MAX}
                                             : v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX;
    if (!fits) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", key, "' holds ", v.dump(), ", not a token id (0 to ", INT32_MAX, ")"));
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

absl::StatusOr<std::string> ReadText(const nlohmann::json& line, const std::string& key) {
  const auto it = line.find(key);
  if (it == line.end()) return absl::InvalidArgumentError(absl::StrCat("missing key '", key, "'"));
  if (!it->is_string()) return absl::InvalidArgumentError(absl::StrCat("'", key, "' is not a string"));
  return it->get<std::string>();
}

// Reads one part of a line: `<key>_ids` when present, else the text `<key>` through the encoder.
absl::StatusOr<TokenIds> ReadPart(const nlohmann::json& line, const std::string& key, bool is_prompt,
                                  const TextEncoder* encoder) {
  if (line.contains(key + "_ids")) return ReadIds(line, key + "_ids");
  if (!line.contains(key)) return absl::InvalidArgumentError(absl::StrCat("missing key '", key, "' (or '", key, "_ids')"));
  absl::StatusOr<std::string> text = ReadText(line, key);
  if (!text.ok()) return text.status();
  if (!is_prompt && text->empty()) return absl::InvalidArgumentError(absl::StrCat("'", key, "' is empty"));
  if (encoder == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' is text but no tokenizer is available; give '", key, "_ids'"));
  }
  return is_prompt ? encoder->EncodePrompt(*text) : encoder->EncodeResponse(*text);
}

absl::Status CheckSequence(const TokenIds& prompt, const TokenIds& response, const std::string& key,
                           const ExampleLimits& limits) {
  if (response.empty()) return absl::InvalidArgumentError(absl::StrCat("'", key, "' is empty"));
  // The first response token is predicted from the last prompt token (srlm-worker logprobs refuses
  // the same): with none it would be counted in the loss's weights and never trained.
  if (prompt.empty()) {
    return absl::InvalidArgumentError(
        "the prompt is empty (no tokens; a text prompt needs a chat template or a tokenizer that adds a BOS): "
        "nothing to condition the first response token on");
  }
  const int64_t length = static_cast<int64_t>(prompt.size() + response.size());
  if (limits.max_seq_len > 0 && length > limits.max_seq_len) {
    return SequenceTooLongError(absl::StrCat("prompt + ", key), length, limits.max_seq_len);
  }
  for (const TokenIds* ids : {&prompt, &response}) {
    for (int32_t id : *ids) {
      if (id < 0 || (limits.vocab_size > 0 && id >= limits.vocab_size)) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", id, " outside the vocabulary [0, ",
                                                       limits.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

// Calls parse(json) for each non-blank line; collects the bad lines' errors with their numbers.
template <typename T>
absl::StatusOr<std::vector<T>> ReadExamples(const std::string& path,
                                            const std::function<absl::StatusOr<T>(const nlohmann::json&)>& parse) {
  std::vector<T> out;
  std::vector<std::string> errors;
  int64_t error_count = 0;
  SRLM_RETURN_IF_ERROR(ForEachJsonlLine(path, [&](int64_t line_number, absl::StatusOr<nlohmann::json> line) {
    absl::StatusOr<T> example = line.ok() ? parse(*line) : absl::StatusOr<T>(line.status());
    if (example.ok()) {
      out.push_back(*std::move(example));
    } else if (++error_count <= kMaxReportedErrors) {
      errors.push_back(absl::StrCat(path, ":", line_number, ": ", example.status().message()));
    }
    return absl::OkStatus();
  }));
  if (error_count > 0) {
    if (error_count > kMaxReportedErrors) errors.push_back(absl::StrCat("... ", error_count - kMaxReportedErrors, " more bad lines"));
    return absl::InvalidArgumentError(absl::StrCat(error_count, " bad line(s) in ", path, ":\n", absl::StrJoin(errors, "\n")));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat("no examples in ", path));
  return out;
}

}  // namespace

absl::StatusOr<std::vector<SftExample>> ReadSftJsonl(const std::string& path, const TextEncoder* encoder,
                                                     const ExampleLimits& limits) {
  return ReadExamples<SftExample>(path, [&](const nlohmann::json& line) -> absl::StatusOr<SftExample> {
    SftExample e;
    absl::StatusOr<TokenIds> prompt = ReadPart(line, "prompt", true, encoder);
    if (!prompt.ok()) return prompt.status();
    absl::StatusOr<TokenIds> response = ReadPart(line, "response", false, encoder);
    if (!response.ok()) return response.status();
    e.prompt_ids = *std::move(prompt);
    e.response_ids = *std::move(response);
    absl::Status s = CheckSequence(e.prompt_ids, e.response_ids, "response", limits);
    if (!s.ok()) return s;
    return e;
  });
}

absl::StatusOr<std::vector<PreferenceExample>> ReadPreferenceJsonl(const std::string& path,
                                                                   const TextEncoder* encoder,
                                                                   const ExampleLimits& limits) {
  return ReadExamples<PreferenceExample>(path, [&](const nlohmann::json& line) -> absl::StatusOr<PreferenceExample> {
    PreferenceExample e;
    absl::StatusOr<TokenIds> prompt = ReadPart(line, "prompt", true, encoder);
    if (!prompt.ok()) return prompt.status();
    absl::StatusOr<TokenIds> chosen = ReadPart(line, "chosen", false, encoder);
    if (!chosen.ok()) return chosen.status();
    absl::StatusOr<TokenIds> rejected = ReadPart(line, "rejected", false, encoder);
    if (!rejected.ok()) return rejected.status();
    e.prompt_ids = *std::move(prompt);
    e.chosen_ids = *std::move(chosen);
    e.rejected_ids = *std::move(rejected);
    absl::Status s = CheckSequence(e.prompt_ids, e.chosen_ids, "chosen", limits);
    if (s.ok()) s = CheckSequence(e.prompt_ids, e.rejected_ids, "rejected", limits);
    if (!s.ok()) return s;
    const bool has_chosen = line.contains("ref_chosen_logprob");
    const bool has_rejected = line.contains("ref_rejected_logprob");
    if (has_chosen != has_rejected) {
      return absl::InvalidArgumentError("give both ref_chosen_logprob and ref_rejected_logprob, or neither");
    }
    if (has_chosen) {
      if (!line["ref_chosen_logprob"].is_number() || !line["ref_rejected_logprob"].is_number()) {
        return absl::InvalidArgumentError("ref_chosen_logprob / ref_rejected_logprob must be numbers");
      }
      e.ref_chosen_logprob = line["ref_chosen_logprob"].get<double>();
      e.ref_rejected_logprob = line["ref_rejected_logprob"].get<double>();
      // A sum of token log-probabilities: finite and <= 0 (a positive one is no log-probability;
      // both were taken as they came).
      for (const char* key : {"ref_chosen_logprob", "ref_rejected_logprob"}) {
        const double v = line[key].get<double>();
        if (!std::isfinite(v) || v > 0 || v < kMinReferenceLogprob) {
          return absl::InvalidArgumentError(absl::StrCat("'", key, "' is ", line[key].dump(),
                                                         ": expected a log-probability sum in [", kMinReferenceLogprob,
                                                         ", 0] (<= 0, and finite in float32)"));
        }
      }
    }
    return e;
  });
}

absl::Status SequenceTooLongError(const std::string& what, int64_t tokens, int64_t limit,
                                  const std::string& limit_key) {
  return absl::InvalidArgumentError(absl::StrCat(what, " is ", tokens, " tokens, over the limit of ", limit,
                                                 limit_key.empty() ? "" : absl::StrCat(" (the model's ", limit_key, ")")));
}

}  // namespace srlm
