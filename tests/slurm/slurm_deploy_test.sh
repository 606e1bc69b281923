#!/usr/bin/env bash
# deploy/slurm/srlm.sbatch through a real one-node Slurm: sbatch starts the srlm-coordinator binary
# and two worker ranks with srun --mpi=pmix (the real worker loop and gRPC client; the scripted
# backend of tests/e2e_scripted_worker, which stops between units of work on SIGUSR1/SIGTERM as
# `srlm-worker run` does, stands in for the neural model). No PORT is given: the coordinator takes a
# free one and the workers are told it (the default used to be a fixed 50051).
#   1. During GENERATE the batch shell gets USR1 (as from --signal before the time limit): the
#      script passes SIGUSR1 to srun, both ranks finish their shard and log `leaving: stop requested`
#      (the script used to send srun SIGTERM, which killed them mid-shard), and the job requeues; the
#      second start resumes from RUN_DIR and finishes SFT + 1 iteration: checkpoints iter-1 and
#      iter-2 exist, iteration 1's pairs are exported once each, the job COMPLETED with exit code 0.
#   2. run.iterations raised to 2 and COORD_ARGS=--force-config (OPERATIONS.md's way to extend a
#      finished run; the script had no COORD_ARGS, so the coordinator refused the changed config):
#      the job reopens the run; during iteration 2's GENERATE the batch shell gets SIGTERM: the ranks
#      leave the same graceful way, the job is not requeued and ends with exit code 143.
#   3. The same submission again resumes iteration 2 to its end (checkpoint iter-3), exit code 0.
#   4. Workers that fail (exit 1) end the job with their status: FAILED, exit code 1 (the script could
#      lose srun's status when srun was gone before its first `kill -0`, and exit 0).
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

# A GENERATE shard takes about 1 s (2 calls of 500 ms): the stop comes while the ranks hold one.
export SRLM_BUILD_DIR="$BUILD" SRLM_WORKER_BIN="$WORKER" RUN_DIR="$DIR/run" STOP_GRACE_SECONDS=60
export E2E_GENERATE_DELAY_MS=500 E2E_TRAIN_DELAY_MS=500 E2E_EXPORT_PAIRS="$DIR/pairs.jsonl"
unset PORT COORD_ARGS

echo "1. USR1 during GENERATE: graceful stop, requeue, resume"
job="$(submit_deploy_job "$DIR/config.yaml")" || fail "sbatch failed"
echo "job $job"
wait_for_line "$DIR/job.out" "GENERATE shard" 60 "no GENERATE shard in the first start"
scancel --batch --signal=USR1 "$job" || fail "scancel --signal USR1"
wait_for_line "$DIR/job.out" "requeued; the next start resumes" 30 "the script did not requeue"
[[ "$(grep -c "leaving: stop requested" "$DIR/job.out")" == 2 ]] ||
  fail "the ranks did not both leave on the stop request (killed instead?)"
grep -q "USR1 (time limit near; the job requeues): asking the workers to stop" "$DIR/job.out" ||
  fail "the script did not say that it asked the workers to stop"
grep -q "ending the workers" "$DIR/job.out" && fail "the script ended workers that were leaving"
port="$(cat "$DIR/run/coordinator.port")"
grep -q "coordinator listening on .*:$port$" "$DIR/job.out" || fail "the script did not use the port its coordinator took"
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
state="$(wait_job_ended "$job")"
[[ "$state" == COMPLETED && "$(job_field "$job" ExitCode)" == 0:0 ]] ||
  fail "job $job ended $state with exit code $(job_field "$job" ExitCode), not COMPLETED with 0:0"
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

echo "2. one more iteration with COORD_ARGS=--force-config; SIGTERM during its GENERATE: graceful stop, 143"
sed 's/^  iterations: 1$/  iterations: 2/' "$DIR/config.yaml" >"$DIR/config2.yaml"
grep -q "iterations: 2" "$DIR/config2.yaml" || fail "config edit"
export COORD_ARGS=--force-config
job2="$(submit_deploy_job "$DIR/config2.yaml" "$DIR/job2.out")" || fail "sbatch failed"
wait_for_line "$DIR/job2.out" "iteration 2 GENERATE shard" 60 "no GENERATE shard of iteration 2"
scancel --batch --signal=TERM "$job2" || fail "scancel --signal TERM"
state="$(wait_job_ended "$job2")"
[[ "$state" == FAILED && "$(job_field "$job2" ExitCode)" == 143:0 ]] ||
  fail "job $job2 ended $state with exit code $(job_field "$job2" ExitCode), not FAILED with 143:0"
[[ "$(grep -c "leaving: stop requested" "$DIR/job2.out")" == 2 ]] ||
  fail "the ranks of job $job2 did not both leave on the stop request"
grep -q "stopped by TERM" "$DIR/job2.out" || fail "the script did not say it was stopped"
grep -q "requeued" "$DIR/job2.out" && fail "SIGTERM requeued the job"
[[ "$(job_field "$job2" Restarts)" == 0 ]] || fail "job $job2 was requeued"
[[ -e "$DIR/run/checkpoints/iter-3" ]] && fail "iteration 2 ended before the stop: nothing was tested"

echo "3. the same submission resumes iteration 2 to its end"
job3="$(submit_deploy_job "$DIR/config2.yaml" "$DIR/job3.out")" || fail "sbatch failed"
state="$(wait_job_ended "$job3")"
[[ "$state" == COMPLETED && "$(job_field "$job3" ExitCode)" == 0:0 ]] ||
  fail "job $job3 ended $state with exit code $(job_field "$job3" ExitCode), not COMPLETED with 0:0"
grep -q "workers exited with 0" "$DIR/job3.out" || fail "job $job3 did not finish"
[[ -f "$DIR/run/checkpoints/iter-3/model.txt" ]] || fail "no checkpoint iter-3"

echo "4. workers that fail end the job with their status"
unset COORD_ARGS
job4="$(SRLM_WORKER_BIN=/bin/false RUN_DIR="$DIR/run-false" submit_deploy_job "$DIR/config.yaml" "$DIR/job4.out")" ||
  fail "sbatch failed"
state="$(wait_job_ended "$job4")"
[[ "$state" == FAILED && "$(job_field "$job4" ExitCode)" == 1:0 ]] ||
  fail "job $job4 ended $state with exit code $(job_field "$job4" ExitCode), not FAILED with 1:0"
grep -q "workers exited with 1" "$DIR/job4.out" || fail "job $job4 did not say how its workers exited"
PASSED=1
echo PASS
