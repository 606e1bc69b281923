"""srlm's trainer on a GPU (issue 4's GPU proof): the NCCL backend at world size 1, and bfloat16
training with float32 master weights, both against the same run on the CPU in float32.

Runs where the GPU is (bench/gpu/run_checks.sh calls it) with that machine's python3 and torch;
srlm's side is the bundled srlm-worker. On the benchmark model (d_model 256, 4 layers, vocab 4096;
bench/train_step_reference.py make) and its DPO pairs (token ids, precomputed reference
log-probs), `srlm-worker dpo` runs 5 steps (global batch 8, constant lr 1e-4, no dropout) three times:
  A  --device cpu  --dtype float32  --communicator single   (the reference)
  B  --device D    --dtype float32  --communicator C        (D cuda, C nccl: world size 1 over NCCL)
  C  --device D    --dtype bfloat16 --communicator C
and checks:
  - B's per-step losses within 1e-4 relative of A's; its weight change (final - initial) within
    1e-3 relative of A's for all but 1e-4 of the weights and 1% of any one tensor (Adam's first
    updates are ~lr * sign(gradient): a gradient within rounding of zero may flip on another device).
    Calibration on the CPU: the same run with micro-batches of 2 instead of 8 (a different summation
    order) differs in 1.3e-5 of the weights, 4.6e-5 of the worst tensor's;
  - C keeps a float32 master copy of every parameter in optimizer.pt, its saved weights are bfloat16
    and equal to the masters rounded; its losses are within 2e-2 relative of A's and the masters'
    change within 0.3 relative. Adam's update is close to lr * sign(gradient), so bfloat16's gradient
    noise flips the update of every small-gradient element: on the CPU (oneDNN bfloat16, float32
    accumulation) this run gives 0.15. Without master weights most 1e-4 updates would round away
    (a bfloat16 step near 0.02 is 1.2e-4, near 1.0 it is 7.8e-3).
With --device cpu --communicator mpi it runs on a machine without a GPU (used to test this script).
Usage: trainer_check.py --bin DIR --work DIR [--device cuda] [--communicator nccl] [--python PY]
Prints a table; exit code 1 when a check fails.
"""
import argparse
import os
import re
import shutil
import sys

import torch
from safetensors.torch import load_file

from check_util import make_train_data, run_or_exit

STEPS = 5
LR = 1e-4


def run_dpo(args, name, device, dtype, communicator):
    out = os.path.join(args.work, name)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [os.path.join(args.bin, "srlm-worker"), "dpo", "--model", args.model, "--data",
           os.path.join(args.model, "dpo.jsonl"), "--out", out, "--steps", str(STEPS), "--batch-size", "8",
           "--lr", str(LR), "--lr-schedule", "constant", "--warmup-steps", "0", "--dropout", "0", "--seed", "1",
           "--device", device, "--dtype", dtype, "--communicator", communicator]
    _, log = run_or_exit(cmd, name)
    losses = [float(x) for x in re.findall(r"step \d+/\d+ loss ([-0-9.e+]+)", log)]
    if len(losses) != STEPS:
        sys.exit(f"{name}: expected {STEPS} logged steps, found {len(losses)}:\n{log}")
    ckpt = os.path.join(out, f"checkpoint-{STEPS}")
    return losses, load_file(os.path.join(ckpt, "model.safetensors")), ckpt


def compare_changes(initial, final, reference_final, lr):
    """How final's change from initial compares with reference_final's: the relative norm of the
    difference, the fraction of weights whose change differs by more than 1e-3 of the reference's
    (plus 1e-3 lr), and the largest such fraction of one tensor."""
    num = den = 0.0
    bad = total = 0
    worst_tensor = 0.0
    for k, ref in reference_final.items():
        d_ref = ref.double() - initial[k].double()
        diff = final[k].double() - initial[k].double() - d_ref
        num += diff.pow(2).sum().item()
        den += d_ref.pow(2).sum().item()
        off = (diff.abs() > 1e-3 * d_ref.abs() + 1e-3 * lr).sum().item()
        bad += off
        total += d_ref.numel()
        worst_tensor = max(worst_tensor, off / d_ref.numel())
    return dict(rel_norm=(num / den) ** 0.5, fraction=bad / total, worst_tensor=worst_tensor)


def max_rel(a, b):
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--communicator", default="nccl")
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    args.model = os.path.join(args.work, "model")
    make_train_data(args.python, args.model)
    initial = load_file(os.path.join(args.model, "model.safetensors"))
    initial_bf16 = {k: v.to(torch.bfloat16).float() for k, v in initial.items()}

    loss_a, final_a, _ = run_dpo(args, "A_cpu_float32", "cpu", "float32", "single")
    loss_b, final_b, _ = run_dpo(args, "B_float32", args.device, "float32", args.communicator)
    loss_c, final_c, ckpt_c = run_dpo(args, "C_bfloat16", args.device, "bfloat16", args.communicator)

    # C's master weights: every parameter has a float32 copy, and the saved bf16 weights are it rounded.
    optimizer = torch.jit.load(os.path.join(ckpt_c, "optimizer.pt"), map_location="cpu")
    masters, master_problems = {}, []
    for name, saved in final_c.items():
        key = "master." + name
        if not hasattr(optimizer, key):
            master_problems.append(f"{name}: no master copy")
            continue
        masters[name] = getattr(optimizer, key)
        if masters[name].dtype != torch.float32 or saved.dtype != torch.bfloat16:
            master_problems.append(f"{name}: master {masters[name].dtype}, saved {saved.dtype}")
        elif not torch.equal(masters[name].to(torch.bfloat16), saved):
            master_problems.append(f"{name}: saved weights are not the master rounded to bfloat16")

    b = compare_changes(initial, final_b, final_a, LR)
    checks = [
        ("B float32 on " + args.device + " over " + args.communicator + ": losses vs A", max_rel(loss_b, loss_a), 1e-4),
        # Adam's first updates are ~lr * sign(gradient), so a gradient within rounding of zero
        # may flip its element's update on another device: a few single elements may disagree,
        # never a whole tensor (a synchronisation or placement bug would move every element).
        ("B: weights whose change differs from A's by > 1e-3 (fraction)", b["fraction"], 1e-4),
        ("B: the same, the worst tensor's fraction", b["worst_tensor"], 1e-2),
        ("B: weight change vs A (relative norm; reported)", b["rel_norm"], 1.0),
        ("C bfloat16: losses vs A", max_rel(loss_c, loss_a), 2e-2),
        # C starts from the float32 weights rounded to bfloat16 (the masters are made from those).
        ("C: master weights' change vs A", compare_changes(initial_bf16, masters, final_a, LR)["rel_norm"] if not master_problems
         else 1.0, 0.3),
        ("C: float32 masters of all parameters, saved = rounded masters", float(len(master_problems)), 0.0),
    ]
    print(f"losses A {['%.5f' % x for x in loss_a]}\n       B {['%.5f' % x for x in loss_b]}\n"
          f"       C {['%.5f' % x for x in loss_c]}")
    for p in master_problems[:5]:
        print("  " + p)
    ok = True
    print(f"{'check':68s} {'value':>10s} {'limit':>8s}")
    for name, value, limit in checks:
        passed = value <= limit
        ok &= passed
        print(f"{name:68s} {value:10.3g} {limit:8.1g}  {'ok' if passed else 'FAIL'}")
    print("trainer checks: " + ("all passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
