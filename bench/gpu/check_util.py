"""Helpers shared by the GPU check scripts in bench/gpu/: running a bundled program so that a failure
shows its whole output, and making the benchmark model and data with bench/train_step_reference.py."""
import os
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_or_exit(cmd, what):
    """Runs cmd; returns (stdout, stderr). On failure exits with the command and all of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout, proc.stderr


def make_train_data(python, out, preset="bench"):
    """A model and its SFT/DPO data in `out` (train_step_reference.py make), unless already there."""
    if not os.path.exists(os.path.join(out, "dpo.jsonl")):
        subprocess.run([python, os.path.join(BENCH_DIR, "train_step_reference.py"), "make", "--preset", preset,
                        "--out", out], check=True)
