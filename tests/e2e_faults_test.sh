#!/usr/bin/env bash
# Fault tolerance of the loop's protocol with real processes: the srlm-coordinator binary, two worker
# ranks under real mpirun (the real worker loop and gRPC client; the scripted backend stands in for
# the neural model), SFT + 1 self-rewarding iteration. Three runs with the same seeds:
#   A  undisturbed
#   B  kill -9 of worker rank 1 during GENERATE (mpirun then ends the job), relaunch of both ranks
#   C  coordinator kill -9 + restart during GENERATE, and again during TRAIN (workers retry)
# B and C must finish with exactly A's pairs: no prompt lost, no pair twice, same content.
#   usage: e2e_faults_test.sh SRLM_COORDINATOR E2E_SCRIPTED_WORKER SOURCE_DIR
set -euo pipefail
COORD_BIN="$1"; WORKER_BIN="$2"; SRC="$3"
T="$(mktemp -d /tmp/srlm-faults-XXXXXX)"
export SRLM_TOKEN="faults-test-token"
source "$SRC/tests/test_lib.sh"
# Kills what the test started; removes the folder when the test passed, keeps it for its logs otherwise.
clean_up_on_exit "$T"
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do echo "== $f"; tail -25 "$f"; done >&2; exit 1; }
log() { echo "[faults $(date -u +%H:%M:%S)] $*"; }

cat >"$T/config.yaml" <<YAML
model:
  path: "$T/m0"
data:
  ift: "$SRC/deploy/demo/data/ift.jsonl"
  eft: "$SRC/deploy/demo/data/eft.jsonl"
run:
  iterations: 1
  seed: 77
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

root_args=(); [[ "$(id -u)" == 0 ]] && root_args=(--allow-run-as-root)

start_coordinator() {  # run_name [port]
  local run="$1" port="${2:-0}"
  rm -f "$T/$run.port"
  "$COORD_BIN" --run-dir "$T/$run" --listen "127.0.0.1:$port" --port-file "$T/$run.port" \
    --config "$T/config.yaml" >>"$T/$run.coordinator.log" 2>&1 &
  COORD_PID=$!; track_pid "$COORD_PID"
  for _ in $(seq 100); do [[ -s "$T/$run.port" ]] && break; sleep 0.1; done
  [[ -s "$T/$run.port" ]] || fail "coordinator of $run did not start"
  PORT="$(cat "$T/$run.port")"
}

start_workers() {  # run_name
  local run="$1"
  mpirun "${root_args[@]}" --oversubscribe -np 2 -x SRLM_TOKEN "$WORKER_BIN" \
    --coordinator "127.0.0.1:$PORT" --checkpoint-root "$T/$run/checkpoints" \
    --generate-delay-ms 150 --train-delay-ms 2500 --export-pairs "$T/$run.pairs.jsonl" \
    >>"$T/$run.workers.log" 2>&1 &
  MPI_PID=$!; track_pid "$MPI_PID"
}

finish_run() {  # run_name
  wait "$MPI_PID" || fail "workers of $1 failed"
  kill "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
  [[ -s "$T/$1.pairs.jsonl" ]] || fail "$1 exported no pairs"
  for i in 1 2; do [[ -f "$T/$1/checkpoints/iter-$i/model.txt" ]] || fail "$1 lacks checkpoint iter-$i"; done
}

log "A: undisturbed"
start_coordinator A; start_workers A; finish_run A

log "B: kill -9 of worker rank 1 during GENERATE, relaunch"
start_coordinator B; start_workers B
wait_for_line "$T/B.workers.log" "GENERATE shard" 60
kill -9 "$(cat "$T/B/pids/rank-1.pid")"
log "B: killed rank 1; waiting for mpirun to end the job"
wait "$MPI_PID" && fail "mpirun should fail after a rank was killed" || true
grep -q "run done" "$T/B.workers.log" && fail "B finished before the kill: nothing was tested"
start_workers B; finish_run B

log "C: coordinator kill -9 + restart during GENERATE and during TRAIN"
start_coordinator C; start_workers C
wait_for_line "$T/C.workers.log" "GENERATE shard" 60
kill -9 "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
log "C: coordinator killed in GENERATE"; sleep 1
start_coordinator C "$PORT"
wait_for_line "$T/C.workers.log" "DPO on" 60
kill -9 "$COORD_PID"; wait "$COORD_PID" 2>/dev/null || true
log "C: coordinator killed in TRAIN"; sleep 1
start_coordinator C "$PORT"
finish_run C

python3 - "$T" <<'PY'
import json, sys
T = sys.argv[1]
def load(run):
    rows = [json.loads(l) for l in open(f"{T}/{run}.pairs.jsonl")]
    ids = [r["prompt_id"] for r in rows]
    assert len(ids) == len(set(ids)), f"{run}: a prompt has two pairs"
    return sorted((r["prompt"], r["chosen"], r["rejected"], r["chosen_score"], r["rejected_score"]) for r in rows)
a, b, c = load("A"), load("B"), load("C")
print(f"pairs: A {len(a)}, B {len(b)}, C {len(c)}")
assert len(a) > 0
assert b == a, "B's pairs differ from the undisturbed run"
assert c == a, "C's pairs differ from the undisturbed run"
for p, chosen, rejected, cs, rs in a:
    word = p.rsplit(" ", 1)[1]
    assert chosen == word[::-1] and rejected == word and cs == 5 and rs == 1, (p, chosen, rejected)
PY
grep -q "released" "$T/B.coordinator.log" && log "B: coordinator released the killed rank's leases"
PASSED=1
log PASS
