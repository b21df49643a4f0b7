#!/usr/bin/env python3
"""Soak: N simulated separators (default 8) on one apheresisd for H hours of simulated time
(default 24) at a high speed, and the daemon's resources at every simulated hour.

    scripts/faults/soak.py [--bin DIR] [--separators N] [--hours H] [--speed S]
                           [--scenario FILE] [--keep-logs DIR] [--json FILE]

Every simulated hour (3600 / S seconds of real time) it reads, from /proc and the state directory:
VmRSS and RssAnon, open descriptors, threads, the store's size (the database, its WAL and its
shared-memory file) and the messages stored. It prints one Markdown row per hour, then a verdict
table: flat except for the data itself, taken as
  - RSS: the last quarter's highest RSS not above the second quarter's highest by more than
    --rss-slack-mb (the chart series of open runs fill in the first hours, then stay);
  - descriptors and threads: the second half's highest not above the first half's highest;
  - store: bytes per message added in each hour of the second half within a factor of 2 of the
    median of all hours (the store grows with the data and nothing else), and the WAL bounded.
Exit status 1 when a verdict fails or something could not be measured, 130 on Ctrl-C.
Python 3 standard library only.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "harness"))
from apheresis_harness import (  # noqa: E402  (the path above first)
    REAPER, Fleet, HarnessError, Interrupted, log, machine_description, message_count, open_fds, proc_status,
    status_mb)


def store_bytes(database):
    sizes = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            sizes[suffix or "db"] = os.path.getsize(database + suffix)
        except FileNotFoundError:
            sizes[suffix or "db"] = 0
    return sizes


def sample(fleet, hour):
    status = proc_status(fleet.daemon.pid)
    sizes = store_bytes(fleet.database())
    return {
        "hour": hour,
        "rss_mb": round(status_mb(status, "VmRSS"), 2),
        "anon_mb": round(status_mb(status, "RssAnon"), 2),
        "fds": open_fds(fleet.daemon.pid),
        "threads": int(status.get("Threads", "0")),
        "store_mb": round((sizes["db"] + sizes["-wal"]) / 1048576, 2),
        "wal_mb": round(sizes["-wal"] / 1048576, 2),
        "messages": message_count(fleet.database()),
        "runs_done": fleet.runs_done(),
    }


def verdicts(samples, rss_slack_mb, wal_limit_mb):
    rows = []
    n = len(samples)
    quarter = max(1, n // 4)
    second_quarter = samples[quarter:2 * quarter] or samples[:1]
    last_quarter = samples[n - quarter:]
    rss_mid, rss_end = max(s["rss_mb"] for s in second_quarter), max(s["rss_mb"] for s in last_quarter)
    rows.append(("RSS", f"{samples[0]['rss_mb']:.1f} -> {samples[-1]['rss_mb']:.1f} MB (max {max(s['rss_mb'] for s in samples):.1f})",
                 f"last quarter's highest {rss_end:.1f} MB vs second quarter's {rss_mid:.1f} MB (slack {rss_slack_mb:g} MB)",
                 rss_end <= rss_mid + rss_slack_mb))
    half = n // 2
    for key, label in (("fds", "open descriptors"), ("threads", "threads")):
        first, second = max(s[key] for s in samples[:half + 1]), max(s[key] for s in samples[half:])
        rows.append((label, f"{samples[0][key]} -> {samples[-1][key]} (min {min(s[key] for s in samples)})",
                     f"second half's highest {second} vs first half's {first}", second <= first))
    per_message = []
    for before, after in zip(samples, samples[1:]):
        grown, stored = after["store_mb"] - before["store_mb"], (after["messages"] or 0) - (before["messages"] or 0)
        per_message.append(grown * 1048576 / stored if stored > 0 else None)
    known = [p for p in per_message if p is not None and p > 0]
    if known:
        median = statistics.median(known)
        late = [p for p in per_message[len(per_message) // 2:] if p is not None]
        # A checkpoint moves WAL pages into the database in one hour and not the next: an hour's
        # figure may be 0 or double; the bound is on the store growing faster than the data.
        ok = all(p <= 2 * median for p in late)
        rows.append(("store bytes per message", f"median {median:.0f} B/message over {len(known)} hours",
                     f"second half's hours at most {max(late, default=0):.0f} B/message (bound: 2 x median)", ok))
    else:
        rows.append(("store bytes per message", "no messages stored", "", False))
    wal_max = max(s["wal_mb"] for s in samples)
    rows.append(("WAL", f"at most {wal_max:.1f} MB", f"bound {wal_limit_mb:g} MB (docs/store.md)", wal_max <= wal_limit_mb))
    return rows


def run(args):
    speed = args.speed
    hour_real = 3600.0 / speed
    log(f"soak: {args.separators} separators at {speed:g}x for {args.hours:g} simulated hours "
        f"({args.hours * hour_real / 60:.1f} min of real time)")
    fleet = Fleet(args.bin, args.scenario, args.separators, speed, "soak")
    samples = []
    try:
        fleet.start()
        started = time.monotonic()
        samples.append(sample(fleet, 0))
        for hour in range(1, int(args.hours) + 1):
            while time.monotonic() < started + hour * hour_real:
                fleet.alive()
                time.sleep(min(0.5, max(0.0, started + hour * hour_real - time.monotonic())))
            samples.append(sample(fleet, hour))
            s = samples[-1]
            log(f"soak: hour {hour:2d}: RSS {s['rss_mb']:.1f} MB, {s['fds']} fds, {s['threads']} threads, "
                f"store {s['store_mb']:.1f} MB, {s['messages']} messages")
        failures = fleet.simulator_failures()
    finally:
        fleet.close()
    return samples, failures


def main(argv):
    parser = argparse.ArgumentParser(description="Soak apheresisd with N simulated separators for H simulated hours.")
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"), help="directory of apheresisd and optia-sim")
    parser.add_argument("--separators", type=int, default=8)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--speed", type=float, default=120)
    parser.add_argument("--scenario", default=os.path.join(ROOT, "simulator", "scenarios", "normal-boy-10y.toml"))
    parser.add_argument("--rss-slack-mb", type=float, default=5.0)
    parser.add_argument("--wal-limit-mb", type=float, default=8.0)
    parser.add_argument("--keep-logs", help="copy each temporary directory's logs here before removing it")
    parser.add_argument("--json", help="write the samples and verdicts here")
    args = parser.parse_args(argv)
    if args.separators < 1 or args.hours < 2 or args.speed <= 0:
        parser.error("--separators >= 1, --hours >= 2 and --speed > 0")
    REAPER.keep_logs = os.path.abspath(args.keep_logs) if args.keep_logs else None

    def interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    machine = machine_description()
    try:
        samples, simulator_failures = run(args)
    except Interrupted as name:
        REAPER.cleanup()
        print(f"soak: interrupted ({name})", file=sys.stderr)
        return 130
    except HarnessError as error:
        REAPER.cleanup()
        print(f"soak: could not measure: {error}", file=sys.stderr)
        return 1
    finally:
        REAPER.cleanup()
    rows = verdicts(samples, args.rss_slack_mb, args.wal_limit_mb)
    if simulator_failures:
        rows.append(("simulators", f"{simulator_failures} exits with an error", "every run should end with status 0", False))
    print(f"\nSoak: {args.separators} separators, {args.hours:g} simulated hours at {args.speed:g}x; "
          f"{machine['nproc']} cores, {machine['cpu']}, {machine['date']}\n")
    # Simulated hours are counted on the wall clock x speed; "messages" shows the daemon kept pace
    # (an equal count each hour) rather than letting the separators' queues grow.
    print("| hour | RSS MB | RssAnon MB | fds | threads | store MB | WAL MB | messages | in the hour | runs done |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    previous = None
    for s in samples:
        added = "" if previous is None or s["messages"] is None or previous is None else s["messages"] - previous
        previous = s["messages"]
        print(f"| {s['hour']} | {s['rss_mb']:.1f} | {s['anon_mb']:.1f} | {s['fds']} | {s['threads']} | {s['store_mb']:.1f} | "
              f"{s['wal_mb']:.1f} | {s['messages']} | {added} | {s['runs_done']} |")
    print("\n| figure | measured | criterion | verdict |\n|---|---|---|---|")
    for figure, measured, criterion, ok in rows:
        print(f"| {figure} | {measured} | {criterion} | {'flat' if ok else 'NOT FLAT'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "args": vars(args), "samples": samples,
                       "verdicts": [{"figure": r[0], "measured": r[1], "criterion": r[2], "ok": r[3]} for r in rows]}, f, indent=1)
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
