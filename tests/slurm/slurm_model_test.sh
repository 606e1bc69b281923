#!/usr/bin/env bash
# The real worker through a real one-node Slurm: sbatch of deploy/slurm/srlm.sbatch starts the
# srlm-coordinator and 2 `srlm-worker run` ranks (libtorch model, Trainer over MPI) with
# srun --mpi=pmix, on a tiny random model: SFT + 1 iteration. Checks: the job ends with the workers'
# exit code 0, the iteration counter advanced to DONE (coordinator log), and the checkpoints of
# iterations 1 and 2 exist and load (srlm-worker generate).
#   usage: slurm_model_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$1"; SRC="$2"
DIR="$(mktemp -d /tmp/srlm-slurm-model-XXXXXX)"
source "$HERE/deploy_job.sh"
DATA="$SRC/deploy/demo/data"
"$BUILD/worker/srlm-worker" init-model --out "$DIR/m0" --tokenizer-from "$DATA" --hidden-size 32 \
  --intermediate-size 64 --layers 2 --heads 2 --kv-heads 1 --max-position-embeddings 128 --seed 5 \
  >"$DIR/init.log" 2>&1 || fail "init-model"

cat >"$DIR/config.yaml" <<YAML
model: {path: "$DIR/m0"}
data: {ift: "$DATA/ift.jsonl", eft: "$DATA/eft.jsonl"}
run: {iterations: 1, seed: 3}
prompts: {per_iteration: 8, shots: 2, shard_size: 4, min_chars: 1, max_chars: 400,
          sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 8}}
generate: {candidates: 2, shard_size: 4, sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 6}}
judge: {samples: 1, template_file: "$SRC/deploy/demo/judge_template.txt",
        sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 8}}
sft: {steps: 2, batch_size: 8, micro_batch_size: 4, lr: 1.0e-4}
dpo: {steps: 1, batch_size: 4, micro_batch_size: 2, lr: 1.0e-4}
coordinator: {heartbeat_seconds: 0.5, lease_seconds: 60}
YAML

port="$(free_port)"
export SRLM_BUILD_DIR="$BUILD" RUN_DIR="$DIR/run" PORT="$port" OMP_NUM_THREADS=1
job="$(submit_deploy_job "$DIR/config.yaml")" || fail "sbatch failed"
echo "job $job"
for _ in $(seq 900); do grep -q "workers exited with" "$DIR/job.out" 2>/dev/null && break; sleep 0.2; done
grep -q "workers exited with 0" "$DIR/job.out" || fail "the workers did not finish"
grep -q "iteration 2: PHASE_COMMIT -> PHASE_DONE" "$DIR/run/coordinator.log" || fail "the run did not reach DONE"
for i in 1 2; do
  [[ -f "$DIR/run/checkpoints/iter-$i/model.safetensors" ]] || fail "no checkpoint iter-$i"
done
echo '{"prompt": "Add: 1 + 2"}' >"$DIR/probe.jsonl"
"$BUILD/worker/srlm-worker" generate --model "$DIR/run/checkpoints/iter-2" --input "$DIR/probe.jsonl" \
  --output "$DIR/probe.out.jsonl" --max-new-tokens 4 >"$DIR/generate.log" 2>&1 || fail "iter-2 does not load"
grep "run done:" "$DIR/job.out" | head -2
PASSED=1
echo PASS
