# Sourced (not run) by the shell tests: the helpers they share.
#   free_port                 a free TCP port on 127.0.0.1
#   track_pid PID             kill -9 PID when the test exits (by PID, nothing else), unless it ended
#                             before: a PID is recorded with its start time, so that one that the
#                             system gave to another process since is left alone
#   clean_up_on_exit DIR      on exit, kill the tracked PIDs and remove DIR if the test set PASSED=1
#                             (kept for its logs otherwise)
#   wait_for_line FILE PATTERN SECONDS [WHAT]
#                             waits until FILE has a line matching PATTERN; otherwise calls the test's
#                             own `fail` with WHAT and what was missing
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_line() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  fail "${4:+$4 }(no '$2' in $1 within $3 s)"
}

# The start time of process $1 in clock ticks since boot (field 22 of /proc/PID/stat, counted after
# the command name, which may hold spaces and parentheses); fails when there is no such process.
_test_lib_start_time() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

PIDS=()  # "PID:start time"
track_pid() {
  local start
  start="$(_test_lib_start_time "$1")" || return 0  # already gone: nothing to kill
  PIDS+=("$1:$start")
}
clean_up_on_exit() {
  _TEST_LIB_DIR="$1"
  trap _test_lib_clean_up EXIT
}
_test_lib_clean_up() {
  local entry
  for entry in "${PIDS[@]}"; do
    [[ "$(_test_lib_start_time "${entry%%:*}")" == "${entry#*:}" ]] && kill -9 "${entry%%:*}" 2>/dev/null
  done
  [[ "${PASSED:-0}" == 1 ]] && rm -rf "$_TEST_LIB_DIR"
  true
}
