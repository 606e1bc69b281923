#!/usr/bin/env bash
# deploy/slurm/srlm.sbatch through a real one-node Slurm: sbatch starts the srlm-coordinator binary
# and two worker ranks with srun --mpi=pmix (the real worker loop and gRPC client; the scripted
# backend of tests/e2e_scripted_worker stands in for the neural model). During GENERATE the batch
# shell gets USR1 (as from --signal before the time limit): the script stops the workers and requeues
# the job; the second start resumes from RUN_DIR and finishes SFT + 1 iteration: checkpoints
# iter-1 and iter-2 exist and iteration 1's pairs are exported once each.
#   usage: slurm_deploy_test.sh BUILD_DIR SCRIPTED_WORKER SOURCE_DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$1"; WORKER="$2"; SRC="$3"
DIR="$(mktemp -d /tmp/srlm-slurm-deploy-XXXXXX)"
source "$HERE/deploy_job.sh"

cat >"$DIR/config.yaml" <<YAML
model:
  path: "$DIR/m0"
data:
  ift: "$SRC/deploy/demo/data/ift.jsonl"
run:
  iterations: 1
prompts:
  per_iteration: 12
  shard_size: 4
  shots: 3
generate:
  candidates: 4
  shard_size: 2
judge:
  samples: 2
  template_file: "$SRC/deploy/demo/judge_template.txt"
coordinator:
  heartbeat_seconds: 0.5
  lease_seconds: 20
YAML

port="$(free_port)"
export SRLM_BUILD_DIR="$BUILD" SRLM_WORKER_BIN="$WORKER" RUN_DIR="$DIR/run" PORT="$port"
export E2E_GENERATE_DELAY_MS=300 E2E_TRAIN_DELAY_MS=500 E2E_EXPORT_PAIRS="$DIR/pairs.jsonl"
job="$(submit_deploy_job "$DIR/config.yaml")" || fail "sbatch failed"
echo "job $job"
for _ in $(seq 600); do grep -q "GENERATE shard" "$DIR/job.out" 2>/dev/null && break; sleep 0.1; done
grep -q "GENERATE shard" "$DIR/job.out" || fail "no GENERATE shard in the first start"
scancel --batch --signal=USR1 "$job" || fail "scancel --signal USR1"
for _ in $(seq 200); do grep -q "requeued; the next start resumes" "$DIR/job.out" && break; sleep 0.1; done
grep -q "requeued; the next start resumes" "$DIR/job.out" || fail "the script did not requeue"
# Slurm delays a requeued job (BeginTime) for a reason: slurmd revokes the old run's credential with
# a one-second resolution, and a start within that second is killed for good ("Job credential
# revoked"). So wait until the job is PENDING and 3 s more, then ask for it to start now.
for _ in $(seq 300); do
  [[ "$(squeue -h -j "$job" -o %T 2>/dev/null)" == PENDING ]] && break; sleep 0.2
done
sleep 3
for _ in $(seq 240); do
  grep -q "restart 1" "$DIR/job.out" && break
  scontrol update JobId="$job" StartTime=now >/dev/null 2>&1 || true
  sleep 0.5
done
for _ in $(seq 900); do grep -q "workers exited with" "$DIR/job.out" && break; sleep 0.2; done
grep -q "restart 1" "$DIR/job.out" || fail "no second start"
grep -q "workers exited with 0" "$DIR/job.out" || fail "the second start did not finish"
for i in 1 2; do [[ -f "$DIR/run/checkpoints/iter-$i/model.txt" ]] || fail "no checkpoint iter-$i"; done
[[ -s "$DIR/pairs.jsonl" ]] || fail "no pairs exported"
python3 - "$DIR/pairs.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["prompt_id"] for r in rows]
assert len(ids) == len(set(ids)), "a prompt has two pairs"
for r in rows:
    word = r["prompt"].rsplit(" ", 1)[1]
    assert r["chosen"] == word[::-1] and r["rejected"] == word, r
print(f"{len(rows)} pairs, each prompt once")
PY
PASSED=1
echo PASS
