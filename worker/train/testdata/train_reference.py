"""Independent PyTorch/transformers reference for the trainer's model tests.

make --out DIR --seed S            tiny random LlamaForCausalLM saved in the HF layout (safetensors).
loss --policy DIR [--ref DIR] --data F.jsonl --kind sft|dpo [--beta B --loss sigmoid|ipo
     --label-smoothing L --length-normalize] --out OUT
                                   the mean loss over all lines of F (SFT: per response token; DPO:
                                   per pair) and its gradient w.r.t. every policy parameter, in float64.
                                   Writes OUT/result.json ({"loss": ..}), OUT/config.json and
                                   OUT/model.safetensors holding the gradients under the parameter names.
jobs --jobs J.json                 several jobs in one Python start: {"make": {out, seed}} or loss
                                   jobs (keys as the loss flags, with underscores).
Each sequence is run on its own (no padding), log-probabilities from log_softmax of the logits.
"""
import argparse
import json
import os
import shutil

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file


def make(args):
    torch.manual_seed(args.seed)
    config = transformers.LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.1)
    model.save_pretrained(args.out, safe_serialization=True)


def seq_logprob(model, prompt, response):
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0].double()
    logp = F.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    return logp[len(prompt) - 1:].sum()


def loss(args):
    """One job; args carries policy, ref, data, kind, beta, loss, label_smoothing, length_normalize, out."""
    policy = transformers.LlamaForCausalLM.from_pretrained(args.policy, torch_dtype=torch.float64).train()
    ref = None
    if args.ref:
        ref = transformers.LlamaForCausalLM.from_pretrained(args.ref, torch_dtype=torch.float64).eval()
    lines = [json.loads(l) for l in open(args.data) if l.strip()]
    total = torch.zeros((), dtype=torch.float64)
    if args.kind == "sft":
        tokens = sum(len(l["response_ids"]) for l in lines)
        for l in lines:
            total = total - seq_logprob(policy, l["prompt_ids"], l["response_ids"])
        mean = total / tokens
    else:
        for l in lines:
            pc = seq_logprob(policy, l["prompt_ids"], l["chosen_ids"])
            pr = seq_logprob(policy, l["prompt_ids"], l["rejected_ids"])
            if "ref_chosen_logprob" in l:
                rc = torch.tensor(l["ref_chosen_logprob"], dtype=torch.float64)
                rr = torch.tensor(l["ref_rejected_logprob"], dtype=torch.float64)
            else:
                with torch.no_grad():
                    rc = seq_logprob(ref, l["prompt_ids"], l["chosen_ids"])
                    rr = seq_logprob(ref, l["prompt_ids"], l["rejected_ids"])
            if args.length_normalize:
                nc, nr = len(l["chosen_ids"]), len(l["rejected_ids"])
                pc, pr, rc, rr = pc / nc, pr / nr, rc / nc, rr / nr
            h = (pc - pr) - (rc - rr)
            if args.loss == "ipo":
                total = total + (h - 1 / (2 * args.beta)) ** 2
            else:
                ls = args.label_smoothing
                total = total - F.logsigmoid(args.beta * h) * (1 - ls) - F.logsigmoid(-args.beta * h) * ls
        mean = total / len(lines)
    mean.backward()
    os.makedirs(args.out, exist_ok=True)
    shutil.copy(os.path.join(args.policy, "config.json"), os.path.join(args.out, "config.json"))
    save_file({n: p.grad.float().contiguous() for n, p in policy.named_parameters()},
              os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    json.dump({"loss": mean.item()}, open(os.path.join(args.out, "result.json"), "w"))


def jobs(args):
    for job in json.load(open(args.jobs)):
        if "make" in job:
            make(argparse.Namespace(**job["make"]))
            continue
        loss(argparse.Namespace(**{**dict(ref=None, beta=0.1, loss="sigmoid", label_smoothing=0.0,
                                           length_normalize=False, kind="dpo"), **job}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "loss", "jobs"])
    ap.add_argument("--out")
    ap.add_argument("--jobs", help="JSON list of loss jobs (keys as the loss flags, with underscores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed-list", help="make: several models, OUT, OUT_1, ... seeded in turn")
    ap.add_argument("--policy")
    ap.add_argument("--ref")
    ap.add_argument("--data")
    ap.add_argument("--kind", default="dpo")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--loss", default="sigmoid")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--length-normalize", action="store_true")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(False)
    if args.command == "make" and args.out:
        for i, seed in enumerate(args.seed_list.split(",") if args.seed_list else [args.seed]):
            make(argparse.Namespace(out=args.out if i == 0 else args.out + "_" + str(i), seed=int(seed)))
    else:
        {"loss": loss, "jobs": jobs}[args.command](args)


if __name__ == "__main__":
    main()
