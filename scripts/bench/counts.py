#!/usr/bin/env python3
"""Instructions and allocations of one decode pass, counted under valgrind, and a check of
them against the committed baseline (Benchmarks/Thresholds/counts.json).

    counts.py [--bench-count PATH] [--check] [--update] [--json OUT]

Why valgrind: these machines (KVM guests) have no hardware performance counters, so
package-benchmark's `instructions` metric reads nothing; callgrind counts instructions
exactly, and memcheck counts every malloc. Both runs are deterministic: the same code and
toolchain give the same counts on every run, so a small tolerance catches real changes and
no run is ever judged on time.

bench-count runs the pass 1 and 2 times; the difference is one warm pass, without start-up,
building the stream or one-time costs.
"""

import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASELINE = os.path.join(ROOT, "Benchmarks", "Thresholds", "counts.json")
MODES = ["framing", "decode"]
# Allowed growth before the check fails. Instruction counts move a little with the toolchain
# and glibc; allocation counts do not move at all unless the code changes.
TOLERANCE = {"instructions": 0.03, "mallocs": 0.01}


def run(command):
    # Swift seeds its hashing per process; a fixed seed makes dictionary lookups, and so the
    # instruction counts, the same from run to run.
    env = dict(os.environ, SWIFT_DETERMINISTIC_HASHING="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"counts: {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result


def instructions(binary, mode, passes):
    result = run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", binary, mode, str(passes)])
    match = re.search(r"Collected : (\d+)", result.stderr)
    if not match:
        sys.exit(f"counts: no instruction count in callgrind's output:\n{result.stderr}")
    return int(match.group(1)), result.stdout


def mallocs(binary, mode, passes):
    result = run(["valgrind", "--tool=memcheck", "--leak-check=no", binary, mode, str(passes)])
    match = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes allocated", result.stderr)
    if not match:
        sys.exit(f"counts: no heap summary in memcheck's output:\n{result.stderr}")
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def measure(binary):
    figures = {}
    for mode in MODES:
        ir1, out = instructions(binary, mode, 1)
        ir2, _ = instructions(binary, mode, 2)
        m1, b1 = mallocs(binary, mode, 1)
        m2, b2 = mallocs(binary, mode, 2)
        fields = dict(item.split("=") for item in out.split()[1:])
        size, messages = int(fields["bytes"]), int(fields["messages"])
        figures[mode] = {
            "bytes": size,
            "messages": messages,
            "instructions": ir2 - ir1,
            "mallocs": m2 - m1,
            "malloc_bytes": b2 - b1,
            "instructions_per_byte": round((ir2 - ir1) / size, 1),
            "mallocs_per_message": round((m2 - m1) / messages, 1),
        }
    return figures


def print_figures(figures):
    print(f"{'pass':<10}{'bytes':>8}{'messages':>10}{'instructions':>15}{'instr/byte':>12}{'mallocs':>10}{'mallocs/msg':>13}")
    for mode, f in figures.items():
        print(f"{mode:<10}{f['bytes']:>8}{f['messages']:>10}{f['instructions']:>15,}{f['instructions_per_byte']:>12}"
              f"{f['mallocs']:>10,}{f['mallocs_per_message']:>13}")


def check(figures, baseline):
    """Fails on growth beyond the tolerance; reports improvements so the baseline can follow."""
    failed = False
    for mode, f in figures.items():
        base = baseline.get(mode)
        if base is None or base["bytes"] != f["bytes"]:
            print(f"counts: the baseline has no {mode} figures for a {f['bytes']}-byte stream: run `make bench-baseline`")
            failed = True
            continue
        for metric, tolerance in TOLERANCE.items():
            old, new = base[metric], f[metric]
            change = (new - old) / old if old else 0.0
            verdict = "ok"
            if change > tolerance:
                verdict = f"REGRESSION (allowed +{tolerance:.0%})"
                failed = True
            elif change < -tolerance:
                verdict = "better: update the baseline (make bench-baseline)"
            print(f"  {mode:<8} {metric:<13} baseline {old:>12,}  now {new:>12,}  {change:+.2%}  {verdict}")
    return not failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench-count", default=os.path.join(ROOT, ".build-bench", "release", "bench-count"))
    parser.add_argument("--check", action="store_true", help="compare with the baseline, exit 1 on a regression")
    parser.add_argument("--update", action="store_true", help="write the figures as the new baseline")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    figures = measure(args.bench_count)
    print_figures(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    if args.update:
        os.makedirs(os.path.dirname(BASELINE), exist_ok=True)
        with open(BASELINE, "w") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")
        print(f"counts: baseline written to {os.path.relpath(BASELINE, ROOT)}")
    if args.check:
        with open(BASELINE) as f:
            baseline = json.load(f)
        if not check(figures, baseline):
            sys.exit("counts: instructions or allocations grew beyond the tolerance")
        print("counts: within the baseline")


if __name__ == "__main__":
    main()
