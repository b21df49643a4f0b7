#!/usr/bin/env python3
"""Two daemons, one store: a second apheresisd on a state directory in use must be refused (exit 69,
naming the first and the store) and never write to it; the lock must not outlive its holder.

    scripts/faults/two_daemons.py [--bin DIR] [--rounds N] [--seed S] [--speed X]

One optia-sim over TCP plays a run at --speed; daemons are started on one state directory:
  while running    a daemon holds the store; a second one is started at a random moment: refused?
  racing starts    the holder is stopped; two daemons are started at the same instant: exactly one
                   runs and the other is refused
  after kill -9    the holder is killed; a new daemon started at once must run (no stale lock)
Then the run is played to its end and the store is checked: every sequence of the run stored once
(`done: RUN-ID last-sequence N` of the simulator), PRAGMA integrity_check ok. A daemon that was let
in beside another would have answered the same separator and written the same store.
Prints one Markdown table; exit 1 when any check fails, 130 on Ctrl-C. Python 3 standard library only.
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "harness"))
from apheresis_harness import (  # noqa: E402  (the path above first)
    REAPER, HarnessError, Interrupted, Simulator, check_config, clean_env, log, read_text, store_facts, wait_until,
    write_config)

REFUSAL = re.compile(r"another apheresisd, process (\d+) \(apheresisd\), is using the store (\S+);")


class Attempt:
    """One apheresisd started on the shared configuration, its stderr in its own file."""

    def __init__(self, bin_dir, directory, config, label):
        self.err = os.path.join(directory, f"{label}.err")
        with open(self.err, "wb") as err:
            self.process = REAPER.spawn([os.path.join(bin_dir, "apheresisd"), "--config", config],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                        env=clean_env(), cwd=directory)

    def outcome(self, timeout=30):
        """'running' once the store is open and the API listens, or ('refused', holder pid) / ('failed', status)."""
        def settled():
            text = read_text(self.err)
            if "api: listening on" in text:
                return ("running", None)
            if self.process.poll() is not None:
                match = REFUSAL.search(text)
                if self.process.returncode == 69 and match:
                    return ("refused", int(match.group(1)), "store open:" in text)
                return ("failed", self.process.returncode)
            return None
        return wait_until(settled, timeout, "a daemon to run or be refused", poll=0.02)

    def stop(self, sig=signal.SIGTERM):
        REAPER.stop(self.process, grace=30, sig=sig)
        return self.process.returncode


def run(args):
    rng = random.Random(args.seed)
    directory = REAPER.tempdir("apheresisd-two-daemons-")
    with open(os.path.join(ROOT, "simulator", "scenarios", "normal-boy-10y.toml")) as f:
        scenario = f.read()
    simulator = Simulator(args.bin, scenario, directory, 1, args.speed)
    simulator.start()
    simulator.wait_port()
    state = os.path.join(directory, "state")
    config = os.path.join(directory, "apheresisd.toml")
    write_config(config, state, "info", [
        f'[[device]]\nname = "optia-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {simulator.port}\n'])
    check_config(args.bin, config)
    rows = {name: {"rounds": 0, "refused": 0, "ran": 0, "wrong": []} for name in ("while running", "racing starts", "after kill -9")}
    label = iter(range(1, 10_000))

    holder = Attempt(args.bin, directory, config, f"daemon-{next(label)}")
    if holder.outcome()[0] != "running":
        raise HarnessError("the first daemon did not start" + read_text(holder.err)[-2000:])
    for _ in range(args.rounds):
        # While running: a second daemon at a random moment of the run.
        time.sleep(rng.uniform(0.0, 1.5))
        row = rows["while running"]
        row["rounds"] += 1
        second = Attempt(args.bin, directory, config, f"daemon-{next(label)}")
        result = second.outcome()
        if result[0] == "refused" and result[1] == holder.process.pid and not result[2]:
            row["refused"] += 1
        else:
            row["wrong"].append(f"{os.path.basename(second.err)}: {result}")
            if result[0] == "running":
                second.stop()
        # Racing starts: the holder stops; two start together; exactly one may run.
        row = rows["racing starts"]
        row["rounds"] += 1
        holder.stop()
        pair = [Attempt(args.bin, directory, config, f"daemon-{next(label)}") for _ in range(2)]
        results = [a.outcome() for a in pair]
        running = [a for a, r in zip(pair, results) if r[0] == "running"]
        refused = [r for r in results if r[0] == "refused" and not r[2]]
        if len(running) == 1 and len(refused) == 1 and refused[0][1] == running[0].process.pid:
            row["refused"] += 1
            row["ran"] += 1
            holder = running[0]
        else:
            row["wrong"].append(f"{[os.path.basename(a.err) for a in pair]}: {results}")
            for extra in running[1:]:
                extra.stop()
            if not running:
                raise HarnessError(f"racing starts: neither daemon runs: {results}")
            holder = running[0]
        # After kill -9: the lock goes with its holder.
        row = rows["after kill -9"]
        row["rounds"] += 1
        holder.stop(sig=signal.SIGKILL)
        successor = Attempt(args.bin, directory, config, f"daemon-{next(label)}")
        result = successor.outcome()
        if result[0] == "running":
            row["ran"] += 1
            holder = successor
        else:
            row["wrong"].append(f"{os.path.basename(successor.err)}: {result}")
            raise HarnessError(f"after kill -9 the store stayed locked: {result}")
        log(f"round {rows['while running']['rounds']}: ok so far")

    # The run to its end (the simulator exits 0 once every message is acknowledged), then the store.
    wait_until(lambda: simulator.process.poll() is not None, 600, "the simulator to finish its run", poll=0.5,
               process=None, log_file=simulator.err)
    if simulator.process.returncode != 0:
        raise HarnessError(f"the simulator exited with status {simulator.process.returncode}" + read_text(simulator.err)[-2000:])
    holder.stop()
    done = re.search(r"^done: (\S+) last-sequence (\d+)$", read_text(simulator.out), re.M)
    if not done:
        raise HarnessError("no 'done:' line from the simulator")
    last = int(done.group(2))
    facts = store_facts(os.path.join(state, "apheresisd.sqlite"), simulator.serial)
    missing = sorted(set(range(1, last + 1)) - facts["distinct"])
    return rows, last, facts, missing, directory


def main(argv):
    parser = argparse.ArgumentParser(description="Two daemons on one store: refused, never interleaved.")
    parser.add_argument("--bin", default=None, help="directory of apheresisd and optia-sim (default: swift build --show-bin-path)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--speed", type=float, default=120)
    args = parser.parse_args(argv)
    if args.bin is None:
        args.bin = subprocess.run(["swift", "build", "--show-bin-path"], capture_output=True, text=True, cwd=ROOT,
                                  check=True).stdout.strip()
    args.bin = os.path.abspath(args.bin)

    def interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    try:
        rows, last, facts, missing, _ = run(args)
    except Interrupted as name:
        REAPER.cleanup()
        print(f"two daemons: interrupted ({name})", file=sys.stderr)
        return 130
    except HarnessError as error:
        REAPER.cleanup()
        print(f"two daemons: could not complete: {error}", file=sys.stderr)
        return 1
    finally:
        REAPER.cleanup()
    print(f"\nTwo daemons, one store: {args.rounds} rounds, seed {args.seed}, speed {args.speed:g}x\n")
    print("| case | rounds | refused with exit 69 naming the holder | took the store | wrong |")
    print("|---|---:|---:|---:|---|")
    ok = True
    for name, row in rows.items():
        ok = ok and not row["wrong"]
        print(f"| {name} | {row['rounds']} | {row['refused']} | {row['ran']} | {'; '.join(row['wrong']) or 'none'} |")
    store_ok = not missing and facts["repeats"] == 0 and facts["integrity"] == "ok"
    ok = ok and store_ok
    print(f"\n| store after the run | sequences 1..{last} | missing | stored twice | integrity_check | verdict |")
    print("|---|---:|---:|---:|---|---|")
    print(f"| {'one writer' if store_ok else 'NOT ONE WRITER'} | {len(facts['distinct'])} | {len(missing)} | "
          f"{facts['repeats']} | {facts['integrity']} | {'pass' if ok else 'FAIL'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
