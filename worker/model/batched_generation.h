// Generation for any number of prompts in batches that fit in memory. At most `max_batch` sequences
// are decoded together; a batch that runs out of memory (CUDA, or host memory on CPU) is split in
// halves and retried, and the smaller size is kept for the rest of the call and for later calls, so
// a batch size set too high for the device costs one failed attempt instead of the run (the loop's
// seeded sampling would fail the same way after every relaunch). Each sequence has its own seed, so
// outputs do not depend on how prompts are batched (up to float rounding in batched matmuls).
// A single sequence that does not fit is ResourceExhausted with what to lower.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/model/generator.h"
#include "worker/model/llama.h"

namespace srlm {

class BatchedGenerator {
 public:
  explicit BatchedGenerator(int64_t max_batch);

  // Generate() (generator.h) over `prompts` in order, in batches of at most batch_limit().
  absl::StatusOr<std::vector<Generation>> Generate(LlamaModel& model, const Tokenizer& tokenizer,
                                                   const std::vector<std::vector<int32_t>>& prompts,
                                                   const SamplingOptions& options, const std::vector<uint64_t>& seeds);

  // The largest batch used from now on: max_batch until a batch ran out of memory.
  int64_t batch_limit() const { return limit_; }

 private:
  int64_t limit_;
};

}  // namespace srlm
