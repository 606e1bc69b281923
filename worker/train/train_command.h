// The offline training commands `srlm-worker sft` and `srlm-worker dpo`: flags named like the YAML
// keys (sft.* / dpo.*), --config loads a run YAML and flags override it. They run alone or under
// mpirun/srun (one rank per process), read JSONL, write checkpoints under --out (required), print
// progress on rank 0.
#pragma once

#include <CLI/CLI.hpp>

#include "worker/train/training_objective.h"

namespace srlm {

// Adds the subcommand ("sft" or "dpo") to `app`; its callback runs training and exits the process
// with 0 on success, 1 on failure (the error is logged).
void RegisterTrainCommand(CLI::App& app, TrainingObjective objective);

// RegisterTrainCommand for each objective; called by worker_main.cc.
void RegisterSftCommand(CLI::App& app);
void RegisterDpoCommand(CLI::App& app);

}  // namespace srlm
