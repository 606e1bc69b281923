#!/usr/bin/env bash
# The GPU checks of issues 3 (model core) and 4 (trainer), in one call on a GPU machine that has
# CUDA PyTorch 2.11 and transformers in its python3 but none of srlm's other libraries:
#   here:   bench/gpu/pack.sh                         (builds .gpu/bundle.tar.xz, ~20 MB)
#   device: run(command="bash bench/gpu/run_checks.sh", carry=[".gpu"], timeout_s=600)
# Pack right before the call: the bundle holds the binaries of the build it was made from (VERSION).
# Steps (each under its own time limit, together under 590 s; logs and JSON go to $OUT, the last
# lines to the output, a summary line as each step ends):
#   1. model_test's transformers-parity, generation and log-prob tests with srlm on the GPU
#      (SRLM_TEST_DEVICE): float32 logits within 1e-4, 32 greedy tokens, saved models, a batch
#      that runs out of GPU memory split and retried (BatchedGenerator), keyed dropout on CUDA
#      generators (KeyedDropout);
#      srlm_train_test's communicator tests on the GPU: NCCL all-reduce, broadcast and the gradient
#      buckets at world size 1;
#   2. bench/gpu/hf_generate_bench.py: bfloat16 log-prob sums and greedy tokens against transformers,
#      decode (batch 1, 16) and prefill tokens/s against transformers' generate;
#   3. bench/gpu/trainer_check.py: DPO over NCCL at world size 1 and in bfloat16 with float32 master
#      weights, against the same run on the CPU in float32;
#   4. bench/gpu/dpo_mfu.py: the DPO step's model FLOPs utilisation on a ~0.5B model, srlm and a plain
#      PyTorch step (transformers' model under bfloat16 autocast) side by side, micro-batches 8/16/32.
# SRLM_GPU_STEPS="communicator_test dpo_mfu" runs only the steps named (a rerun of what failed);
# SRLM_GPU_MFU_ARGS replaces dpo_mfu.py's arguments, e.g. "--micro-batch 32 --profile 25" for where
# the step's GPU time goes (bench/kernel_profile.h).
# SRLM_GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (MPI instead of NCCL, a small MFU run):
# how this script is tested on a machine without a GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
DEVICE="${SRLM_GPU_CHECK_DEVICE:-cuda}"
PY="${SRLM_GPU_PYTHON:-python3}"
OUT="${OUT:-/tmp/srlm-gpu-out}"
WORK="${SRLM_GPU_WORK:-/tmp/srlm-gpu-work}"
BUNDLE="$WORK/bundle"
STEPS="${SRLM_GPU_STEPS:-model_test communicator_test hf_generate_bench trainer_check dpo_mfu}"
mkdir -p "$OUT" && rm -rf "$WORK" && mkdir -p "$BUNDLE"
[[ -f .gpu/bundle.tar.xz ]] || { echo "no .gpu/bundle.tar.xz: run bench/gpu/pack.sh here and carry .gpu"; exit 2; }
"$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' .gpu/bundle.tar.xz "$BUNDLE" || exit 2
site="$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')" || exit 2
export SRLM_TORCH_LIB_PATH="$site/torch/lib:$site/nvidia/cu13/lib:$site/nvidia/nccl/lib"
export PYTHONUNBUFFERED=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 NCCL_DEBUG=WARN
# model_test starts the reference Python from inside the bundle's wrapper: without its library path.
TEST_PYTHON="env -u LD_LIBRARY_PATH $PY"
echo "bundle built from $(cat "$BUNDLE/VERSION")"
if [[ "$DEVICE" == cpu ]]; then
  COMMUNICATOR=mpi
  GENERATE_ARGS=(--shapes bench --rounds 1)
  MFU_ARGS=(--batch 2 --micro-batch 1,2 --steps 1 --baseline)
  TIME_SCALE=3  # a 2-core CPU is slower than the GPU machine at every step
else
  COMMUNICATOR=nccl
  GENERATE_ARGS=(--shapes bench,134m --rounds 2)
  TIME_SCALE=1
  MFU_ARGS=(--batch 32 --micro-batch 8,16,32 --steps 10 --baseline)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv,noheader
fi
if [[ -n "${SRLM_GPU_MFU_ARGS:-}" ]]; then read -ra MFU_ARGS <<<"$SRLM_GPU_MFU_ARGS"; fi
echo "$(ldd --version | head -1); python $("$PY" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)')"
if ! "$BUNDLE/bin/srlm-worker" --help >/dev/null; then
  echo "the bundled srlm-worker does not start here (it needs glibc >= 2.36); unresolved libraries:"
  LD_LIBRARY_PATH="$BUNDLE/lib:$SRLM_TORCH_LIB_PATH" ldd "$BUNDLE/bin/real/srlm-worker" | grep "not found"
  exit 3
fi

summary=()
step() {  # step NAME SECONDS COMMAND...: runs it under a limit, keeps its log, shows its end
  local name="$1" limit="$2" start rc
  shift 2
  [[ " ${STEPS} " == *" $name "* ]] || return 0
  echo "=== $name"
  start=$(date +%s)
  timeout -k 10 $((limit * TIME_SCALE)) "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  grep -v "^Loading weights\|^Writing model shards" "$OUT/$name.log" | tail -n 30
  summary+=("$(printf '%-18s exit %-3d %4ds' "$name" "$rc" $(($(date +%s) - start)))")
  echo "--- ${summary[-1]}$( ((rc == 124 || rc == 137)) && echo ' (time limit)')"
}

step model_test 90 env SRLM_TEST_DEVICE="$DEVICE" SRLM_VENV_PYTHON="$TEST_PYTHON" SRLM_SOURCE_DIR="$PWD" \
  "$BUNDLE/bin/model_test" --gtest_filter='Kinds/HfParity.*:Generate.*:SequenceLogprobs.*:BatchedGenerator.*:KeyedDropout.*'
step communicator_test 40 env SRLM_TEST_DEVICE="$DEVICE" "$BUNDLE/bin/srlm_train_test" \
  --gtest_filter='CommunicatorOnTestDevice.*'
step hf_generate_bench 170 "$PY" bench/gpu/hf_generate_bench.py --bin "$BUNDLE/bin" --work "$WORK/generate" \
  --device "$DEVICE" "${GENERATE_ARGS[@]}"
step trainer_check 70 "$PY" bench/gpu/trainer_check.py --bin "$BUNDLE/bin" --work "$WORK/train" --device "$DEVICE" \
  --communicator "$COMMUNICATOR" --python "$PY"
step dpo_mfu 220 "$PY" bench/gpu/dpo_mfu.py --bin "$BUNDLE/bin" --work "$WORK/mfu" --device "$DEVICE" \
  --python "$PY" "${MFU_ARGS[@]}"
cp "$WORK/generate/hf_generate_bench.json" "$OUT/" 2>/dev/null
echo "=== summary (exit 0 = passed; logs in \$OUT)"
printf '%s\n' "${summary[@]}"
