#!/usr/bin/env python3
"""Prints each training run's evaluation and writes the path of the best run to OUTFILE.
Usage: pick_run.py OUTFILE RUNDIR [RUNDIR ...]   (score = arithmetic + tool-call correctness + mean passkey)"""
import json
import os
import sys


def acc(v):
    return v["accuracy"] if isinstance(v, dict) else v


def score(e):
    pk = e["passkey"]
    return e["arith_chat"]["accuracy"] + e["tool_chat"]["call_correct"] + sum(acc(v) for v in pk.values()) / len(pk)


def main():
    best, best_score = "", -1.0
    for d in sys.argv[2:]:
        try:
            e = json.load(open(os.path.join(d, "eval.json")))["eval"]
            s = score(e)
        except (OSError, KeyError, ValueError) as ex:
            print(d, "no complete evaluation:", repr(ex))
            continue
        print(d, "score %.3f" % s, "arith", e["arith_chat"]["accuracy"], e["arith_thinking"]["accuracy"],
              "tool", e["tool_chat"]["call_correct"], e["tool_thinking"]["call_correct"],
              "passkey", {k: acc(v) for k, v in e["passkey"].items()}, "mtp", e["mtp_acceptance"]["rate"])
        if s > best_score:
            best, best_score = d, s
    with open(sys.argv[1], "w") as f:
        f.write(best)


if __name__ == "__main__":
    main()
