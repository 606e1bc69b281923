#!/usr/bin/env bash
# A private one-node Slurm cluster for tests: munged, slurmctld and slurmd in the foreground with our
# own slurm.conf and state/spool folders under DIR. Daemons are stopped by PID, nothing else.
#   cluster.sh start DIR     start the daemons, wait until the node is idle, print "export SLURM_CONF=..."
#   cluster.sh stop DIR      stop the daemons started by `start DIR`
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd="${1:?usage: cluster.sh start|stop DIR}"
DIR="$(mkdir -p "${2:?usage: cluster.sh start|stop DIR}" && cd "$2" && pwd)"

source "$HERE/../test_lib.sh"  # free_port

start() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/munge"
  chmod 700 "$DIR/munge"
  # munged: a private socket and key, so the test never touches a system munge daemon.
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$DIR/munge/munge.key"
  local sock="$DIR/munge/munge.socket"
  /usr/sbin/munged --foreground --force --key-file="$DIR/munge/munge.key" --socket="$sock" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" >"$DIR/munged.out" 2>&1 &
  echo $! >"$DIR/munged.pid"
  for _ in $(seq 50); do [[ -S "$sock" ]] && break; sleep 0.1; done
  [[ -S "$sock" ]] || { echo "munged did not start" >&2; cat "$DIR/munged.out" >&2; return 1; }

  sed -e "s|@DIR@|$DIR|g" -e "s|@USER@|$(id -un)|g" -e "s|@CTLD_PORT@|$(free_port)|g" \
      -e "s|@SLURMD_PORT@|$(free_port)|g" "$HERE/slurm.conf.in" >"$DIR/slurm.conf"
  # The munge socket is not configurable in slurm.conf 22.05 beyond AuthInfo.
  sed -i "s|^AuthType=auth/munge|AuthType=auth/munge\nAuthInfo=socket=$sock|" "$DIR/slurm.conf"
  export SLURM_CONF="$DIR/slurm.conf"
  /usr/sbin/slurmctld -D -i -f "$SLURM_CONF" >"$DIR/slurmctld.out" 2>&1 &
  echo $! >"$DIR/slurmctld.fgpid"
  /usr/sbin/slurmd -D -f "$SLURM_CONF" >"$DIR/slurmd.out" 2>&1 &
  echo $! >"$DIR/slurmd.fgpid"
  for _ in $(seq 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  echo "slurm node did not become idle; logs in $DIR" >&2
  tail -20 "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR"/*.out >&2 || true
  return 1
}

stop() {
  local f pid found=0
  for f in slurmd.fgpid slurmctld.fgpid munged.pid; do
    [[ -f "$DIR/$f" ]] || continue
    found=1
    pid="$(cat "$DIR/$f")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi  # only one that did not stop
    rm -f "$DIR/$f"
  done
  # Stopping a folder with nothing recorded is a caller's mistake (a wrong DIR leaves daemons running).
  [[ "$found" == 1 ]] || { echo "cluster.sh stop: no daemons recorded under $DIR" >&2; return 1; }
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
