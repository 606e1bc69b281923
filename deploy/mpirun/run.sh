#!/usr/bin/env bash
# Runs srlm with mpirun: the coordinator on this host, NP worker ranks under mpirun (one per GPU or
# CPU slot). Re-running with the same RUN_DIR resumes the run where it stopped (the coordinator keeps
# its state in RUN_DIR/state.db). Stops the coordinator it started, by PID, when the workers exit.
#   deploy/mpirun/run.sh CONFIG.yaml [RUN_DIR]
# Every line marked "# user:" may be changed, here or through the environment.
set -euo pipefail

CONFIG="${1:?usage: run.sh CONFIG.yaml [RUN_DIR]}"
RUN_DIR="${2:-${RUN_DIR:-runs/srlm}}"                      # user: run directory (state, pairs, checkpoints)
BUILD_DIR="${BUILD_DIR:-build}"                            # user: where srlm was built
NP="${NP:-2}"                                              # user: worker ranks (one per GPU, or CPU slots)
HOSTFILE="${HOSTFILE:-}"                                   # user: mpirun hostfile for several nodes (empty: this host)
PORT="${PORT:-50051}"                                      # user: coordinator port (a fixed one: workers are told it)
COORD_HOST="${COORD_HOST:-$(hostname)}"                    # user: name the workers reach the coordinator by
MPIRUN_ARGS="${MPIRUN_ARGS:-}"                             # user: extra mpirun flags (e.g. --bind-to none)
COORD_ARGS="${COORD_ARGS:-}"                               # user: extra srlm-coordinator flags (e.g. --force-config)
WORKER_ARGS="${WORKER_ARGS:-}"                             # user: extra `srlm-worker run` flags (e.g. --stall-seconds 3600)
THREADS="${THREADS:-1}"                                    # user: intra-op threads per worker (OMP_NUM_THREADS)
WORKER_BIN="${WORKER_BIN:-$BUILD_DIR/worker/srlm-worker}"  # user: the worker binary (or a wrapper)

mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"  # absolute: checkpoint paths are stored in the run's state
# The bearer token every RPC carries: $SRLM_TOKEN, else one made once per run directory.
if [[ -z "${SRLM_TOKEN:-}" ]]; then
  [[ -s "$RUN_DIR/token" ]] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/token")
  SRLM_TOKEN="$(cat "$RUN_DIR/token")"
fi
export SRLM_TOKEN
# Never fails: a message that cannot be written (a hung-up terminal) must not end the script under
# set -e, least of all inside a trap.
log() { echo "[run.sh $(date -u +%H:%M:%S)] $*" || true; }

# As root, OpenMPI needs explicit permission; more ranks than cores need --oversubscribe.
root_args=()
[[ "$(id -u)" == 0 ]] && root_args=(--allow-run-as-root)
host_args=(--oversubscribe)
[[ -n "$HOSTFILE" ]] && host_args=(--hostfile "$HOSTFILE")
# The coordinator and mpirun run in sessions of their own (setsid execs in place: $! is their PID),
# so a signal to this script's whole process group (a terminal's hangup or Ctrl-C, `timeout`) reaches
# only this script, which stops the workers, then the coordinator. Signalled by the group as well,
# the coordinator stopped beside the workers, and mpirun, signalled twice, killed the workers at once.

# The coordinator writes its port to a file of this script's own once it holds the run directory's
# lock and listens; only then does that file become RUN_DIR/coordinator.port. A coordinator refused
# because another one serves the run thus leaves the live run's coordinator.port as it is.
NEW_PORT_FILE="$RUN_DIR/coordinator.port.$$"
rm -f "$NEW_PORT_FILE"
# shellcheck disable=SC2086
setsid "$BUILD_DIR/coordinator/srlm-coordinator" --run-dir "$RUN_DIR" --listen "0.0.0.0:$PORT" \
  --config "$CONFIG" --port-file "$NEW_PORT_FILE" $COORD_ARGS >>"$RUN_DIR/coordinator.log" 2>&1 &
COORD_PID=$!
# Every command here tolerates failure (the coordinator may be gone already): under set -e a failing
# one would end the trap and replace the script's exit status (143, 75, ...) with its own.
trap 'kill "$COORD_PID" 2>/dev/null || true; wait "$COORD_PID" 2>/dev/null || true
      rm -f "$NEW_PORT_FILE" "$NEW_PORT_FILE.tmp" 2>/dev/null || true' EXIT
log "coordinator pid $COORD_PID on $COORD_HOST:$PORT (log $RUN_DIR/coordinator.log)"

# Wait until this coordinator listens (it writes the port file only then), at most 60 s. Not a
# status call: another coordinator already on the port would answer it, while this one exits
# ("in use" or "cannot listen").
for _ in $(seq 300); do
  [[ -s "$NEW_PORT_FILE" ]] && break
  kill -0 "$COORD_PID" 2>/dev/null || { log "coordinator exited:"; tail -3 "$RUN_DIR/coordinator.log"; exit 1; }
  sleep 0.2
done
[[ -s "$NEW_PORT_FILE" ]] || { log "coordinator did not listen within 60 s"; exit 1; }
mv -f "$NEW_PORT_FILE" "$RUN_DIR/coordinator.port"

log "starting $NP worker ranks"
# A SIGTERM/SIGINT/SIGHUP to this script stops mpirun, which forwards SIGTERM to the workers (they
# stop between units of work); then the EXIT trap stops the coordinator. mpirun runs in the
# background so that the signal reaches this script at once (bash runs traps only after a foreground
# child exits); without that, killing run.sh orphaned mpirun and the workers. The trap is set before
# mpirun starts: a signal that comes before its PID is known is acted on just after.
signalled=0
MPIRUN_PID=
stop_workers() {
  signalled=1
  log "signal: stopping the workers"
  if [[ -n "$MPIRUN_PID" ]]; then kill -TERM "$MPIRUN_PID" 2>/dev/null || true; fi
}
trap stop_workers TERM INT HUP
# shellcheck disable=SC2086
setsid mpirun "${root_args[@]}" "${host_args[@]}" -np "$NP" -x OMP_NUM_THREADS="$THREADS" -x SRLM_TOKEN \
  $MPIRUN_ARGS "$WORKER_BIN" run --coordinator "$COORD_HOST:$PORT" --checkpoint-root "$RUN_DIR/checkpoints" \
  $WORKER_ARGS &
MPIRUN_PID=$!
if [[ "$signalled" == 1 ]]; then kill -TERM "$MPIRUN_PID" 2>/dev/null || true; fi
workers_rc=0
wait "$MPIRUN_PID" || workers_rc=$?
while kill -0 "$MPIRUN_PID" 2>/dev/null; do  # a trapped signal ended the wait early
  workers_rc=0
  wait "$MPIRUN_PID" || workers_rc=$?
done
trap - TERM INT HUP
if [[ "$signalled" == 1 ]]; then
  log "stopped by a signal; run this again with the same RUN_DIR to resume"
  exit 143
fi
if [[ "$workers_rc" == 75 ]]; then
  log "a worker rank stalled (its log says where) and ended the job; run this again with the same RUN_DIR to resume"
  exit 75
fi
if [[ "$workers_rc" != 0 ]]; then
  log "workers exited with status $workers_rc"
  exit "$workers_rc"
fi
log "workers finished"

# A finished run: write every iteration's pairs to RUN_DIR/pairs/iter-<t>.jsonl while the
# coordinator still answers (srlmctl export-pairs; the JSONL of docs/DESIGN).
SRLMCTL=("$BUILD_DIR/coordinator/ctl/srlmctl" --coordinator "127.0.0.1:$PORT")
status_json="$("${SRLMCTL[@]}" status --json 2>/dev/null || true)"
if grep -q '"phase": *"DONE"' <<<"$status_json"; then
  total="$(sed -n 's/.*"total_iterations": *"\{0,1\}\([0-9]*\).*/\1/p' <<<"$status_json")"
  mkdir -p "$RUN_DIR/pairs"
  for ((t = 1; t <= ${total:-0}; t++)); do
    "${SRLMCTL[@]}" export-pairs --iteration "$t" --output "$RUN_DIR/pairs/iter-$t.jsonl" ||
      log "export of iteration $t's pairs failed"
  done
  log "run done; pairs in $RUN_DIR/pairs/"
fi
