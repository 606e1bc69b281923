#!/usr/bin/env bash
# The real worker end to end: `srlm-worker run` (libtorch model, tokenizer, Trainer over MPI) as 2
# ranks under real mpirun, launched by deploy/mpirun/run.sh with the srlm-coordinator binary, on a
# tiny model: SFT + 1 self-rewarding iteration. A random model never writes "Score: n", so the test
# first teaches a tiny model the judge's output format and the self-instruct task lists with
# `srlm-worker sft` (2 ranks, the demo's EFT and pretraining data); its judgements then parse, its new
# prompts end (a prompt cut off by max_new_tokens is dropped) and pairs form (11 with these seeds;
# with EFT data alone the pool held judgement-like texts, every candidate was empty and 1 pair
# formed). Checks: the status RPC reported every phase and the
# counter advanced to DONE at iteration 2; the pairs file of iteration 1 exists and every pair in it
# has a chosen score above its rejected score and finite reference log-probabilities; the new
# checkpoint loads and generates (srlm-worker generate).
#   usage: e2e_mpirun_model_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD="$1"; SRC="$2"
T="$(mktemp -d /tmp/srlm-e2e-model-XXXXXX)"
WORKER="$BUILD/worker/srlm-worker"; SRLMCTL="$BUILD/coordinator/ctl/srlmctl"
DATA="$SRC/deploy/demo/data"
fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log "$T"/run/*.log; do [[ -f "$f" ]] && { echo "== $f"; tail -25 "$f"; }; done >&2; exit 1; }
RUN_PID=""
# On failure, also whatever a broken watchdog left behind (processes named by this test's folder).
cleanup() { [[ -n "$RUN_PID" ]] && kill "$RUN_PID" 2>/dev/null; pkill -9 -f "$T/run" 2>/dev/null || true; }
trap cleanup EXIT
root_args=(); [[ "$(id -u)" == 0 ]] && root_args=(--allow-run-as-root)

cat "$DATA/eft.jsonl" "$DATA/pretrain.jsonl" >"$T/pretrain_mix.jsonl"
"$WORKER" init-model --out "$T/random" --tokenizer-from "$DATA" --hidden-size 64 --intermediate-size 128 \
  --layers 2 --heads 4 --kv-heads 2 --max-position-embeddings 128 --tie-embeddings --seed 3 >"$T/init.log" 2>&1 \
  || fail "init-model"
mpirun "${root_args[@]}" --oversubscribe -np 2 -x OMP_NUM_THREADS=1 "$WORKER" sft --model "$T/random" \
  --data "$T/pretrain_mix.jsonl" --out "$T/judge" --steps 60 --batch-size 32 --micro-batch-size 32 --lr 1e-2 \
  --lr-schedule constant --dropout 0 >"$T/pretrain.log" 2>&1 || fail "pretraining the judge format"
M0="$T/judge/checkpoint-60"
[[ -f "$M0/config.json" ]] || fail "no pretrained checkpoint"

# Held-out evaluation data: 100 judge prompts (what this tiny model learnt to answer), whose "right"
# answers are M0's own greedy answers for two prompts in three and a wrong one for the third (and
# where M0 answered nothing; an empty answer is refused). The models the run trains a little from
# M0 answer much alike, so the loop's counts land far from 0 and 100 and a miscount shows (the
# demo's real tasks are beyond this tiny model).
python3 -c 'import json, sys; [print(json.dumps({"prompt": json.loads(l)["prompt"]})) for l in list(open(sys.argv[1]))[:100]]' \
  "$DATA/eft.jsonl" >"$T/eval.in.jsonl"
"$WORKER" generate --model "$M0" --input "$T/eval.in.jsonl" --output "$T/eval.m0.jsonl" --temperature 0 \
  --max-new-tokens 8 >"$T/eval-m0.log" 2>&1 || fail "srlm-worker generate on M0"
python3 -c 'import json, sys; [print(json.dumps({"prompt": r["prompt"], "answer": r["response"] if i % 3 and r["response"].strip() else "no " + r["response"]})) for i, r in enumerate(map(json.loads, open(sys.argv[1])))]' \
  "$T/eval.m0.jsonl" >"$T/eval.jsonl"
cat >"$T/config.yaml" <<YAML
model: {path: "$M0", chat_template: "plain"}
data: {ift: "$DATA/ift.jsonl", eft: "$DATA/eft.jsonl", eval: "$T/eval.jsonl"}
run: {iterations: 1, seed: 11}
prompts:
  per_iteration: 32
  shots: 2
  shard_size: 4
  sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 10}
  min_chars: 1
  max_chars: 200
generate:
  candidates: 3
  shard_size: 4
  sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 8}
judge:
  samples: 2
  template_file: "$SRC/deploy/demo/judge_template.txt"
  sampling: {temperature: 1.0, top_p: 1.0, max_new_tokens: 24}
sft: {steps: 3, batch_size: 8, micro_batch_size: 4, lr: 1.0e-4, dropout: 0.0}
dpo: {steps: 2, batch_size: 4, micro_batch_size: 2, lr: 1.0e-4, dropout: 0.0}
coordinator: {heartbeat_seconds: 0.5, lease_seconds: 60}
YAML

export PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export NP=2 THREADS=1 BUILD_DIR="$BUILD" COORD_HOST=127.0.0.1
bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run" >"$T/run.log" 2>&1 &
RUN_PID=$!
# Every phase through the status RPC: the WatchStatus stream (srlmctl watch, an update every 0.1 s)
# from as soon as the coordinator answers until DONE.
for _ in $(seq 600); do
  "$SRLMCTL" --run-dir "$T/run" --coordinator "127.0.0.1:$PORT" watch --interval 0.1 >>"$T/watch.log" 2>/dev/null && break
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.05
done
wait "$RUN_PID" || fail "run.sh exited with an error"
RUN_PID=""
phases=" $(grep -o 'iteration [0-9]* of [0-9]*  phase [A-Z]*' "$T/watch.log" | awk '{print $2 ":" $6}' | uniq | tr '\n' ' ')"
echo "status seen:$phases"
for want in 0:SFT 1:PROMPTS 1:GENERATE 1:TRAIN; do
  grep -q " $want" <<<"$phases" || fail "the status RPC never reported $want"
done
grep -q "phase DONE after 1 of 1 iterations" "$T/watch.log" || fail "the status RPC never reported DONE"
grep -q "run done; pairs in" "$T/run.log" || fail "run.sh did not export the pairs"
PAIRS="$T/run/pairs/iter-1.jsonl"
[[ -s "$PAIRS" ]] || fail "no pairs in $PAIRS"
python3 - "$PAIRS" <<'PY' || fail "bad pairs"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["prompt_id"] for r in rows]
assert len(ids) == len(set(ids)), "a prompt has two pairs"
for r in rows:
    assert r["chosen_score"] > r["rejected_score"], r
    assert math.isfinite(r["ref_chosen_logprob"]) and r["ref_chosen_logprob"] < 0, r
    assert math.isfinite(r["ref_rejected_logprob"]) and r["ref_rejected_logprob"] < 0, r
print(f"{len(rows)} pairs, chosen above rejected, reference log-probabilities finite")
PY
for i in 1 2; do [[ -f "$T/run/checkpoints/iter-$i/model.safetensors" ]] || fail "no checkpoint iter-$i"; done
# The workers' reference log-probabilities (M_1, in GENERATE) equal what the offline command computes
# for the same prompt and response: the loop and the trainer tokenize alike.
python3 - "$PAIRS" "$T/ref.in.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        out.write(json.dumps({"prompt": r["prompt"], "response": r["chosen"], "want": r["ref_chosen_logprob"]}) + "\n")
        out.write(json.dumps({"prompt": r["prompt"], "response": r["rejected"], "want": r["ref_rejected_logprob"]}) + "\n")
PY
"$WORKER" logprobs --model "$T/run/checkpoints/iter-1" --input "$T/ref.in.jsonl" --output "$T/ref.out.jsonl" \
  >"$T/logprobs.log" 2>&1 || fail "srlm-worker logprobs"
python3 - "$T/ref.out.jsonl" <<'PY' || fail "reference log-probabilities differ from srlm-worker logprobs"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
worst = max(abs(r["logprob"] - r["want"]) / max(1.0, abs(r["want"])) for r in rows)
assert worst < 1e-4, f"largest relative difference {worst}"
print(f"{len(rows)} reference log-probabilities match srlm-worker logprobs (worst {worst:.2e})")
PY
echo '{"prompt": "Add: 2 + 3"}' >"$T/probe.jsonl"
"$WORKER" generate --model "$T/run/checkpoints/iter-2" --input "$T/probe.jsonl" --output "$T/probe.out.jsonl" \
  --temperature 0 --max-new-tokens 4 >"$T/generate.log" 2>&1 || fail "the new checkpoint does not load"
grep -q '"finish_reason"' "$T/probe.out.jsonl" || fail "no generation from the new checkpoint"
# Loop checkpoints carry no optimizer state (never read; about twice the weights on disk).
[[ ! -e "$T/run/checkpoints/iter-2/optimizer.pt" ]] || fail "a loop checkpoint carries optimizer.pt"
# The loop's own held-out evaluation (data.eval, split over the 2 ranks), as the status RPC showed it
# for the committed iterations, equals an independent count: srlm-worker generate, greedy with the
# candidates' length limit, on the same checkpoints.
for i in 0 1; do
  # iter, prompts, results, pairs, ties, unparsable, too long, too few answers, loss, eval, model
  row="$(grep -E "^  $i +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[-0-9.]+ +[0-9]+/[0-9]+ " "$T/watch.log" | tail -1)"
  [[ -n "$row" ]] || fail "the status never showed iteration $i's evaluation"
  shown="$(awk '{print $10}' <<<"$row")"
  "$WORKER" generate --model "$T/run/checkpoints/iter-$((i + 1))" --input "$T/eval.in.jsonl" --output "$T/eval.out.jsonl" \
    --temperature 0 --max-new-tokens 8 >"$T/eval.log" 2>&1 || fail "srlm-worker generate on the eval prompts"
  independent="$(python3 - "$T/eval.jsonl" "$T/eval.out.jsonl" <<'PY'
import json, sys
want = [json.loads(l)["answer"] for l in open(sys.argv[1]) if l.strip()]
got = [json.loads(l)["response"] for l in open(sys.argv[2])]
print(f"{sum(g.strip() == w.strip() for g, w in zip(got, want))}/{len(want)}")
PY
)"
  echo "iteration $i: evaluation shown $shown, independent $independent"
  [[ "$shown" == "$independent" ]] || fail "iteration $i: the loop's evaluation $shown differs from $independent"
done

# run.sh on a run directory that another coordinator serves: its coordinator refuses to start, and
# the script stops before any worker, saying why (it used to wait for any answer on the port).
"$BUILD/coordinator/srlm-coordinator" --run-dir "$T/run" --listen 127.0.0.1:0 --port-file "$T/other.port" \
  >"$T/other.log" 2>&1 &
OTHER_PID=$!
for _ in $(seq 100); do [[ -s "$T/other.port" ]] && break; sleep 0.1; done
[[ -s "$T/other.port" ]] || fail "the second coordinator did not start"
if PORT="$(cat "$T/other.port")" bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run" >"$T/rerun.log" 2>&1; then
  fail "run.sh went on beside another coordinator"
fi
kill "$OTHER_PID"; wait "$OTHER_PID" || true
grep -q "is in use by another srlm-coordinator (pid $OTHER_PID" "$T/rerun.log" || fail "run.sh did not say why it stopped"
if grep -q "starting .* worker ranks" "$T/rerun.log"; then fail "run.sh started workers"; fi
# SIGTERM to run.sh mid-run stops mpirun and the workers with it (they were left running), and the
# same command then resumes the run to its end. The workers are asked to stop (SIGUSR1) and ended
# after STOP_GRACE_SECONDS, here 20 s, well within the 30 s this waits (the default is 60 s).
PORT2="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PORT="$PORT2" STOP_GRACE_SECONDS=20 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run2" >"$T/run2.log" 2>&1 &
RUN_PID=$!
for _ in $(seq 300); do grep -q "starting 2 worker ranks" "$T/run2.log" && break; sleep 0.1; done
sleep 1
kill -TERM "$RUN_PID"
for _ in $(seq 300); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RUN_PID" 2>/dev/null && fail "run.sh did not stop within 30 s of SIGTERM"
if wait "$RUN_PID"; then fail "run.sh exited 0 after SIGTERM"; fi
RUN_PID=""
if pgrep -f "$T/run2/checkpoints" >/dev/null; then fail "workers outlived run.sh"; fi
grep -q "stopped by a signal" "$T/run2.log" || fail "run.sh did not say it was stopped"
PORT="$PORT2" bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run2" >"$T/run2b.log" 2>&1 || fail "resume after SIGTERM"
grep -q "run done; pairs in" "$T/run2b.log" || fail "the resumed run did not finish"
# A rank whose work hangs while its heartbeats go on (here: its model load after SFT, by a test hook)
# held its lease for ever and the job with it. Its watchdog ends the whole job with exit code 75 and
# says where it stuck; no process is left; the same command then resumes the run to its end.
if "$WORKER" run --coordinator 127.0.0.1:1 --stall-seconds 60 >"$T/stall-flag.log" 2>&1; then
  fail "--stall-seconds at or under --retry-seconds was taken"
fi
grep -q -- "--stall-seconds (60) must be longer than --retry-seconds (120)" "$T/stall-flag.log" || fail "no reason given"
PORT3="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
stall_rc=0
PORT="$PORT3" MPIRUN_ARGS="-x SRLM_TEST_STALL_RANK=1" WORKER_ARGS="--stall-seconds 4 --retry-seconds 2" \
  timeout 120 bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run3" >"$T/run3.log" 2>&1 || stall_rc=$?
[[ "$stall_rc" == 75 ]] || fail "a stalled rank ended run.sh with status $stall_rc, not 75"
grep -q "SRLM_TEST_STALL_RANK: this rank's model load hangs on purpose" "$T/run3.log" || fail "the hook did not hang"
grep -q "worker stalled: no progress for [0-9.]* s (limit 4 s) while loading model $T/run3/checkpoints/iter-1" \
  "$T/run3.log" || fail "the stalled rank did not say where it stuck"
grep -q "a worker rank stalled" "$T/run3.log" || fail "run.sh did not say why the job ended"
if pgrep -f "$T/run3/checkpoints" >/dev/null; then fail "workers outlived the stalled job"; fi
PORT="$PORT3" bash "$SRC/deploy/mpirun/run.sh" "$T/config.yaml" "$T/run3" >"$T/run3b.log" 2>&1 || fail "resume after a stall"
grep -q "run done; pairs in" "$T/run3b.log" || fail "the run resumed after a stall did not finish"
# The stall came after rank 0 had reported iteration 0's checkpoint and before rank 1 did: resumed,
# rank 1 reports the written checkpoint without training (training alone, it hung the job), and
# rank 0, registered before the commit, still works with the committed model, not M0.
grep -q "was written before a relaunch (another rank reported it): checking it, then reporting it without training" "$T/run3b.log" \
  || fail "the relaunched rank did not report the written checkpoint"
if grep -q "loaded model $M0 " "$T/run3b.log"; then fail "a resumed rank went on with the model before the commit"; fi
# Text too long for the context never stops a run (it used to fail GENERATE with "a prompt of N
# tokens leaves no room", and every relaunch failed alike, since sampling is seeded). A random model
# on a 160-token context writes candidates that the stop string "e" ends (answers, so they are
# judged); the judge template alone (~660 tokens) is longer than the context, so no judge prompt
# fits, while every other prompt does (eval prompts <= 50 tokens, self-instruct requests <= 82):
# the "leave no room" line can only come from judge prompts. The run reaches DONE; those judgements
# have no text and are counted unparsable.
"$WORKER" init-model --out "$T/small" --tokenizer-from "$DATA" --hidden-size 32 --intermediate-size 64 \
  --layers 1 --heads 2 --kv-heads 2 --max-position-embeddings 160 --seed 5 >"$T/init-small.log" 2>&1 \
  || fail "init-model (small context)"
{ for _ in $(seq 60); do printf 'Judge the answer with care. '; done; printf '\n{prompt}\n{response}\nScore: '; } \
  >"$T/long_judge_template.txt"
sed -e "s|path: \"$M0\"|path: \"$T/small\"|" -e 's|run: {iterations: 1, seed: 11}|run: {iterations: 1, seed: 11, sft: false}|' \
  -e 's|max_new_tokens: 8}|max_new_tokens: 500, stop: ["e"]}|' \
  -e "s|template_file: .*|template_file: \"$T/long_judge_template.txt\"|" "$T/config.yaml" >"$T/config-small.yaml"
grep -q "max_new_tokens: 500" "$T/config-small.yaml" && grep -q "sft: false" "$T/config-small.yaml" \
  && grep -q long_judge_template "$T/config-small.yaml" || fail "config edit"
PORT4="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
PORT="$PORT4" bash "$SRC/deploy/mpirun/run.sh" "$T/config-small.yaml" "$T/run4" >"$T/run4.log" 2>&1 \
  || fail "a run whose texts outgrow the context failed"
grep -q "run done; pairs in" "$T/run4.log" || fail "the small-context run did not finish"
grep -q "leave no room in the model's context of 160 tokens" "$T/run4.log" || fail "no judge prompt outgrew the context"
rm -rf "$T"
echo PASS
