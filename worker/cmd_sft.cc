// `srlm-worker sft`: supervised fine-tuning (masked cross-entropy on responses) from JSONL.
// The flags and the run live in worker/train/train_command.cc, shared with `dpo`.
#include "worker/train/train_command.h"

namespace srlm {
void RegisterSftCommand(CLI::App& app) { RegisterTrainCommand(app, TrainingObjective::kSft); }
}  // namespace srlm
