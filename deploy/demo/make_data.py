#!/usr/bin/env python3
"""Generates the bundled demo task for `make demo` (deterministic; the output is committed).

The task family has answers that a program can check, so the demo can measure held-out accuracy and
the judge's agreement with the truth:
  reverse: "Reverse the letters: c a t"      -> "t a c"
  upper:   "Uppercase the letters: d o g"    -> "D O G"
  add:     "Add: 3 + 4"                      -> "7"
  first:   "First letter of: h o u s e"      -> "h"
  double:  "Repeat twice: a b"               -> "a b , a b"
Files under --out:
  ift.jsonl   {prompt, response}                           instruction data (correct answers)
  eft.jsonl   {prompt, response, task, answer, score}      judge data: prompt is judge_template.txt
              filled with (task, answer); response is the judgement, ending in "Score: n" where n
              is 5 for a correct answer, 2 for a wrong one of the right length, 1 otherwise
  eval.jsonl  {prompt, answer}                             held-out tasks (words never in ift/eft)
  pretrain.jsonl {prompt, response}                        self-instruct task lists: the few-shot
              prompt the worker writes, and one more task as the response (the demo pretrains on
              these with ift and eft, as a base model would have seen lists of tasks)
  tokenizer.json                                           byte-level BPE trained on the above
  tokenizer_config.json                                    its BOS and EOS tokens
Usage: make_data.py [--out DIR] [--seed N] [--check]   (--check: regenerate in memory and compare)
"""
import argparse
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def spaced(word):
    """Words are written letter by letter ("c a t"): each letter is then its own token, which a
    0.9M-parameter model can learn to copy and reverse in minutes on a CPU (with whole words as
    byte-level BPE pieces it must first learn every piece's spelling, which it does not in that time)."""
    return " ".join(word)


def answer_of(kind, arg):
    if kind == "reverse":
        return spaced(arg[::-1])
    if kind == "upper":
        return spaced(arg.upper())
    if kind == "first":
        return arg[0]
    if kind == "double":
        return f"{spaced(arg)} , {spaced(arg)}"
    if kind == "add":
        a, b = arg
        return str(a + b)
    raise ValueError(kind)


PROMPT_FORMATS = {
    "reverse": "Reverse the letters: {}",
    "upper": "Uppercase the letters: {}",
    "first": "First letter of: {}",
    "double": "Repeat twice: {}",
}


def prompt_of(kind, arg):
    if kind == "add":
        return f"Add: {arg[0]} + {arg[1]}"
    return PROMPT_FORMATS[kind].format(spaced(arg))


def parse_task(prompt):
    """(kind, arg) of a prompt of the task family, or None: the inverse of prompt_of."""
    m = re.fullmatch(r"Add: ([0-9]) \+ ([0-9])", prompt.strip())
    if m:
        return "add", (int(m.group(1)), int(m.group(2)))
    for kind, fmt in PROMPT_FORMATS.items():
        m = re.fullmatch(re.escape(fmt).replace(r"\{\}", "{}").format(r"([a-z](?: [a-z])*)"), prompt.strip())
        if m:
            return kind, m.group(1).replace(" ", "")
    return None


def judge_score(answer, expected):
    if answer == expected:
        return 5
    if len(answer) == len(expected):
        return 2
    return 1


def judgement_text(answer, expected):
    score = judge_score(answer, expected)
    verdict = "correct" if score == 5 else "wrong"
    return f"expected {expected}; {verdict}.\nScore: {score}"


def wrong_answer(rng, kind, arg, expected):
    """A plausible wrong answer: the kind of mistake a small model makes."""
    choices = []
    if kind in ("reverse", "upper", "double", "first"):
        word = arg
        choices.append(spaced(word))                           # copied the input
        if len(word) > 1:
            i = rng.randrange(len(word))
            swapped = word[:i] + rng.choice(LETTERS) + word[i + 1:]
            choices.append(answer_of(kind, swapped))           # one letter off
            choices.append(answer_of(kind, word[:-1]))         # dropped a letter
    if kind == "add":
        a, b = arg
        choices += [str(a + b + 1), str(a + b - 1), str(a * b), str(a) + str(b)]
    choices = [c for c in choices if c != expected and c]
    return rng.choice(choices) if choices else expected + " x"


def make_items(rng, words, count):
    kinds = ["reverse", "upper", "first", "double", "add"]
    items = []
    for _ in range(count):
        kind = rng.choice(kinds)
        arg = (rng.randrange(10), rng.randrange(10)) if kind == "add" else rng.choice(words)
        items.append((kind, arg))
    return items


def random_words(rng, count, exclude=()):
    out, seen = [], set(exclude)
    while len(out) < count:
        w = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 5)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


SELF_INSTRUCT_HEADER = "Below are example tasks. Write one new task in the same style.\n\n"
SELF_INSTRUCT_MARKER = "### Task\n"


def generate(seed):
    rng = random.Random(seed)
    with open(os.path.join(HERE, "judge_template.txt"), encoding="utf-8") as f:
        template = f.read()
    train_words = random_words(rng, 400)
    eval_words = random_words(rng, 60, exclude=train_words)

    ift = []
    for kind, arg in make_items(rng, train_words, 1500):
        ift.append({"prompt": prompt_of(kind, arg), "response": answer_of(kind, arg)})

    eft = []
    for kind, arg in make_items(rng, train_words, 1200):
        expected = answer_of(kind, arg)
        answer = expected if rng.random() < 0.5 else wrong_answer(rng, kind, arg, expected)
        task = prompt_of(kind, arg)
        judge_prompt = template.replace("{prompt}", task, 1).replace("{response}", answer, 1)
        eft.append({"prompt": judge_prompt, "response": judgement_text(answer, expected),
                    "task": task, "answer": answer, "score": judge_score(answer, expected)})

    evals = []
    for kind, arg in make_items(rng, eval_words, 100):
        # Sums are few (100 in all), so held-out additions may also occur in training; the words
        # of the other kinds never do.
        evals.append({"prompt": prompt_of(kind, arg), "answer": answer_of(kind, arg), "kind": kind})
    # Task lists in the worker's self-instruct format (worker/loop/self_instruct.cc): the prompt is
    # the header and 2-4 example tasks, the response one more task of the same family. A base model
    # learns to continue such lists in pretraining; the tiny demo model learns it here.
    pretrain = []
    for _ in range(800):
        shots = [prompt_of(kind, arg) for kind, arg in make_items(rng, train_words, rng.randint(2, 4))]
        kind, arg = make_items(rng, train_words, 1)[0]
        prompt = SELF_INSTRUCT_HEADER + "".join(SELF_INSTRUCT_MARKER + shot + "\n\n" for shot in shots)
        pretrain.append({"prompt": prompt + SELF_INSTRUCT_MARKER, "response": prompt_of(kind, arg)})
    return {"ift.jsonl": ift, "eft.jsonl": eft, "eval.jsonl": evals, "pretrain.jsonl": pretrain}


def jsonl(rows):
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


# BOS starts every prompt; EOS ends every response (the plain chat template has no end-of-turn token).
TOKENIZER_CONFIG = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                    "tokenizer_class": "PreTrainedTokenizerFast"}


def train_tokenizer(files, out_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(files, trainer=trainer)
    tok.save(out_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "data"))
    parser.add_argument("--seed", type=int, default=20240118)
    parser.add_argument("--check", action="store_true", help="compare with the files in --out")
    parser.add_argument("--no-tokenizer", action="store_true")
    args = parser.parse_args()
    data = generate(args.seed)
    if args.check:
        bad = []
        for name, rows in data.items():
            path = os.path.join(args.out, name)
            with open(path, encoding="utf-8") as f:
                if f.read() != jsonl(rows):
                    bad.append(path)
        if bad:
            print("out of date:", ", ".join(bad), file=sys.stderr)
            return 1
        print("demo data up to date")
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name, rows in data.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(jsonl(rows))
    if not args.no_tokenizer:
        texts = [r["prompt"] + "\n" + r["response"] for r in data["ift.jsonl"] + data["eft.jsonl"]]
        texts += ["Below are example tasks. Write one new task in the same style.\n\n### Task\n"]
        train_tokenizer(texts, os.path.join(args.out, "tokenizer.json"))
        with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(TOKENIZER_CONFIG, f, indent=2, sort_keys=True)
            f.write("\n")
    print({k: len(v) for k, v in data.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
