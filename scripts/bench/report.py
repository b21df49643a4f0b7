#!/usr/bin/env python3
"""Prints the table of figures of `make bench`: each figure beside its anchor, measured in
the same run, and the ratio between them (absolute times on a shared 2-core machine are
noisy; ratios much less so).

    report.py --jmh RESULTS.jmh.json --astm ASTM.json --counts COUNTS.json --stream FILE [--markdown]

Inputs: package-benchmark's JMH export of the run (ProtocolDecode, StoreAnchor),
scripts/bench/astm_anchor.py --json, scripts/bench/counts.py --json, and the decode stream.
"""

import argparse
import json
import os

GOAL_MB_PER_S = 100
GOAL_RATIO = 10


def load_jmh(path):
    """{(target, name): {"throughput": percentiles, "wall_us": percentiles, ...}}."""
    with open(path) as f:
        elements = json.load(f)
    results = {}
    for element in elements:
        _, _, target, name = element["benchmark"].split(".", 3)
        entry = {"throughput": element["primaryMetric"]["scorePercentiles"]}
        # The JMH exporter carries secondary metrics over from one benchmark to the next, so
        # only the wall clock is read here, and only for benchmarks that measure it.
        wall = element.get("secondaryMetrics", {}).get("Time (wall clock)")
        if wall:
            entry["wall_us"] = wall["scorePercentiles"]
        results[(target, name)] = entry
    return results


def find(results, target, name):
    for (t, n), entry in results.items():
        if t == target and n == name:
            return entry
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jmh", required=True)
    parser.add_argument("--astm", required=True)
    parser.add_argument("--counts")
    parser.add_argument("--stream", required=True)
    parser.add_argument("--markdown", action="store_true", help="a markdown table (for docs/performance.md)")
    args = parser.parse_args()

    results = load_jmh(args.jmh)
    with open(args.astm) as f:
        astm = json.load(f)
    counts = None
    if args.counts and os.path.exists(args.counts):
        with open(args.counts) as f:
            counts = json.load(f)
    size = os.path.getsize(args.stream)

    def mb_per_s(entry, percentile):
        # Wall clock in microseconds per pass over the stream.
        return size / entry["wall_us"][percentile]

    rows = []
    framing = find(results, "ProtocolDecode", "E1381-framing")
    decode = find(results, "ProtocolDecode", "E1381+E1394-decode")
    astm_p50, astm_best = astm["p50_mb_per_s"], astm["best_mb_per_s"]
    if framing:
        # No ratio: astm has no framing-only figure to set beside it.
        rows.append(["E1381 framing", f"{mb_per_s(framing, '50.0'):.0f} MB/s", f"{mb_per_s(framing, '0.0'):.0f} MB/s", "", ""])
    if decode:
        p50, best = mb_per_s(decode, "50.0"), mb_per_s(decode, "0.0")
        ratio = p50 / astm_p50
        met = "met" if p50 >= GOAL_MB_PER_S and ratio >= GOAL_RATIO else "NOT met"
        rows.append(["E1381 + E1394 decode", f"{p50:.0f} MB/s", f"{best:.0f} MB/s", f"{ratio:.1f}x astm",
                     f">= {GOAL_MB_PER_S} MB/s and >= {GOAL_RATIO}x astm: {met}"])
    rows.append([f"anchor: {astm['anchor']}", f"{astm_p50:.1f} MB/s", f"{astm_best:.1f} MB/s", "1x", ""])
    store = find(results, "StoreAnchor", "SQLite-commit-WAL-FULL")
    if store:
        rows.append(["anchor: raw SQLite single-row commit (WAL, FULL)", f"{store['throughput']['50.0']:,.0f} /s",
                     f"{store['throughput']['100.0']:,.0f} /s", "", "the ingest figure's anchor (>= 0.5x)"])

    header = ["figure", "p50", "best", "ratio (p50)", "goal"]
    print(f"Decode stream: {size:,} bytes ({os.path.relpath(args.stream)}); one pass = one iteration.")
    print_table(header, rows, args.markdown)

    if counts:
        print()
        print("Per pass, counted under valgrind (deterministic; one copy of the captures' messages):")
        count_rows = []
        for mode, label in (("framing", "E1381 framing"), ("decode", "E1381 + E1394 decode")):
            c = counts[mode]
            count_rows.append([label, f"{c['instructions_per_byte']}", f"{c['mallocs_per_message']}",
                               f"{c['bytes']:,} bytes, {c['messages']} messages"])
        if "framing" in counts and "decode" in counts:
            f, d = counts["framing"], counts["decode"]
            count_rows.append(["E1394 alone (difference)",
                               f"{(d['instructions'] - f['instructions']) / d['bytes']:.1f}",
                               f"{(d['mallocs'] - f['mallocs']) / d['messages']:.1f}", ""])
        print_table(["pass", "instructions/byte", "mallocs/message", "stream"], count_rows, args.markdown)


def print_table(header, rows, markdown):
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


if __name__ == "__main__":
    main()
