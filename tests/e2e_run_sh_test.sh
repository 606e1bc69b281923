#!/usr/bin/env bash
# deploy/mpirun/run.sh's own bookkeeping with real processes: the srlm-coordinator binary and scripted
# worker ranks (e2e_scripted_worker, which stops between units of work on SIGTERM/SIGUSR1 as
# `srlm-worker run` does) under real mpirun, mostly held in iteration 1's DPO training
# (E2E_TRAIN_DELAY_MS) so that the run does not end during the test, nor stop when asked to (a
# training checks the stop only when it ends). STOP_GRACE_SECONDS is 2 unless said otherwise.
#   0  an undisturbed run with a PORT: exit 0, pairs exported, coordinator.port holds that port, the
#      coordinator is stopped
#   1  without a PORT the coordinator takes a free one, and coordinator.port holds it; a second run.sh
#      on the live run's directory is refused and leaves that coordinator.port as it was (it used to
#      delete it before its coordinator was refused)
#   2  a second run, also without a PORT, beside the first on this host starts its workers (with the
#      fixed default port 50051 its coordinator exited "in use"); SIGTERM to it, its worker held in
#      training: run.sh ends the worker once STOP_GRACE_SECONDS are over ("did not stop within 2 s"),
#      exit 143 (it used to kill the worker at once)
#   3  the coordinator dies (kill -9), then SIGTERM to run.sh: exit 143 and "stopped by a signal"
#      (the EXIT trap's kill of the gone coordinator used to fail under set -e: exit 1)
#   4  SIGHUP, then SIGINT, to run.sh's whole process group (a terminal's hangup, Ctrl-C): exit 143;
#      the signal reaches only run.sh, which stops the workers (none is left when it exits), then the
#      coordinator ("signal 15: shutting down"). The coordinator used to be signalled by the group
#      too: a hangup killed it outright, Ctrl-C stopped it beside the workers; and mpirun, signalled
#      by the group and by run.sh, exited before its worker did.
#   5  STOP_GRACE_SECONDS=600 and a worker held in training: after a SIGTERM it still runs 3 s later
#      (asked, not killed: it used to die within a second), and a second SIGTERM ends it at once:
#      exit 143 within seconds
#   6  the graceful stop: 2 ranks, each in the middle of a GENERATE shard that lasts about 4 s
#      (E2E_GENERATE_DELAY_MS, longer than mpirun's 1 s from SIGTERM to SIGKILL); SIGTERM to run.sh:
#      both ranks finish and submit their shard and log `leaving: stop requested`, exit 143, no rank
#      left; the same command then resumes the run to its end (exit 0, pairs exported). run.sh used
#      to pass SIGTERM to mpirun, which killed the ranks mid-shard.
#   7  NP that is not a whole number >= 1 (abc, -1, 0): exit 2 with a message naming NP, before
#      anything starts (no run directory made). mpirun refused abc and -1 only after the coordinator
#      had started, and ran NP=0 as one rank per slot.
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

# GENERATE long enough to be stopped in (case 6): 2 ranks, one shard of 2 prompts each.
cp "$T/config.yaml" "$T/config-gen.yaml"
cat >>"$T/config-gen.yaml" <<YAML
generate:
  shard_size: 2
YAML

# start_run name [foreground]: run.sh on $T/name in the background; RUN_PID, COORD_PID. From the
# environment: PORT (default: none, the coordinator takes a free one), RANKS (1), GRACE (2, as
# STOP_GRACE_SECONDS), HOLD (mpirun flags; default: the worker is held in training), CONFIG_FILE.
start_run() {
  local name="$1" ranks="${RANKS:-1}"
  local launcher=(); [[ "${2:-}" == foreground ]] && launcher=("${AS_FOREGROUND[@]}")
  BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP="$ranks" PORT="${PORT:-}" COORD_HOST=127.0.0.1 \
    STOP_GRACE_SECONDS="${GRACE:-2}" MPIRUN_ARGS="${HOLD:--x E2E_TRAIN_DELAY_MS=600000}" \
    "${launcher[@]}" bash "$SRC/deploy/mpirun/run.sh" "${CONFIG_FILE:-$T/config.yaml}" "$T/$name" \
    >"$T/$name.log" 2>&1 &
  RUN_PID=$!; track_pid "$RUN_PID"
  local r
  for ((r = 0; r < ranks; r++)); do
    for _ in $(seq 600); do  # the worker rank is up (it writes its pid), so mpirun runs: at most 60 s
      [[ -s "$T/$name/pids/rank-$r.pid" ]] && break
      kill -0 "$RUN_PID" 2>/dev/null || fail "run.sh $name exited early"
      sleep 0.1
    done
    [[ -s "$T/$name/pids/rank-$r.pid" ]] || fail "worker rank $r of $name did not start within 60 s"
    track_pid "$(cat "$T/$name/pids/rank-$r.pid")"
  done
  COORD_PID="$(sed -n 's/.*coordinator pid \([0-9]*\) .*/\1/p' "$T/$name.log")"
  [[ -n "$COORD_PID" ]] || fail "run.sh $name did not log its coordinator's pid"
  track_pid "$COORD_PID"
}

worker_alive() {  # name: a worker rank of run $T/name still runs
  pgrep -f "$T/$1/checkpoints" >/dev/null
}

stop_run() {  # name expected_status: waits at most 30 s for run.sh, checks its status and leftovers
  local name="$1" expected="$2" rc=0
  for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh $name did not stop within 30 s"
  wait "$RUN_PID" || rc=$?
  [[ "$rc" == "$expected" ]] || fail "run.sh $name exited with status $rc, not $expected"
  grep -q "stopped by a signal" "$T/$name.log" || fail "run.sh $name did not say it was stopped"
  kill -0 "$COORD_PID" 2>/dev/null && fail "the coordinator of $name outlived run.sh"
  worker_alive "$name" && fail "a worker of $name outlived run.sh"
  true
}

log "0: an undisturbed run to the end with a PORT: 0"
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

log "1: without a PORT, a free one; a second run.sh on a live run is refused and leaves its coordinator.port"
start_run a
PORT_A="$(sed -n 's/^srlm-coordinator listening on port \([0-9]*\)$/\1/p' "$T/a/coordinator.log")"
[[ -n "$PORT_A" ]] || fail "the coordinator of a did not say which port it took"
[[ "$(cat "$T/a/coordinator.port")" == "$PORT_A" ]] || fail "coordinator.port of a does not hold $PORT_A"
grep -q "coordinator listening on 127.0.0.1:$PORT_A" "$T/a.log" || fail "run.sh a did not name the port it uses"
rc=0
BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP=1 \
  timeout 60 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/a" >"$T/a-second.log" 2>&1 || rc=$?
[[ "$rc" == 1 ]] || fail "the second run.sh exited with status $rc, not 1"
grep -q "is in use by another srlm-coordinator (pid $COORD_PID" "$T/a-second.log" ||
  fail "the second run.sh did not say why it stopped"
[[ -f "$T/a/coordinator.port" ]] || fail "the refused run.sh deleted the live run's coordinator.port"
[[ "$(cat "$T/a/coordinator.port")" == "$PORT_A" ]] || fail "the refused run.sh changed coordinator.port"
ls "$T/a"/coordinator.port.* >/dev/null 2>&1 && fail "the refused run.sh left a port file behind"
A_RUN_PID="$RUN_PID" A_COORD_PID="$COORD_PID"

log "2: a second run without a PORT beside it; SIGTERM, its worker held in training: ended after 2 s, 143"
start_run b
[[ "$(cat "$T/b/coordinator.port")" != "$PORT_A" ]] || fail "runs a and b listen on one port"
wait_for_line "$T/b.log" "DPO on" 30 "the worker of b did not start training"
kill -TERM "$RUN_PID"
stop_run b 143
grep -q "the workers did not stop within 2 s: ending the workers" "$T/b.log" ||
  fail "run.sh b did not end the workers after STOP_GRACE_SECONDS"

log "3: the coordinator dies (kill -9), then SIGTERM to run.sh: 143"
RUN_PID="$A_RUN_PID" COORD_PID="$A_COORD_PID"
kill -9 "$COORD_PID"
for _ in $(seq 100); do [[ -e "/proc/$COORD_PID" ]] || break; sleep 0.1; done  # run.sh reaped it
[[ -e "/proc/$COORD_PID" ]] && fail "run.sh did not reap its killed coordinator within 10 s"
kill -TERM "$RUN_PID"
stop_run a 143

for sig in HUP INT; do
  log "4: SIG$sig to run.sh's process group: 143, the workers stop, then the coordinator"
  start_run "$sig" foreground
  kill -"$sig" -- "-$RUN_PID"
  stop_run "$sig" 143
  grep -q "signal [12]: shutting down" "$T/$sig/coordinator.log" && fail "SIG$sig reached the coordinator"
  grep -q "signal 15: shutting down" "$T/$sig/coordinator.log" || fail "run.sh did not stop the coordinator"
  grep -q "\] stopped$" "$T/$sig/coordinator.log" || fail "the coordinator did not stop gracefully"
done

log "5: STOP_GRACE_SECONDS=600: the worker is asked, not killed; a second SIGTERM ends it at once"
GRACE=600 start_run c
wait_for_line "$T/c.log" "DPO on" 30 "the worker of c did not start training"
kill -TERM "$RUN_PID"
sleep 3
worker_alive c || fail "the worker of c did not outlive the first SIGTERM by 3 s: it was not given its grace period"
kill -0 "$RUN_PID" 2>/dev/null || fail "run.sh c exited on the first SIGTERM"
grep -q "asking the workers to stop" "$T/c.log" || fail "run.sh c did not say that it asked the workers to stop"
kill -TERM "$RUN_PID"
for _ in $(seq 100); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh c did not stop within 10 s of the second SIGTERM"
stop_run c 143
grep -q "another signal: ending the workers" "$T/c.log" || fail "run.sh c did not say why it ended the workers"

log "6: SIGTERM mid-GENERATE: both ranks finish their shard and leave; the same command resumes to the end"
RANKS=2 GRACE=60 HOLD="-x E2E_GENERATE_DELAY_MS=2000" CONFIG_FILE="$T/config-gen.yaml" start_run g
wait_for_line "$T/g/coordinator.log" "-> PHASE_GENERATE" 60 "run g did not reach GENERATE"
sleep 0.5  # both ranks hold a shard: 2 s to sample, 2 s to judge
grep -q "GENERATE shard" "$T/g.log" && fail "a GENERATE shard of g ended before the signal: nothing was tested"
kill -TERM "$RUN_PID"
stop_run g 143
[[ "$(grep -c "leaving: stop requested" "$T/g.log")" == 2 ]] || fail "the ranks of g did not both leave on the stop request"
[[ "$(grep -c "iteration 1 GENERATE shard" "$T/g.log")" == 2 ]] || fail "the ranks of g did not both finish their shard"
grep -q "duplicate submission" "$T/g.log" && fail "a shard of g was submitted twice"
rc=0
BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP=2 COORD_HOST=127.0.0.1 STOP_GRACE_SECONDS=2 \
  MPIRUN_ARGS="-x E2E_GENERATE_DELAY_MS=2000" \
  timeout 120 bash "$SRC/deploy/mpirun/run.sh" "$T/config-gen.yaml" "$T/g" >"$T/g-resume.log" 2>&1 || rc=$?
[[ "$rc" == 0 ]] || fail "the resumed run g exited with status $rc"
grep -q "run done; pairs in" "$T/g-resume.log" || fail "the resumed run g did not finish"
[[ -s "$T/g/pairs/iter-1.jsonl" ]] || fail "no pairs in $T/g/pairs/iter-1.jsonl"
grep -q "GENERATE shard" "$T/g-resume.log" && fail "the resumed run g generated again what was submitted"

log "7: NP not a whole number >= 1: exit 2 before anything starts"
for np in abc -1 0 1.5; do
  rc=0
  BUILD_DIR="$BUILD" WORKER_BIN="$WORKER_BIN" NP="$np" COORD_HOST=127.0.0.1 \
    timeout 60 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/np$np" >"$T/np$np.log" 2>&1 || rc=$?
  [[ "$rc" == 2 ]] || fail "run.sh with NP=$np exited with status $rc, not 2"
  grep -q "NP must be a whole number of worker ranks, 1 or more (got '$np')" "$T/np$np.log" ||
    fail "run.sh with NP=$np did not say what is wrong"
  [[ -e "$T/np$np" ]] && fail "run.sh with NP=$np made its run directory: it started"
done

PASSED=1
log PASS
