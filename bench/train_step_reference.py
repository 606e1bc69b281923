"""Baseline for bench/train_step_bench: a plain PyTorch (transformers LlamaForCausalLM) training step.

make --out DIR [--preset bench|qwen2-0.5b]
                            the d_model 256, 4-layer Llama (vocab 4096) in the HF layout, plus
                            DIR/sft.jsonl and DIR/dpo.jsonl (token ids, DPO with precomputed
                            reference log-probs) that both sides train on. qwen2-0.5b: a random
                            model of Qwen2-0.5B's shape (494M parameters, saved in bf16) and longer
                            sequences, for the GPU's DPO-step utilisation (bench/gpu/dpo_mfu.py).
time --dir DIR --objective sft|dpo --batch B --steps N --threads T [--micro-batch M]
     [--device cpu|cuda] [--amp-bf16]
                            times N steps (after one warm-up) of: forward over the padded batch
                            (M examples at a time, gradients accumulated), masked loss, backward,
                            clip_grad_norm_, torch.optim.AdamW; prints JSON
                            {"tokens_per_second": ..., "step_seconds": ...}. --amp-bf16: float32
                            weights and optimizer, the forward under torch.autocast(bfloat16), which
                            is plain PyTorch's way to train in bfloat16 with float32 masters
                            (bench/gpu/dpo_mfu.py's baseline on the GPU).
"""
import argparse
import json
import os
import random
import time

import torch
import torch.nn.functional as F
import transformers

# preset: (model class, config, saved dtype, prompt length range, response length range, examples)
PRESETS = {
    "bench": ("Llama", dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                            tie_word_embeddings=False), torch.float32, (32, 64), (32, 64), 256),
    "qwen2-0.5b": ("Qwen2", dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                                 rope_theta=1000000.0, tie_word_embeddings=True), torch.bfloat16,
                   (128, 256), (128, 256), 1024),
}


def make(args):
    torch.manual_seed(0)
    cls, kwargs, dtype, prompt_len, response_len, count = PRESETS[args.preset]
    config = getattr(transformers, cls + "Config")(bos_token_id=1, eos_token_id=2, **kwargs)
    model = getattr(transformers, cls + "ForCausalLM")(config)
    model.to(dtype).save_pretrained(args.out, safe_serialization=True)
    rng = random.Random(0)
    ids = lambda lo, hi: [rng.randrange(3, 4096) for _ in range(rng.randint(lo, hi))]
    SEQ = dict(prompt=prompt_len, response=response_len)
    with open(os.path.join(args.out, "sft.jsonl"), "w") as sft, open(os.path.join(args.out, "dpo.jsonl"), "w") as dpo:
        for _ in range(count):
            p = ids(*SEQ["prompt"])
            sft.write(json.dumps({"prompt_ids": p, "response_ids": ids(*SEQ["response"])}) + "\n")
            dpo.write(json.dumps({"prompt_ids": p, "chosen_ids": ids(*SEQ["response"]),
                                  "rejected_ids": ids(*SEQ["response"]),
                                  "ref_chosen_logprob": -300.0, "ref_rejected_logprob": -310.0}) + "\n")


def batch_tensors(seqs):
    T = max(len(p) + len(r) for p, r in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    att = torch.zeros_like(ids)
    resp = torch.zeros_like(ids)
    for b, (p, r) in enumerate(seqs):
        ids[b, :len(p) + len(r)] = torch.tensor(p + r)
        att[b, :len(p) + len(r)] = 1
        resp[b, len(p):len(p) + len(r)] = 1
    return ids, att, resp


def seq_logprobs(model, ids, att, resp):
    logits = model(input_ids=ids, attention_mask=att).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None])[..., 0]
    return (logp * resp[:, 1:]).sum(1)


def micro_batch_loss(model, chunk, objective, device, amp):
    """One micro-batch's loss, summed over its examples (not yet divided), and its attention mask."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        if objective == "sft":
            ids, att, resp = (t.to(device) for t in batch_tensors([(l["prompt_ids"], l["response_ids"]) for l in chunk]))
            return -seq_logprobs(model, ids, att, resp).sum(), att
        seqs = [(l["prompt_ids"], l["chosen_ids"]) for l in chunk] + [(l["prompt_ids"], l["rejected_ids"]) for l in chunk]
        ids, att, resp = (t.to(device) for t in batch_tensors(seqs))
        lp = seq_logprobs(model, ids, att, resp)
        n = len(chunk)
        ref = torch.tensor([l["ref_chosen_logprob"] for l in chunk] + [l["ref_rejected_logprob"] for l in chunk],
                           device=device)
        h = (lp[:n] - lp[n:]) - (ref[:n] - ref[n:])
        return -F.logsigmoid(0.1 * h).sum(), att


def time_steps(args):
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.dir, dtype=torch.float32).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    lines = [json.loads(l) for l in open(os.path.join(args.dir, args.objective + ".jsonl"))]
    micro = args.micro_batch or args.batch
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tokens_total, seconds = 0, 0.0
    for step in range(args.steps + 1):
        chunk = lines[step * args.batch:(step + 1) * args.batch]
        # SFT: the mean over the step's response tokens; DPO: the mean over its pairs.
        divisor = sum(len(l["response_ids"]) for l in chunk) if args.objective == "sft" else len(chunk)
        sync()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_tokens = 0
        for i in range(0, len(chunk), micro):  # gradients accumulate over the micro-batches
            loss, att = micro_batch_loss(model, chunk[i:i + micro], args.objective, device, args.amp_bf16)
            (loss / divisor).backward()
            step_tokens += int(att.sum())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        if step > 0:  # step 0 warms up
            seconds += time.perf_counter() - start
            tokens_total += step_tokens
    print(json.dumps({"tokens_per_second": tokens_total / seconds, "step_seconds": seconds / args.steps}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "time"])
    ap.add_argument("--out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="bench")
    ap.add_argument("--dir")
    ap.add_argument("--objective", default="sft")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--micro-batch", type=int, default=0, help="examples per forward/backward (0: the whole batch)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp-bf16", action="store_true", help="float32 weights, bfloat16 autocast forward")
    args = ap.parse_args()
    make(args) if args.command == "make" else time_steps(args)


if __name__ == "__main__":
    main()
