// `srlm-worker dpo`: DPO (sigmoid or IPO) on preference pairs from JSONL, with precomputed
// reference log-probabilities or a frozen reference model. Shares worker/train/train_command.cc.
#include "worker/train/train_command.h"

namespace srlm {
void RegisterDpoCommand(CLI::App& app) { RegisterTrainCommand(app, TrainingObjective::kDpo); }
}  // namespace srlm
