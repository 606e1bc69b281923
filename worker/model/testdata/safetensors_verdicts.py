"""Independent reference for srlm's safetensors reader: Hugging Face's own `safetensors` package.

usage: safetensors_verdicts.py DIR
For every *.safetensors file in DIR (sorted by name), prints one line: "NAME OK" when safe_open
takes the file and every tensor in it loads, else "NAME ERR <the exception>".
"""
import os
import sys

from safetensors import safe_open


def verdict(path):
    try:
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                f.get_tensor(key)
        return "OK"
    except Exception as e:  # the reference's refusal, whatever its type
        return "ERR " + " ".join(repr(e).split())


def main():
    directory = sys.argv[1]
    for name in sorted(os.listdir(directory)):
        if name.endswith(".safetensors"):
            print(name, verdict(os.path.join(directory, name)), flush=True)


if __name__ == "__main__":
    main()
