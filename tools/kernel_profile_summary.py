#!/usr/bin/env python3
"""Summarises a kernel profiler's CSV (Nsight Compute: --csv --metrics gpu__time_duration.sum) of one profiled
decode step: the kernels in launch order with their times, then the time per kernel name, largest first.
Usage: kernel_profile_summary.py PROFILE.csv [--top N]"""
import argparse
import csv
import sys
from collections import defaultdict

_UNIT_NS = {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "s": 1e9, "second": 1e9}


def read_rows(path):
    """(kernel name, grid, block, ns) per profiled kernel, in launch order."""
    with open(path, newline="") as f:
        lines = [ln for ln in f if ln.startswith('"')]  # the profiler's own log lines are not quoted
    rows = []
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "ns").strip()
        if unit not in _UNIT_NS:
            sys.exit(f"unknown time unit {unit!r} in {path}")
        value = float(r["Metric Value"].replace(",", ""))
        rows.append((r["Kernel Name"], r.get("Grid Size", ""), r.get("Block Size", ""), value * _UNIT_NS[unit]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    rows = read_rows(a.csv)
    if not rows:
        sys.exit(f"{a.csv}: no gpu__time_duration.sum rows")
    total = sum(r[3] for r in rows)
    print(f"{len(rows)} kernels, {total / 1e3:.1f} us of kernel time (serialised by the profiler)")
    print("\n-- in launch order: us, grid, block, kernel")
    for name, grid, block, ns in rows:
        print(f"{ns / 1e3:9.2f}  {grid:>16} {block:>14}  {name}")
    by_name = defaultdict(lambda: [0, 0.0])
    for name, _, _, ns in rows:
        by_name[name][0] += 1
        by_name[name][1] += ns
    print("\n-- per kernel: total us, share, launches, kernel")
    for name, (n, ns) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[: a.top]:
        print(f"{ns / 1e3:9.2f}  {100 * ns / total:5.1f}%  {n:4d}  {name}")


if __name__ == "__main__":
    main()
