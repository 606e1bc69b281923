"""Independent reference for srlm's model tests, computed with Hugging Face transformers.

make  --kind K1,K2 --out ROOT : for each kind K, creates in ROOT/K a tiny random model with a fixed seed, saves it in the
                           HF layout, and writes ROOT/K/reference.safetensors with input_ids,
                           logits (float32), a padded batch with per-sequence response log-prob sums,
                           and 32 greedy tokens.
check --dir DIR          : loads DIR (saved by srlm) with transformers, compares its logits for
                           DIR/srlm_reference.safetensors:input_ids with the stored srlm logits.
                           Exit code 0 when they agree (rtol 1e-4, atol 1e-5).
check_logprobs --dir DIR --jsonl OUT : recomputes the logprob of each line of `srlm-worker logprobs`
                           output with transformers; exit code 0 when all agree.
"""
import argparse
import sys

import torch
from safetensors.torch import load_file, save_file
import transformers

KINDS = {
    # kind: (class name, config kwargs)
    "llama": ("Llama", dict(num_key_value_heads=4, tie_word_embeddings=False)),
    "llama_gqa_tied": ("Llama", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "llama3_scaling": ("Llama", dict(num_key_value_heads=2, tie_word_embeddings=False, max_position_embeddings=256,
                                     rope_theta=500000.0,
                                     rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                       high_freq_factor=4.0, original_max_position_embeddings=16))),
    "qwen2": ("Qwen2", dict(num_key_value_heads=2, tie_word_embeddings=False)),
    "qwen2_tied": ("Qwen2", dict(num_key_value_heads=1, tie_word_embeddings=True)),
}


def make(kind, out, seed):
    cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    kwargs = dict(vocab_size=97, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1,
                  eos_token_id=2)
    kwargs.update(extra)
    config = getattr(transformers, cls + "Config")(**kwargs)
    model = getattr(transformers, cls + "ForCausalLM")(config).eval()
    with torch.no_grad():  # larger weights than the 0.02 default so that logits differ visibly
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.15)
            elif p.dim() == 1 and "bias" in str(p):
                pass
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    model.save_pretrained(out)
    g = torch.Generator().manual_seed(seed + 1)
    input_ids = torch.randint(3, 97, (2, 24), generator=g)
    with torch.no_grad():
        logits = model(input_ids).logits.float()
        # Padded batch: right-padded rows of different lengths; response = positions >= prompt_len.
        lengths = [24, 15]
        prompt_lens = [10, 6]
        attn = torch.zeros(2, 24, dtype=torch.long)
        resp = torch.zeros(2, 24, dtype=torch.long)
        sums = []
        for b in range(2):
            attn[b, :lengths[b]] = 1
            resp[b, prompt_lens[b]:lengths[b]] = 1
            row = input_ids[b:b + 1, :lengths[b]]  # unpadded, alone
            lp = torch.log_softmax(model(row).logits.float(), -1)[0, :-1]
            tok = lp.gather(-1, row[0, 1:, None])[:, 0]
            sums.append(tok[prompt_lens[b] - 1:].sum())
        # Greedy decoding, 32 steps, from a 7-token prompt (full recompute: no cache involved).
        seq = input_ids[:1, :7]
        for _ in range(32):
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    save_file({"input_ids": input_ids.contiguous(), "logits": logits.contiguous(), "padded_attention_mask": attn,
               "padded_response_mask": resp, "padded_logprob_sums": torch.stack(sums).float(),
               "greedy_ids": seq[0, 7:].contiguous()}, f"{out}/reference.safetensors")


def check_logprobs(directory, jsonl):
    """Recomputes each line's logprob (prompt_ids/response_ids) with transformers."""
    import json
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    bad = 0
    n = 0
    for line in open(jsonl):
        d = json.loads(line)
        ids = torch.tensor([d["prompt_ids"] + d["response_ids"]])
        p = len(d["prompt_ids"])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits.float()[0, :-1], -1)
        expected = lp.gather(-1, ids[0, 1:, None])[p - 1:, 0].sum().item()
        ok = abs(expected - d["logprob"]) <= 1e-4 * abs(expected) + 1e-4 and d["num_tokens"] == len(d["response_ids"])
        print(f"line {n}: transformers {expected:.6f} srlm {d['logprob']:.6f} {'ok' if ok else 'MISMATCH'}")
        bad += not ok
        n += 1
    return 0 if bad == 0 and n > 0 else 1


def check(directory):
    ref = load_file(f"{directory}/srlm_reference.safetensors")
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(ref["input_ids"].long()).logits.float()
    expected = ref["logits"].float()
    ok = torch.allclose(logits, expected, rtol=1e-4, atol=1e-5)
    print(f"max abs difference {(logits - expected).abs().max().item():.3g}, allclose(rtol=1e-4, atol=1e-5): {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["make", "check", "check_logprobs"])
    p.add_argument("--jsonl")
    p.add_argument("--kind", default="llama")
    p.add_argument("--out")
    p.add_argument("--dir")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    if a.mode == "make":
        for kind in a.kind.split(","):
            make(kind, f"{a.out}/{kind}", a.seed)
        sys.exit(0)
    if a.mode == "check_logprobs":
        sys.exit(check_logprobs(a.dir, a.jsonl))
    sys.exit(check(a.dir))
