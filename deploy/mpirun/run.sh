#!/usr/bin/env bash
# Runs srlm with mpirun: the coordinator on this host, NP worker ranks under mpirun (one per GPU or
# CPU slot). Re-running with the same RUN_DIR resumes the run where it stopped (the coordinator keeps
# its state in RUN_DIR/state.db). Stops the coordinator it started, by PID, when the workers exit.
# SIGTERM, SIGINT (Ctrl-C) or SIGHUP stops the workers gracefully: they finish and submit the unit of
# work in hand, then leave; after STOP_GRACE_SECONDS (or at a second signal) they are ended.
#   deploy/mpirun/run.sh CONFIG.yaml [RUN_DIR]
# Every line marked "# user:" may be changed, here or through the environment.
set -euo pipefail

CONFIG="${1:?usage: run.sh CONFIG.yaml [RUN_DIR]}"
RUN_DIR="${2:-${RUN_DIR:-runs/srlm}}"                      # user: run directory (state, pairs, checkpoints)
BUILD_DIR="${BUILD_DIR:-build}"                            # user: where srlm was built
NP="${NP:-2}"                                              # user: worker ranks (one per GPU, or CPU slots)
HOSTFILE="${HOSTFILE:-}"                                   # user: mpirun hostfile for several nodes (empty: this host)
PORT="${PORT:-}"                                           # user: coordinator port (empty: a free one, chosen by the coordinator)
COORD_HOST="${COORD_HOST:-$(hostname)}"                    # user: name the workers reach the coordinator by
MPIRUN_ARGS="${MPIRUN_ARGS:-}"                             # user: extra mpirun flags (e.g. --bind-to none)
COORD_ARGS="${COORD_ARGS:-}"                               # user: extra srlm-coordinator flags (e.g. --force-config)
WORKER_ARGS="${WORKER_ARGS:-}"                             # user: extra `srlm-worker run` flags (e.g. --stall-seconds 3600)
THREADS="${THREADS:-1}"                                    # user: intra-op threads per worker (OMP_NUM_THREADS)
WORKER_BIN="${WORKER_BIN:-$BUILD_DIR/worker/srlm-worker}"  # user: the worker binary (or a wrapper)
STOP_GRACE_SECONDS="${STOP_GRACE_SECONDS:-60}"             # user: after a stop signal, seconds the workers get to
                                                           # finish their unit of work before they are ended

[[ "$STOP_GRACE_SECONDS" =~ ^[0-9]+$ ]] || { echo "STOP_GRACE_SECONDS must be a whole number of seconds" >&2; exit 2; }
[[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || { echo "PORT must be a port number (or empty: a free one)" >&2; exit 2; }
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
# because another one serves the run thus leaves the live run's coordinator.port as it is. Without a
# PORT it listens on port 0, i.e. one the system picks free, and the workers are told the port it
# wrote: two runs on one host never collide (a fixed default did: the second one's coordinator
# exited "in use").
NEW_PORT_FILE="$RUN_DIR/coordinator.port.$$"
rm -f "$NEW_PORT_FILE"
# shellcheck disable=SC2086
setsid "$BUILD_DIR/coordinator/srlm-coordinator" --run-dir "$RUN_DIR" --listen "0.0.0.0:${PORT:-0}" \
  --config "$CONFIG" --port-file "$NEW_PORT_FILE" $COORD_ARGS >>"$RUN_DIR/coordinator.log" 2>&1 &
COORD_PID=$!
# Every command here tolerates failure (the coordinator may be gone already): under set -e a failing
# one would end the trap and replace the script's exit status (143, 75, ...) with its own.
trap 'kill "$COORD_PID" 2>/dev/null || true; wait "$COORD_PID" 2>/dev/null || true
      rm -f "$NEW_PORT_FILE" "$NEW_PORT_FILE.tmp" 2>/dev/null || true' EXIT
log "coordinator pid $COORD_PID (log $RUN_DIR/coordinator.log)"

# Wait until this coordinator listens (it writes the port file only then), at most 60 s. Not a
# status call: another coordinator already on the port would answer it, while this one exits
# ("in use" or "cannot listen").
for _ in $(seq 300); do
  [[ -s "$NEW_PORT_FILE" ]] && break
  kill -0 "$COORD_PID" 2>/dev/null || { log "coordinator exited:"; tail -3 "$RUN_DIR/coordinator.log"; exit 1; }
  sleep 0.2
done
[[ -s "$NEW_PORT_FILE" ]] || { log "coordinator did not listen within 60 s"; exit 1; }
PORT="$(cat "$NEW_PORT_FILE")"
mv -f "$NEW_PORT_FILE" "$RUN_DIR/coordinator.port"
log "coordinator listening on $COORD_HOST:$PORT"

log "starting $NP worker ranks"
# A SIGTERM/SIGINT/SIGHUP to this script asks the workers to stop: SIGUSR1 to mpirun, which passes it
# on to every rank as it is; a rank finishes and submits the unit of work in hand (a shard; a whole
# training, which checks the flag only when it ends), then leaves (`leaving: stop requested`). If
# mpirun still runs STOP_GRACE_SECONDS later, or at a second signal, the workers are ended: SIGTERM
# to mpirun, which passes it on and SIGKILLs the ranks about a second later (Open MPI's
# odls_base_sigkill_timeout); work in hand is lost and redone after the resume. SIGTERM was sent at
# once before: the ranks died mid-shard and the stop handshake never ran. Then the EXIT trap stops
# the coordinator. mpirun runs in the background so that the signal reaches this script at once
# (bash runs traps only after a foreground child exits); without that, killing run.sh orphaned
# mpirun and the workers. The trap is set before mpirun starts: a signal that comes before its PID
# is known is acted on just after (one before mpirun starts: it does not start).
stop_state=running  # running, asked (SIGUSR1 sent; ended after stop_deadline) or ended (SIGTERM sent)
stop_deadline=0
MPIRUN_PID=
end_workers() {
  log "$1: ending the workers (SIGTERM to mpirun)"
  stop_state=ended
  if [[ -n "$MPIRUN_PID" ]]; then kill -TERM "$MPIRUN_PID" 2>/dev/null || true; fi
}
stop_workers() {
  if [[ "$stop_state" != running ]]; then end_workers "another signal"; return; fi
  stop_state=asked
  stop_deadline=$((SECONDS + STOP_GRACE_SECONDS + 1))  # SECONDS counts whole seconds: at least the grace
  log "signal: asking the workers to stop after their unit of work (SIGUSR1 to mpirun); they are ended" \
    "in $STOP_GRACE_SECONDS s (STOP_GRACE_SECONDS) or at another signal"
  if [[ -n "$MPIRUN_PID" ]]; then kill -USR1 "$MPIRUN_PID" 2>/dev/null || true; fi
}
trap stop_workers TERM INT HUP
workers_rc=0
if [[ "$stop_state" == running ]]; then  # else a signal came before the workers started: none start
  # shellcheck disable=SC2086
  setsid mpirun "${root_args[@]}" "${host_args[@]}" -np "$NP" -x OMP_NUM_THREADS="$THREADS" -x SRLM_TOKEN \
    $MPIRUN_ARGS "$WORKER_BIN" run --coordinator "$COORD_HOST:$PORT" --checkpoint-root "$RUN_DIR/checkpoints" \
    $WORKER_ARGS &
  MPIRUN_PID=$!
  case "$stop_state" in  # a signal that came before MPIRUN_PID was set
    asked) kill -USR1 "$MPIRUN_PID" 2>/dev/null || true ;;
    ended) kill -TERM "$MPIRUN_PID" 2>/dev/null || true ;;
  esac
  wait "$MPIRUN_PID" || workers_rc=$?
  # A trapped signal ended the wait early: wait again. While the workers are asked to stop, look
  # every half second whether mpirun has exited (then collect its status) or the grace period is over.
  while kill -0 "$MPIRUN_PID" 2>/dev/null; do
    if [[ "$stop_state" == asked ]]; then
      if ((SECONDS >= stop_deadline)); then
        end_workers "the workers did not stop within $STOP_GRACE_SECONDS s"
        continue
      fi
      sleep 0.5
      if ! kill -0 "$MPIRUN_PID" 2>/dev/null; then workers_rc=0; wait "$MPIRUN_PID" || workers_rc=$?; fi
      continue
    fi
    workers_rc=0
    wait "$MPIRUN_PID" || workers_rc=$?
  done
fi
trap - TERM INT HUP
if [[ "$stop_state" != running ]]; then
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
