#!/usr/bin/env bash
# The one-node Slurm harness works: real munged/slurmctld/slurmd, `srun --mpi=pmix` wires 2 MPI ranks
# together, and a batch job that traps USR1 (as deploy/slurm/srlm.sbatch does) requeues itself and
# starts again with SLURM_RESTART_COUNT=1.   usage: slurm_harness_test.sh PROBE_BINARY
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROBE="${1:?probe binary}"
DIR="$(mktemp -d /tmp/srlm-slurm-XXXXXX)"
cleanup() { "$HERE/cluster.sh" stop "$DIR" || true; [[ "${PASSED:-0}" == 1 ]] && rm -rf "$DIR"; true; }  # kept on failure
trap cleanup EXIT
eval "$("$HERE/cluster.sh" start "$DIR")"
fail() { echo "FAIL: $*" >&2; tail -30 "$DIR"/slurmctld.log >&2 || true; exit 1; }

# 1. srun --mpi=pmix with 2 ranks.
out="$(timeout 60 srun --mpi=pmix -n 2 "$PROBE")" || fail "srun failed"
echo "$out"
[[ "$(grep -c 'size=2 sum=3' <<<"$out")" == 2 ]] || fail "expected two ranks that all-reduce to 3"

# 2. USR1 to the batch shell -> requeue -> second start.
cat >"$DIR/job.sh" <<JOB
#!/usr/bin/env bash
#SBATCH --requeue
#SBATCH --ntasks=2
#SBATCH --open-mode=append
#SBATCH --output=$DIR/job.out
echo "start restart=\${SLURM_RESTART_COUNT:-0}"
if [[ "\${SLURM_RESTART_COUNT:-0}" == 0 ]]; then
  trap 'echo got-usr1; kill \$SRUN_PID; scontrol requeue \$SLURM_JOB_ID; exit 0' USR1
  srun --mpi=pmix -n 2 bash -c 'sleep 120' &
  SRUN_PID=\$!
  while true; do sleep 0.2; done
fi
srun --mpi=pmix -n 2 "$PROBE"
JOB
job="$(sbatch --parsable "$DIR/job.sh")" || fail "sbatch failed"
for _ in $(seq 100); do grep -q 'start restart=0' "$DIR/job.out" 2>/dev/null && break; sleep 0.2; done
sleep 1
scancel --batch --signal=USR1 "$job" || fail "scancel --signal"
# Slurm delays a requeued job's start (BeginTime); a real cluster waits, the test moves it to now,
# but not within slurmd's one-second credential revocation window (a start there is killed for good
# with "Job credential revoked"): PENDING, then 3 s, then start now (and again until it has).
for _ in $(seq 300); do
  [[ "$(squeue -h -j "$job" -o %T 2>/dev/null)" == PENDING ]] && break; sleep 0.2
done
sleep 3
for _ in $(seq 60); do
  grep -q 'start restart=1' "$DIR/job.out" 2>/dev/null && break
  scontrol update JobId="$job" StartTime=now >/dev/null 2>&1 || true
  sleep 1
done
# Both ranks' lines: the second may land in job.out a moment after the first.
for _ in $(seq 600); do [[ "$(grep -c 'size=2 sum=3' "$DIR/job.out" 2>/dev/null)" == 2 ]] && break; sleep 0.2; done
cat "$DIR/job.out"
grep -q got-usr1 "$DIR/job.out" || fail "the batch shell did not get USR1"
grep -q 'start restart=1' "$DIR/job.out" || fail "the job did not start again after requeue"
[[ "$(grep -c 'size=2 sum=3' "$DIR/job.out")" == 2 ]] || fail "second start did not run the probe"
PASSED=1
echo PASS
