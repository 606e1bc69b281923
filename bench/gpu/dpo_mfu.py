"""Model FLOPs utilisation of srlm's DPO step on a GPU for a ~0.5B model (issue 4's GPU proof).

Makes a random model of Qwen2-0.5B's shape (494M parameters, bfloat16; bench/train_step_reference.py
make --preset qwen2-0.5b) with 1024 DPO pairs of 128-256 prompt and 128-256 response tokens each and
precomputed reference log-probs (what the self-rewarding loop trains on), times srlm's DPO step with
bench/train_step_bench (bfloat16 with float32 master weights, AdamW, clipping), and converts its
tokens/s into FLOP/s.

FLOPs counted per pair, for the work the step must do (padding excluded): for each of the chosen and
rejected sequences of length T with R response tokens, forward and backward (3x the forward):
  6 * N_layers * T            the layers' matrix products (N_layers: q, k, v, o, gate, up, down weights)
  6 * d * V * R               the output projection, which srlm applies to response positions only
                              (the prompt's logits are not needed for the DPO loss)
  6 * L * d * T^2             causal attention scores and weighted values (2 * d * T^2 per layer
                              forward, half of the full square)
MFU = counted FLOP/s over the peak: 989 TFLOP/s (dense bf16, the H100/H200 SXM datasheet) and the
788 TFLOP/s that an 8192^3 bf16 product reached on this machine kind (KINDS.md); the tokens/s of
train_step_bench count prompt and response tokens of both sequences, so FLOP/s = tokens/s *
(FLOPs per pair / tokens per pair) over the data file. The timed steps draw 320 of its 1024 pairs;
over 200 random draws of 320, FLOPs per token stayed within 0.3% of the whole file's.
With --baseline the same step in plain PyTorch (transformers' model in float32 under bfloat16
autocast, torch.optim.AdamW, clip_grad_norm_; bench/train_step_reference.py --amp-bf16) is timed on
the same data beside it, so that the MFU has a yardstick from the same machine.
Usage: dpo_mfu.py --bin DIR --work DIR [--device cuda] [--batch 32] [--micro-batch 16[,8,...]] [--steps 10]
                  [--baseline] [--profile N]
"""
import argparse
import json
import os
import re
import subprocess
import sys

from check_util import BENCH_DIR, make_train_data, run_or_exit

PROFILES = []  # train_step_bench --profile summaries, one per srlm timing
PEAKS = {"989 TFLOP/s (datasheet, dense bf16)": 989e12,
         "788 TFLOP/s (an 8192^3 bf16 product on an H200 here)": 788e12}


def flops_per_token(config, pairs):
    d, V, L = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    heads, kv, inter = config["num_attention_heads"], config["num_key_value_heads"], config["intermediate_size"]
    head_dim = d // heads
    n_layers = L * (d * d + 2 * d * kv * head_dim + d * d + 3 * d * inter)
    flops = tokens = 0
    for p in pairs:
        P = len(p["prompt_ids"])
        for r in (p["chosen_ids"], p["rejected_ids"]):
            R = len(r)
            T = P + R
            flops += 6 * n_layers * T + 6 * d * V * R + 6 * L * d * T * T
            tokens += T
    params = n_layers + V * d * (1 if config.get("tie_word_embeddings") else 2) + (2 * L + 1) * d
    return flops / tokens, params


def time_srlm(args, model, micro_batch):
    """srlm's DPO step through train_step_bench: (tokens/s, step seconds)."""
    cmd = [os.path.join(args.bin, "train_step_bench"), "--dir", model, "--device", args.device, "--dtype", "bfloat16",
           "--objectives", "dpo", "--no-baseline", "--rounds", "1", "--steps", str(args.steps), "--batch",
           str(args.batch), "--micro-batch", str(micro_batch)] + (["--profile", str(args.profile)] if args.profile else [])
    out, _ = run_or_exit(cmd, "train_step_bench")
    if args.profile:  # the profiled run's summary, printed after the table
        PROFILES.append(f"srlm, micro-batch {micro_batch}, " + out[out.index("dpo, "):out.rindex("\ndpo ")].strip())
    row = re.search(r"^dpo\s+(\d+)\s+([0-9.]+)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)", out, re.M)
    if not row:
        sys.exit("no dpo row in train_step_bench's output:\n" + out)
    return float(row.group(2)), float(row.group(3))


def time_pytorch(args, model, micro_batch):
    """The plain PyTorch step (transformers' model, float32 weights, bfloat16 autocast): (tokens/s, step s)."""
    cmd = [args.python, os.path.join(BENCH_DIR, "train_step_reference.py"), "time", "--dir", model, "--objective", "dpo",
           "--batch", str(args.batch), "--micro-batch", str(micro_batch), "--steps", str(args.steps), "--device",
           args.device, "--amp-bf16"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:  # e.g. out of memory at a micro-batch srlm fits: reported, the sweep goes on
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pytorch  {micro_batch:11d}  failed (exit {proc.returncode}): {last[:160]}", flush=True)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result["tokens_per_second"], result["step_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=32, help="pairs per step (64 sequences)")
    ap.add_argument("--micro-batch", default="16", help="pairs per forward/backward; a comma-separated list times each")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--baseline", action="store_true",
                    help="also time the plain PyTorch step (bench/train_step_reference.py --amp-bf16) side by side")
    ap.add_argument("--profile", type=int, default=0,
                    help="after each srlm timing, one profiled run: where its GPU time goes (top N kernels)")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    model = os.path.join(args.work, "qwen2-0.5b")
    make_train_data(args.python, model, preset="qwen2-0.5b")
    config = json.load(open(os.path.join(model, "config.json")))
    pairs = [json.loads(l) for l in open(os.path.join(model, "dpo.jsonl"))]
    per_token, params = flops_per_token(config, pairs)
    print(f"model {params / 1e6:.0f}M parameters (Qwen2-0.5B shape), bfloat16 + float32 master weights; "
          f"global batch {args.batch} pairs, {args.steps} timed steps; {per_token / 1e9:.2f} GFLOP per token")
    sides = [("srlm", time_srlm)] + ([("pytorch", time_pytorch)] if args.baseline else [])
    print("side     micro-batch  step ms  tokens/s  TFLOP/s  " + "  ".join(f"MFU@{p / 1e12:.0f}" for p in PEAKS.values()))
    for micro_batch in [int(m) for m in args.micro_batch.split(",")]:
        for name, timer in sides:
            timed = timer(args, model, micro_batch)
            if timed is None:
                continue
            tok_s, step_s = timed
            achieved = tok_s * per_token
            print(f"{name:8} {micro_batch:11d}  {step_s * 1e3:7.1f}  {tok_s:8.0f}  {achieved / 1e12:7.1f}  " +
                  "  ".join(f"{100 * achieved / p:7.1f}%" for p in PEAKS.values()), flush=True)
    print("MFU peaks: " + "; ".join(PEAKS))
    for profile in PROFILES:
        print("\n" + profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
