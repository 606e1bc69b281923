# shellcheck shell=bash disable=SC2034  # the launch_* variables are read by the sourcing scripts
# What deploy/mpirun/run.sh and deploy/slurm/srlm.sbatch share: sourced by them, not run. It only
# defines the functions below (and their state, launch_*); the sourcing script calls them.
#   launch_token                  SRLM_TOKEN: $SRLM_TOKEN, else RUN_DIR/token (made once, umask 077); exported
#   launch_coordinator CONFIG COMMAND...
#                                 starts COMMAND (the srlm-coordinator binary, after a wrapper such as
#                                 setsid if any) in the background with --run-dir, --listen, --config,
#                                 --port-file and $COORD_ARGS, its output appended to
#                                 RUN_DIR/coordinator.log; sets COORD_PID and NEW_PORT_FILE
#   launch_coordinator_port       waits (at most 60 s) until that coordinator listens, then makes its
#                                 port file RUN_DIR/coordinator.port and sets PORT; returns 1 (having
#                                 said why) if it exited or did not listen in time
#   launch_stop_coordinator       stops that coordinator (SIGTERM) if it still runs, waits for it and
#                                 removes its own port file; never fails (an EXIT trap may call it)
#   launch_stop_workers WHY [WHY_AGAIN]
#                                 for a trap: the first call asks the workers to stop (SIGUSR1 to the
#                                 launcher) and ends them STOP_GRACE_SECONDS later; a second call
#                                 ends them at once (SIGTERM to the launcher). WHY and WHY_AGAIN
#                                 (default "WHY again") name the signal in the messages
#   launch_workers COMMAND...     starts COMMAND (the launcher: mpirun, srun) in the background unless
#                                 a stop came first, and waits for it, also through the stop above;
#                                 its exit status in launch_rc (0 if it did not start)
#   launch_running PID            PID is a background child of this shell that bash has not reaped
# and sets, besides PORT, COORD_PID and NEW_PORT_FILE above:
#   launch_state                  running, asked (SIGUSR1 sent) or ended (SIGTERM sent): anything but
#                                 running means that a stop signal came
#   launch_rc                     the launcher's exit status
# The sourcing script must define, before it calls them:
#   launch_name                   the launcher's name in the messages (mpirun, srun); set after sourcing
#   log MSG...                    prints a line; must not fail (`|| true`: it may run in a trap)
#   RUN_DIR                       the run directory, absolute, existing
#   COORD_HOST, PORT, COORD_ARGS  the coordinator's host for the workers, its port (empty: a free one)
#                                 and extra flags (split at white space)
#   STOP_GRACE_SECONDS            a whole number of seconds (checked by the script)
# Every function is safe under `set -euo pipefail` (what may fail ends with `|| true` or is tested)
# and under plain `set -uo pipefail`.
#
# PIDs: a child that has exited is reaped by bash at once (waitpid on SIGCHLD), and from then on the
# system may give its PID to another process; bash keeps the child's exit status for `wait PID`. So
# `kill -0 PID` or a kill of a reaped child could reach an unrelated process (pid_max is often
# 32768, and a run lasts days): the functions here poll and signal a child only while
# launch_running says bash has not reaped it, and collect its status with `wait`.

launch_running() {  # PID
  local p
  # stderr: the subshell of $(...) would say again that a job was killed by a signal
  for p in $(jobs -rp 2>/dev/null); do [[ "$p" == "$1" ]] && return 0; done
  return 1
}

# The bearer token every RPC carries: $SRLM_TOKEN, else one made once per run directory (the
# launchers pass the environment on to the workers).
launch_token() {
  if [[ -z "${SRLM_TOKEN:-}" ]]; then
    [[ -s "$RUN_DIR/token" ]] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/token")
    SRLM_TOKEN="$(cat "$RUN_DIR/token")"
  fi
  export SRLM_TOKEN
}

# The coordinator writes its port to a file of this script's own (coordinator.port.<script's PID>) once
# it holds the run directory's lock and listens; only then does that file become
# RUN_DIR/coordinator.port. A coordinator refused because another one serves the run thus leaves the
# live run's coordinator.port as it is. Without a PORT it listens on port 0, i.e. one the system
# picks free, and the workers are told the port it wrote: two runs on one host (or two jobs whose
# first node is the same) never collide (a fixed default did: the second coordinator exited "in use").
COORD_PID=
NEW_PORT_FILE=
launch_coordinator() {  # CONFIG COMMAND...
  local config="$1"
  shift
  NEW_PORT_FILE="$RUN_DIR/coordinator.port.$$"
  rm -f "$NEW_PORT_FILE"
  # shellcheck disable=SC2086  # COORD_ARGS: flags split at white space
  "$@" --run-dir "$RUN_DIR" --listen "0.0.0.0:${PORT:-0}" --config "$config" --port-file "$NEW_PORT_FILE" \
    $COORD_ARGS >>"$RUN_DIR/coordinator.log" 2>&1 &
  COORD_PID=$!
  log "coordinator pid $COORD_PID (log $RUN_DIR/coordinator.log)"
}

# Listening once it wrote the port file. Not a status call: another coordinator already on the port
# would answer it, while this one exits ("in use" or "cannot listen").
launch_coordinator_port() {
  local _
  for _ in $(seq 300); do
    [[ -s "$NEW_PORT_FILE" ]] && break
    if ! launch_running "$COORD_PID"; then
      log "coordinator exited:"
      tail -3 "$RUN_DIR/coordinator.log" || true
      return 1
    fi
    sleep 0.2
  done
  if [[ ! -s "$NEW_PORT_FILE" ]]; then
    log "coordinator did not listen within 60 s"
    rm -f "$NEW_PORT_FILE" || true
    return 1
  fi
  # Checked, not left to set -e: a caller's `|| exit 1` turns set -e off in here.
  if ! PORT="$(cat "$NEW_PORT_FILE")" || ! mv -f "$NEW_PORT_FILE" "$RUN_DIR/coordinator.port"; then
    log "cannot move $NEW_PORT_FILE to $RUN_DIR/coordinator.port"
    return 1
  fi
  log "coordinator listening on $COORD_HOST:$PORT"
}

# Every command tolerates failure (the coordinator may be gone already): under set -e a failing one
# would end an EXIT trap and replace the script's exit status (143, 75, ...) with its own.
launch_stop_coordinator() {
  if [[ -z "$COORD_PID" ]]; then return 0; fi
  if launch_running "$COORD_PID"; then kill "$COORD_PID" 2>/dev/null || true; fi
  wait "$COORD_PID" 2>/dev/null || true
  rm -f "$NEW_PORT_FILE" "$NEW_PORT_FILE.tmp" 2>/dev/null || true
}

# The graceful stop. A stop signal to the script asks the workers to stop: SIGUSR1 to the launcher
# (mpirun, srun), which passes it on to every rank as it is; a rank finishes and submits the unit of
# work in hand (a shard; a whole training, which checks the flag only when it ends), then leaves
# (`leaving: stop requested`). If the launcher still runs STOP_GRACE_SECONDS later, or at another
# signal, the workers are ended: SIGTERM to the launcher (mpirun passes it on and SIGKILLs the ranks
# about a second later, Open MPI's odls_base_sigkill_timeout; srun kills the tasks at once, "forcing
# job termination"); work in hand is lost and redone after the resume. (SIGTERM was sent at once
# before: the ranks died mid-shard and the stop handshake never ran.) The launcher runs in the
# background so that the signal reaches the script at once (bash runs traps only after a foreground
# child exits). The script sets its traps before the launcher starts: a signal that comes before
# its PID is known is acted on just after (one before it starts: it does not start).
launch_state=running  # running, asked (SIGUSR1 sent; ended after launch_deadline) or ended (SIGTERM sent)
launch_deadline=0
launch_name="the launcher"
launch_pid=
launch_rc=0

launch_signal() {  # SIGNAL: to the launcher, if it runs and bash has not reaped it
  if [[ -n "$launch_pid" ]] && launch_running "$launch_pid"; then kill -"$1" "$launch_pid" 2>/dev/null || true; fi
}

launch_end_workers() {  # WHY
  log "$1: ending the workers (SIGTERM to $launch_name)"
  launch_state=ended
  launch_signal TERM
}

launch_stop_workers() {  # WHY [WHY_AGAIN]
  if [[ "$launch_state" != running ]]; then launch_end_workers "${2:-$1 again}"; return 0; fi
  launch_state=asked
  launch_deadline=$((SECONDS + STOP_GRACE_SECONDS + 1))  # SECONDS counts whole seconds: at least the grace
  log "$1: asking the workers to stop after their unit of work (SIGUSR1 to $launch_name); they are ended" \
    "in $STOP_GRACE_SECONDS s (STOP_GRACE_SECONDS) or at another signal"
  launch_signal USR1
}

launch_workers() {  # COMMAND...
  launch_rc=0
  if [[ "$launch_state" != running ]]; then return 0; fi  # a signal came before the workers started: none start
  "$@" &
  launch_pid=$!
  case "$launch_state" in  # a signal that came before launch_pid was set
    asked) launch_signal USR1 ;;
    ended) launch_signal TERM ;;
  esac
  # `wait` returns early when a trapped signal arrives: wait once (the launcher may be gone, reaped
  # by bash, before a poll could see it: its status is kept for `wait`), then again while it still
  # runs; while the workers are asked to stop, look every half second whether it has exited (then
  # collect its status) or the grace period is over.
  wait "$launch_pid" || launch_rc=$?
  while launch_running "$launch_pid"; do
    if [[ "$launch_state" == asked ]]; then
      if ((SECONDS >= launch_deadline)); then
        launch_end_workers "the workers did not stop within $STOP_GRACE_SECONDS s"
        continue
      fi
      sleep 0.5 || true
      if ! launch_running "$launch_pid"; then launch_rc=0; wait "$launch_pid" || launch_rc=$?; fi
      continue
    fi
    launch_rc=0
    wait "$launch_pid" || launch_rc=$?
  done
  return 0
}
