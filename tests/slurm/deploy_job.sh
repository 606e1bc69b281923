# Sourced (not run) by the tests that submit deploy/slurm/srlm.sbatch to a private one-node Slurm:
# slurm_deploy_test.sh and slurm_model_test.sh. Needs HERE (tests/slurm), SRC and DIR set. Starts the
# cluster under DIR/cluster, stops it by PID when the test exits, and defines:
#   fail MSG                  print MSG with the last lines of the job and the coordinator; exit 1
#   free_port                 a free TCP port on 127.0.0.1
#   submit_deploy_job CONFIG [OUT]  sbatch of the deploy script on this node, its log in OUT
#                             (default DIR/job.out), with SRLM_SOURCE_DIR=SRC (sbatch runs in the test's
#                             build folder, not in the source tree); prints the job id
#   job_field JOB FIELD       a field of `scontrol show job` (JobState, ExitCode, Restarts, ...)
#   wait_job_ended JOB        waits (at most 60 s) until the job has ended; prints its JobState
# The folder is removed when the test passed (it sets PASSED=1) and kept for its logs when it failed.
cleanup() { "$HERE/cluster.sh" stop "$DIR/cluster" || true; [[ "${PASSED:-0}" == 1 ]] && rm -rf "$DIR"; true; }
trap cleanup EXIT
eval "$("$HERE/cluster.sh" start "$DIR/cluster")"

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$DIR"/job*.out; do [[ -f "$f" ]] && { echo "== $f"; tail -40 "$f"; }; done >&2
  tail -20 "$DIR/run/coordinator.log" >&2 || true
  exit 1
}

source "$HERE/../test_lib.sh"  # free_port

submit_deploy_job() {
  # The script's #SBATCH lines ask for a GPU cluster; the command line overrides them for this node.
  SRLM_SOURCE_DIR="$SRC" sbatch --parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 \
    --time=10 --output="${2:-$DIR/job.out}" --export=ALL "$SRC/deploy/slurm/srlm.sbatch" "$1"
}

job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

wait_job_ended() {
  local state=""
  for _ in $(seq 300); do
    state="$(job_field "$1" JobState)"
    case "$state" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 0.2
  done
  echo "$state"
}
