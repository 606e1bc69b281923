// Implementation of worker/model/batched_generation.h.
#include "worker/model/batched_generation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace srlm {

BatchedGenerator::BatchedGenerator(int64_t max_batch) : limit_(std::max<int64_t>(1, max_batch)) {}

absl::StatusOr<std::vector<Generation>> BatchedGenerator::Generate(LlamaModel& model, const Tokenizer& tokenizer,
                                                                   const std::vector<std::vector<int32_t>>& prompts,
                                                                   const SamplingOptions& options,
                                                                   const std::vector<uint64_t>& seeds) {
  if (seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", seeds.size(), " seeds for ", prompts.size(), " prompts"));
  }
  std::vector<Generation> out;
  out.reserve(prompts.size());
  size_t begin = 0;
  while (begin < prompts.size()) {
    const size_t end = std::min(prompts.size(), begin + static_cast<size_t>(limit_));
    std::vector<std::vector<int32_t>> batch(prompts.begin() + begin, prompts.begin() + end);
    std::vector<uint64_t> batch_seeds(seeds.begin() + begin, seeds.begin() + end);
    absl::StatusOr<std::vector<Generation>> generated = srlm::Generate(model, tokenizer, batch, options, batch_seeds);
    if (absl::IsResourceExhausted(generated.status())) {
      const int64_t tried = static_cast<int64_t>(batch.size());
      if (tried == 1) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "one sequence (a prompt of ", batch[0].size(), " tokens and up to ", options.max_new_tokens,
            " new ones) does not fit in memory; lower the new tokens (generate.max_new_tokens) or the context "
            "(model.max_seq_len), or use a device with more memory: ",
            generated.status().message()));
      }
      limit_ = std::max<int64_t>(1, tried / 2);
      SRLM_LOG(WARNING) << "generation: a batch of " << tried << " sequences ran out of memory ("
                        << generated.status().message() << "); decoding at most " << limit_
                        << " together from now on";
      continue;  // the same prompts again, in smaller batches
    }
    if (!generated.ok()) return generated.status();
    for (Generation& g : *generated) out.push_back(std::move(g));
    begin = end;
  }
  return out;
}

}  // namespace srlm
