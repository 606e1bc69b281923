# Sourced (not run) by the shell tests: the helpers they share.
#   free_port                 a free TCP port on 127.0.0.1
#   clean_up_on_exit DIR      on exit, kill -9 every PID the test put in its PIDS array (by PID, nothing
#                             else) and remove DIR if the test set PASSED=1 (kept for its logs otherwise)
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

PIDS=()
clean_up_on_exit() {
  _TEST_LIB_DIR="$1"
  trap _test_lib_clean_up EXIT
}
_test_lib_clean_up() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [[ "${PASSED:-0}" == 1 ]] && rm -rf "$_TEST_LIB_DIR"
  true
}
