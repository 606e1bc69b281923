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
# Before anything starts: mpirun refused NP=abc or -1 only once the coordinator ran, and took NP=0
# as one rank per slot.
[[ "$NP" =~ ^[1-9][0-9]*$ ]] || { echo "NP must be a whole number of worker ranks, 1 or more (got '$NP')" >&2; exit 2; }
[[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || { echo "PORT must be a port number (or empty: a free one)" >&2; exit 2; }
# What this script shares with deploy/slurm/srlm.sbatch: the token, the coordinator's start and port
# file, the graceful stop of the workers. Found beside this script in the source tree (through a
# symbolic link to the script too).
LAUNCH_LIB="$(dirname "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")")/lib/launch.sh"  # deploy/lib/launch.sh
[[ -f "$LAUNCH_LIB" ]] || { echo "$LAUNCH_LIB is missing: run run.sh in an srlm source tree" >&2; exit 2; }
# shellcheck source-path=SCRIPTDIR source=../lib/launch.sh
source "$LAUNCH_LIB"
launch_name=mpirun
# Never fails: a message that cannot be written (a hung-up terminal) must not end the script under
# set -e, least of all inside a trap.
log() { echo "[run.sh $(date -u +%H:%M:%S)] $*" || true; }
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"  # absolute: checkpoint paths are stored in the run's state
launch_token  # SRLM_TOKEN, exported

# As root, OpenMPI needs explicit permission; more ranks than cores need --oversubscribe.
root_args=()
[[ "$(id -u)" == 0 ]] && root_args=(--allow-run-as-root)
host_args=(--oversubscribe)
[[ -n "$HOSTFILE" ]] && host_args=(--hostfile "$HOSTFILE")
# The coordinator and mpirun run in sessions of their own (setsid execs in place: $! is their PID),
# so a signal to this script's whole process group (a terminal's hangup or Ctrl-C, `timeout`) reaches
# only this script, which stops the workers, then the coordinator. Signalled by the group as well,
# the coordinator stopped beside the workers, and mpirun, signalled twice, killed the workers at once.

# Whenever the script exits, stop the coordinator (by its PID, if it still runs; set before it starts).
trap launch_stop_coordinator EXIT
# The coordinator; its port: RUN_DIR/coordinator.port (deploy/lib/launch.sh says how).
launch_coordinator "$CONFIG" setsid "$BUILD_DIR/coordinator/srlm-coordinator"
launch_coordinator_port || exit 1

log "starting $NP worker ranks"
# A SIGTERM/SIGINT/SIGHUP to this script asks the workers to stop: SIGUSR1 to mpirun, which passes
# it on to every rank as it is; if mpirun still runs STOP_GRACE_SECONDS later, or at a second signal,
# the workers are ended: SIGTERM to mpirun, which passes it on and SIGKILLs the ranks about a second
# later (deploy/lib/launch.sh). Then the EXIT trap stops the coordinator. mpirun runs in the
# background so that the signal reaches this script at once; without that, killing run.sh orphaned
# mpirun and the workers. The trap is set before mpirun starts (a signal before it starts: it does
# not start).
trap 'launch_stop_workers signal "another signal"' TERM INT HUP
# shellcheck disable=SC2086
launch_workers setsid mpirun "${root_args[@]}" "${host_args[@]}" -np "$NP" -x OMP_NUM_THREADS="$THREADS" \
  -x SRLM_TOKEN $MPIRUN_ARGS "$WORKER_BIN" run --coordinator "$COORD_HOST:$PORT" \
  --checkpoint-root "$RUN_DIR/checkpoints" $WORKER_ARGS
workers_rc=$launch_rc
trap - TERM INT HUP
if [[ "$launch_state" != running ]]; then
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
# coordinator still answers (srlmctl export-pairs; the JSONL of docs/DESIGN), replacing those of an
# earlier finish (--force: a run given more iterations finishes again).
SRLMCTL=("$BUILD_DIR/coordinator/ctl/srlmctl" --coordinator "127.0.0.1:$PORT")
status_json="$("${SRLMCTL[@]}" status --json 2>/dev/null || true)"
if grep -q '"phase": *"DONE"' <<<"$status_json"; then
  total="$(sed -n 's/.*"total_iterations": *"\{0,1\}\([0-9]*\).*/\1/p' <<<"$status_json")"
  mkdir -p "$RUN_DIR/pairs"
  for ((t = 1; t <= ${total:-0}; t++)); do
    "${SRLMCTL[@]}" export-pairs --iteration "$t" --force --output "$RUN_DIR/pairs/iter-$t.jsonl" ||
      log "export of iteration $t's pairs failed"
  done
  log "run done; pairs in $RUN_DIR/pairs/"
fi
