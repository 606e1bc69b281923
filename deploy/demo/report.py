#!/usr/bin/env python3
"""The demo's table: what each self-rewarding iteration produced and how good each model is.

Per iteration t (M_t generated that iteration's prompts and pairs and judged them):
  prompts        the iteration's prompt pool (the coordinator's count, from the recorded status)
  pairs          preference pairs accepted (RUN/pairs/iter-<t>.jsonl, exported by run.sh)
  chosen right   of the pairs whose prompt is a task of the demo family, the share whose chosen
                 answer is the right one; rejected wrong: the share whose rejected answer is wrong
Per model M_t, measured on the held-out set (words never seen in training), greedy decoding:
  accuracy       answers exactly right
  judge parsed   judgements of M_t (as a judge, with the run's template) that end in a valid score
  judge agrees   of the parsed judgements of one right and one wrong answer per held-out task, the
                 share that score the right answer 4-5 and the wrong one 1-3

usage: report.py --run-dir RUN --worker BIN --iterations N [--data DIR] [--template FILE]
Writes RUN/report.md and prints it.
"""
import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_data  # noqa: E402  (the task family: answers and plausible wrong answers)

SCORE = re.compile(r"Score:\s*([0-9]+(?:\.[0-9]+)?)")


def expected_answer(prompt):
    """The right answer of a demo-family task, or None for any other prompt."""
    task = make_data.parse_task(prompt)
    return make_data.answer_of(*task) if task else None


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def generate(worker, model, prompts, max_new_tokens, workdir, name):
    """Greedy responses of `model` to `prompts` through `srlm-worker generate`."""
    src = os.path.join(workdir, name + ".in.jsonl")
    dst = os.path.join(workdir, name + ".out.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    subprocess.run([worker, "generate", "--model", model, "--input", src, "--output", dst, "--device", "cpu",
                    "--temperature", "0", "--max-new-tokens", str(max_new_tokens), "--batch-size", "64"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [row["response"] for row in read_jsonl(dst)]


def evaluate_model(worker, model, evals, template, workdir, name):
    answers = generate(worker, model, [e["prompt"] for e in evals], 16, workdir, name + "-answers")
    right = sum(a.strip() == e["answer"] for a, e in zip(answers, evals))
    by_kind = {}
    for a, e in zip(answers, evals):
        got, total = by_kind.get(e["kind"], (0, 0))
        by_kind[e["kind"]] = (got + (a.strip() == e["answer"]), total + 1)
    # The judge: one right and one plausible wrong answer per task, fixed by the task's position.
    judge_prompts, truths = [], []
    for i, e in enumerate(evals):
        kind, arg = make_data.parse_task(e["prompt"])
        wrong = make_data.wrong_answer(random.Random(i), kind, arg, e["answer"])
        for answer, truth in ((e["answer"], True), (wrong, False)):
            judge_prompts.append(template.replace("{prompt}", e["prompt"], 1).replace("{response}", answer, 1))
            truths.append(truth)
    judgements = generate(worker, model, judge_prompts, 32, workdir, name + "-judge")
    parsed = agree = 0
    for text, truth in zip(judgements, truths):
        scores = SCORE.findall(text)
        if not scores or not 0 <= float(scores[-1]) <= 5:
            continue
        parsed += 1
        agree += (float(scores[-1]) >= 4) == truth
    return {"accuracy": right / len(evals), "by_kind": by_kind, "judge_parsed": parsed / len(judgements),
            "judge_agrees": agree / parsed if parsed else 0.0}


def iteration_counts(run_dir, iteration):
    prompts = 0
    status_path = os.path.join(run_dir, "status.jsonl")
    if os.path.exists(status_path):
        for s in read_jsonl(status_path):
            if int(s.get("iteration", 0)) == iteration:
                prompts = max(prompts, int(s.get("prompts", {}).get("accepted", 0)))
    # deploy/mpirun/run.sh exports every iteration's pairs when the run is done.
    pairs_path = os.path.join(run_dir, "pairs", f"iter-{iteration}.jsonl")
    pairs = read_jsonl(pairs_path) if os.path.exists(pairs_path) else []
    known = [(p, expected_answer(p["prompt"])) for p in pairs]
    known = [(p, a) for p, a in known if a is not None]
    chosen_right = sum(p["chosen"].strip() == a for p, a in known)
    rejected_wrong = sum(p["rejected"].strip() != a for p, a in known)
    return {"prompts": prompts, "pairs": len(pairs), "known": len(known),
            "chosen_right": chosen_right / len(known) if known else 0.0,
            "rejected_wrong": rejected_wrong / len(known) if known else 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--worker", required=True, help="the srlm-worker binary")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--start-model", default="", help="M_0 (default: RUN/pretrained)")
    parser.add_argument("--data", default=os.path.join(HERE, "data"))
    parser.add_argument("--template", default=os.path.join(HERE, "judge_template.txt"))
    args = parser.parse_args()
    evals = read_jsonl(os.path.join(args.data, "eval.jsonl"))
    with open(args.template, encoding="utf-8") as f:
        template = f.read()
    models = [("M0 (pretrained)", args.start_model or os.path.join(args.run_dir, "pretrained"))]
    models.append(("M1 (SFT)", os.path.join(args.run_dir, "checkpoints", "iter-1")))
    for t in range(1, args.iterations + 1):
        models.append((f"M{t + 1} (DPO {t})", os.path.join(args.run_dir, "checkpoints", f"iter-{t + 1}")))

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for i, (label, path) in enumerate(models):
            if not os.path.exists(os.path.join(path, "config.json")):
                rows.append((label, None, None))
                continue
            quality = evaluate_model(args.worker, path, evals, template, workdir, f"m{i}")
            # Model M_t (t >= 1) generated iteration t's data.
            counts = iteration_counts(args.run_dir, i) if 1 <= i <= args.iterations else None
            rows.append((label, quality, counts))

    kinds = ["add", "first", "upper", "double", "reverse"]
    lines = ["| model | held-out accuracy | by task (" + " / ".join(kinds) + ") | judge parsed | judge agrees "
             "| iteration it ran | prompts | pairs | chosen right | rejected wrong |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    for i, (label, q, c) in enumerate(rows):
        if q is None:
            lines.append(f"| {label} | (no checkpoint) | | | | | | | | |")
            continue
        it = f"{i}" if c else "-"
        counts = (f"{c['prompts']} | {c['pairs']} | {pct(c['chosen_right'])} | {pct(c['rejected_wrong'])}"
                  if c else "- | - | - | -")
        by_task = " / ".join("%d/%d" % q["by_kind"].get(k, (0, 0)) for k in kinds)
        lines.append(f"| {label} | {pct(q['accuracy'])} | {by_task} | {pct(q['judge_parsed'])} | {pct(q['judge_agrees'])} "
                     f"| {it} | {counts} |")
    accuracies = [q["accuracy"] for _, q, _ in rows if q]
    if len(accuracies) >= 3:
        sft, last = accuracies[1], accuracies[-1]
        n = len(evals)
        # Two standard errors of a difference of two accuracies on n tasks: a change smaller than
        # this is what reseeding the same run can give, so it is not called an improvement.
        noise = 2 * math.sqrt((sft * (1 - sft) + last * (1 - last)) / max(1, n))
        verdict = ("improved" if last - sft > noise else "got worse" if sft - last > noise
                   else "did not change beyond noise")
        lines.append("")
        lines.append(f"Self-rewarding {verdict}: held-out accuracy {pct(sft)} after SFT -> {pct(last)} after "
                     f"{len(accuracies) - 2} iteration(s) ({n} held-out tasks; differences under "
                     f"{pct(noise)}, two standard errors, are noise).")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.run_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
