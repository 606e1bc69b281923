# Sourced (not run) by the shell tests: the helpers they share.
#   free_port                 a free TCP port on 127.0.0.1
#   clean_up_on_exit DIR      on exit, kill -9 every PID the test put in its PIDS array (by PID, nothing
#                             else) and remove DIR if the test set PASSED=1 (kept for its logs otherwise)
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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
