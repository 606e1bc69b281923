"""Independent PyTorch reference for the trainer's unit tests (AdamW, clipping, DPO loss, LR).

Usage: reference_ops.py IN.json OUT.json. IN holds {"op": ..., ...}; written separately from the C++
code, from the papers' formulas and torch.optim.AdamW / torch.nn.utils.clip_grad_norm_.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F


def adamw(req):
    params = [torch.tensor(p, dtype=torch.float32).reshape(s).requires_grad_(True)
              for p, s in zip(req["params"], req["shapes"])]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": req["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=req["lrs"][0], betas=(req["beta1"], req["beta2"]), eps=req["eps"],
                            foreach=False)
    norms = []
    for step, lr in enumerate(req["lrs"]):
        for g in opt.param_groups:
            g["lr"] = lr
        for p, grads in zip(params, req["grads"]):
            p.grad = torch.tensor(grads[step], dtype=torch.float32).reshape(p.shape)
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, req["max_grad_norm"])))
        opt.step()
    return {"params": [p.detach().reshape(-1).tolist() for p in params], "norms": norms}


def dpo(req):
    pc, pr, rc, rr = (torch.tensor(req[k], dtype=torch.float64, requires_grad=(k.startswith("p")))
                      for k in ("pc", "pr", "rc", "rr"))
    beta, ls = req["beta"], req["label_smoothing"]
    h = (pc - pr) - (rc - rr)
    if req["loss"] == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        losses = -F.logsigmoid(beta * h) * (1 - ls) - F.logsigmoid(-beta * h) * ls
    losses.sum().backward()
    return {"losses": losses.tolist(), "grad_pc": pc.grad.tolist(), "grad_pr": pr.grad.tolist()}


def lr(req):
    out = []
    peak, floor, warm, total = req["peak"], req["min"], req["warmup"], req["total"]
    for s in range(total):
        if s < warm:
            out.append(peak * (s + 1) / warm)
            continue
        if req["kind"] == "constant":
            out.append(peak)
            continue
        progress = min(1.0, (s - warm) / max(1, total - 1 - warm))
        f = 1 - progress if req["kind"] == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
        out.append(floor + (peak - floor) * f)
    return {"lrs": out}


def main():
    req = json.load(open(sys.argv[1]))
    out = {"adamw": adamw, "dpo": dpo, "lr": lr}[req["op"]](req)
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
