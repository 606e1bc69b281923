#!/usr/bin/env bash
# deploy/mpirun/run.sh's own bookkeeping with real processes: the srlm-coordinator binary and one
# scripted worker rank (e2e_scripted_worker) under real mpirun, held in training
# (E2E_TRAIN_DELAY_MS) so that the run does not end during the test (except in 0).
#   0  an undisturbed run: exit 0, pairs exported, coordinator.port holds the port, the coordinator
#      is stopped
#   1  a second run.sh on the live run's directory is refused and leaves the live run's
#      coordinator.port as it was (it used to delete it before its coordinator was refused)
#   2  the coordinator dies (kill -9), then SIGTERM to run.sh: exit 143 and "stopped by a signal"
#      (the EXIT trap's kill of the gone coordinator used to fail under set -e: exit 1)
#   3  SIGHUP, then SIGINT, to run.sh's whole process group (a terminal's hangup, Ctrl-C): exit 143;
#      the signal reaches only run.sh, which stops the workers (none is left when it exits), then the
#      coordinator ("signal 15: shutting down"). The coordinator used to be signalled by the group
#      too: a hangup killed it outright, Ctrl-C stopped it beside the workers; and mpirun, signalled
#      by the group and by run.sh, exited before its worker did.
# No worker or coordinator outlives its run.sh.
#   usage: e2e_run_sh_test.sh BUILD_DIR E2E_SCRIPTED_WORKER SOURCE_DIR
set -euo pipefail
BUILD="$1"; WORKER_BIN="$2"; SRC="$3"
T="$(mktemp -d /tmp/srlm-run-sh-XXXXXX)"
export SRLM_TOKEN="run-sh-test-token"
source "$SRC/tests/test_lib.sh"
# Kills what the test started, by PID: each run.sh, its coordinator and its worker rank (mpirun
# ends with its rank); removes the folder when the test passed, keeps it for its logs otherwise.
clean_up_on_exit "$T"
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log "$T"/*/coordinator.log; do echo "== $f"; tail -25 "$f"; done >&2; exit 1; }
log() { echo "[run.sh test $(date -u +%H:%M:%S)] $*"; }

cat >"$T/config.yaml" <<YAML
model:
  path: "$T/m0"
data:
  ift: "$SRC/deploy/demo/data/ift.jsonl"
  eft: "$SRC/deploy/demo/data/eft.jsonl"
run:
  iterations: 1
prompts:
  per_iteration: 4
  shard_size: 4
judge:
  template_file: "$SRC/deploy/demo/judge_template.txt"
YAML

# Starts a command as a terminal's foreground job would be: a session and process group of its own,
# and SIGINT and SIGPIPE at their defaults (a script's background job starts with SIGINT ignored,
# which bash then cannot trap; Python ignores SIGPIPE). It execs in place: $! is the command's PID.
AS_FOREGROUND=(python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ): signal.signal(s, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])')

start_run() {  # name port [foreground]: run.sh on $T/name in the background; RUN_PID, COORD_PID
  local name="$1" port="$2"
  local launcher=(); [[ "${3:-}" == foreground ]] && launcher=("${AS_FOREGROUND[@]}")
  BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP=1 PORT="$port" COORD_HOST=127.0.0.1 \
    MPIRUN_ARGS="-x E2E_TRAIN_DELAY_MS=600000" \
    "${launcher[@]}" bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/$name" >"$T/$name.log" 2>&1 &
  RUN_PID=$!; PIDS+=("$RUN_PID")
  for _ in $(seq 600); do  # the worker rank is up (it writes its pid), so mpirun runs: at most 60 s
    [[ -s "$T/$name/pids/rank-0.pid" ]] && break
    kill -0 "$RUN_PID" 2>/dev/null || fail "run.sh $name exited early"
    sleep 0.1
  done
  [[ -s "$T/$name/pids/rank-0.pid" ]] || fail "the worker of $name did not start within 60 s"
  COORD_PID="$(sed -n 's/.*coordinator pid \([0-9]*\) .*/\1/p' "$T/$name.log")"
  [[ -n "$COORD_PID" ]] || fail "run.sh $name did not log its coordinator's pid"
  PIDS+=("$COORD_PID" "$(cat "$T/$name/pids/rank-0.pid")")
}

stop_run() {  # name expected_status: waits at most 30 s for run.sh, checks its status and leftovers
  local name="$1" expected="$2" rc=0
  for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh $name did not stop within 30 s"
  wait "$RUN_PID" || rc=$?
  [[ "$rc" == "$expected" ]] || fail "run.sh $name exited with status $rc, not $expected"
  grep -q "stopped by a signal" "$T/$name.log" || fail "run.sh $name did not say it was stopped"
  kill -0 "$COORD_PID" 2>/dev/null && fail "the coordinator of $name outlived run.sh"
  pgrep -f "$T/$name/checkpoints" >/dev/null && fail "a worker of $name outlived run.sh"
  true
}

log "0: an undisturbed run to the end: 0"
PORT0="$(free_port)"
rc=0
BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP=1 PORT="$PORT0" COORD_HOST=127.0.0.1 \
  timeout 120 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/done" >"$T/done.log" 2>&1 || rc=$?
[[ "$rc" == 0 ]] || fail "an undisturbed run.sh exited with status $rc"
grep -q "run done; pairs in" "$T/done.log" || fail "run.sh did not export the pairs"
[[ -s "$T/done/pairs/iter-1.jsonl" ]] || fail "no pairs in $T/done/pairs/iter-1.jsonl"
[[ "$(cat "$T/done/coordinator.port")" == "$PORT0" ]] || fail "coordinator.port does not hold $PORT0"
ls "$T/done"/coordinator.port.* >/dev/null 2>&1 && fail "run.sh left its own port file behind"
pid="$(sed -n 's/.*coordinator pid \([0-9]*\) .*/\1/p' "$T/done.log")"
[[ -n "$pid" ]] || fail "run.sh did not log its coordinator's pid"
kill -0 "$pid" 2>/dev/null && fail "the coordinator outlived run.sh"
grep -q "signal 15: shutting down" "$T/done/coordinator.log" || fail "run.sh did not stop the coordinator"

log "1: a second run.sh on a live run is refused and leaves its coordinator.port"
PORT1="$(free_port)"
start_run a "$PORT1"
[[ "$(cat "$T/a/coordinator.port")" == "$PORT1" ]] || fail "coordinator.port of a does not hold $PORT1"
rc=0
BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP=1 PORT="$(free_port)" \
  timeout 60 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/a" >"$T/a-second.log" 2>&1 || rc=$?
[[ "$rc" == 1 ]] || fail "the second run.sh exited with status $rc, not 1"
grep -q "is in use by another srlm-coordinator (pid $COORD_PID" "$T/a-second.log" ||
  fail "the second run.sh did not say why it stopped"
[[ -f "$T/a/coordinator.port" ]] || fail "the refused run.sh deleted the live run's coordinator.port"
[[ "$(cat "$T/a/coordinator.port")" == "$PORT1" ]] || fail "the refused run.sh changed coordinator.port"
ls "$T/a"/coordinator.port.* >/dev/null 2>&1 && fail "the refused run.sh left a port file behind"

log "2: the coordinator dies (kill -9), then SIGTERM to run.sh: 143"
kill -9 "$COORD_PID"
for _ in $(seq 100); do [[ -e "/proc/$COORD_PID" ]] || break; sleep 0.1; done  # run.sh reaped it
[[ -e "/proc/$COORD_PID" ]] && fail "run.sh did not reap its killed coordinator within 10 s"
kill -TERM "$RUN_PID"
stop_run a 143

for sig in HUP INT; do
  log "3: SIG$sig to run.sh's process group: 143, the workers stop, then the coordinator"
  start_run "$sig" "$(free_port)" foreground
  kill -"$sig" -- "-$RUN_PID"
  stop_run "$sig" 143
  grep -q "signal [12]: shutting down" "$T/$sig/coordinator.log" && fail "SIG$sig reached the coordinator"
  grep -q "signal 15: shutting down" "$T/$sig/coordinator.log" || fail "run.sh did not stop the coordinator"
  grep -q "\] stopped$" "$T/$sig/coordinator.log" || fail "the coordinator did not stop gracefully"
done

PASSED=1
log PASS
