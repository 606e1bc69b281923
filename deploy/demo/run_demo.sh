#!/usr/bin/env bash
# `make demo`: the self-rewarding loop end to end on CPU, on the bundled task family of
# deploy/demo/make_data.py (answers a program can check), with nothing downloaded at run time.
#   1. a random tiny Llama with the demo tokenizer     (srlm-worker init-model)
#   2. pretraining on task lists + IFT + EFT, 2 ranks  (mpirun srlm-worker sft)
#   3. the run: coordinator + 2 workers under mpirun   (deploy/mpirun/run.sh): SFT, then
#      DEMO_ITERATIONS self-rewarding iterations, with srlmctl watch showing progress
#   4. the table per iteration                          (deploy/demo/report.py -> RUN/report.md)
# usage: run_demo.sh [BUILD_DIR]; environment: DEMO_RUN_DIR (default runs/demo, replaced each time),
# DEMO_ITERATIONS (2), DEMO_PRETRAIN_STEPS (2400 steps of 32 examples, ~7 min on 2 cores),
# NP (2 worker ranks), PORT.
set -euo pipefail
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$(cd "${1:-$SRC/build}" && pwd)"
RUN="${DEMO_RUN_DIR:-$SRC/runs/demo}"
ITERATIONS="${DEMO_ITERATIONS:-2}"
PRETRAIN_STEPS="${DEMO_PRETRAIN_STEPS:-2400}"
export NP="${NP:-2}" THREADS="${THREADS:-1}" BUILD_DIR="$BUILD"
WORKER="$BUILD/worker/srlm-worker"
SRLMCTL="$BUILD/coordinator/ctl/srlmctl"
DATA="$SRC/deploy/demo/data"
START=$(date +%s)
say() { echo "[demo +$(( $(date +%s) - START ))s] $*"; }

rm -rf "$RUN"
mkdir -p "$RUN"
# Absolute: the link to the pretrained checkpoint below, demo.yaml and run.sh all use it (a relative
# DEMO_RUN_DIR made `pretrained` a link resolved from its own folder, dangling, after the pretraining).
RUN="$(cd "$RUN" && pwd)"
root_args=()
[[ "$(id -u)" == 0 ]] && root_args=(--allow-run-as-root)

say "1/4 a random tiny model (4 layers, d_model 128, vocabulary of the demo tokenizer)"
"$WORKER" init-model --out "$RUN/random" --tokenizer-from "$DATA" --hidden-size 128 --intermediate-size 384 \
  --layers 4 --heads 4 --kv-heads 4 --max-position-embeddings 192 --tie-embeddings --seed 7 >"$RUN/init.log" 2>&1

say "2/4 pretraining on task lists, tasks and judgements: $PRETRAIN_STEPS steps, $NP ranks (log $RUN/pretrain.log)"
cat "$DATA/pretrain.jsonl" "$DATA/ift.jsonl" "$DATA/eft.jsonl" >"$RUN/pretrain.jsonl"
mpirun "${root_args[@]}" --oversubscribe -np "$NP" -x OMP_NUM_THREADS="$THREADS" \
  "$WORKER" sft --model "$RUN/random" --data "$RUN/pretrain.jsonl" --out "$RUN/pretrain" \
  --steps "$PRETRAIN_STEPS" --batch-size 32 --micro-batch-size 16 --lr 3e-3 --lr-schedule cosine \
  --min-lr 1e-4 --warmup-steps 50 --dropout 0 --max-grad-norm 1 --seed 7 >"$RUN/pretrain.log" 2>&1 \
  || { tail -20 "$RUN/pretrain.log"; exit 1; }
grep -E "step .*/" "$RUN/pretrain.log" | tail -1 || true
ln -s "$(ls -d "$RUN"/pretrain/checkpoint-* | sort -t- -k2 -n | tail -1)" "$RUN/pretrained"

say "3/4 the self-rewarding run: SFT, then $ITERATIONS iterations ($NP workers under mpirun)"
sed -e "s|@RUN@|$RUN|g" -e "s|@DATA@|$DATA|g" -e "s|@SRC@|$SRC|g" -e "s|@ITERATIONS@|$ITERATIONS|g" \
  "$SRC/deploy/demo/demo.yaml.in" >"$RUN/demo.yaml"
export PORT="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export COORD_HOST=127.0.0.1
bash "$SRC/deploy/mpirun/run.sh" "$RUN/demo.yaml" "$RUN" >"$RUN/run.log" 2>&1 &
RUN_PID=$!
# Progress: srlmctl watch on the terminal, and each status as one JSON line for the report.
(
  while kill -0 "$RUN_PID" 2>/dev/null; do
    "$SRLMCTL" --run-dir "$RUN" --coordinator "127.0.0.1:$PORT" status --json 2>/dev/null | tr -d '\n' \
      >>"$RUN/status.jsonl" && echo >>"$RUN/status.jsonl"
    sleep 1
  done
) &
STATUS_PID=$!
sleep 2
"$SRLMCTL" --run-dir "$RUN" --coordinator "127.0.0.1:$PORT" watch --interval 2 &
WATCH_PID=$!
trap 'kill "$WATCH_PID" "$STATUS_PID" "$RUN_PID" 2>/dev/null || true' EXIT
if ! wait "$RUN_PID"; then
  echo "the run failed; last lines of $RUN/run.log and the coordinator log:"
  tail -30 "$RUN/run.log"
  tail -10 "$RUN/coordinator.log"
  exit 1
fi
kill "$WATCH_PID" 2>/dev/null || true
wait "$STATUS_PID" 2>/dev/null || true
grep -E "iteration [0-9]+ (PROMPTS|GENERATE) shard|DPO on|SFT on" "$RUN/run.log" | tail -6 || true

say "4/4 evaluating M0..M$((ITERATIONS + 1)) on the held-out tasks"
python3 "$SRC/deploy/demo/report.py" --run-dir "$RUN" --worker "$WORKER" --iterations "$ITERATIONS"
say "done in $(( $(date +%s) - START )) s; table in $RUN/report.md, logs in $RUN/"
