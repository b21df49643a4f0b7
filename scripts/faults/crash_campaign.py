#!/usr/bin/env python3
"""The kill -9 campaign (issue 13): processes killed with SIGKILL at random points, then proof that
nothing was lost, stored twice or changed.

    scripts/faults/crash_campaign.py [--kills N] [--parts daemon,simulator,product] [--seed S]
                                     [--bin DIR] [--speed X] [--scenarios A,B,...] [--keep]

Parts:
  daemon     one optia-sim over TCP (state file, --speed X, the scenarios in turn, a new run each time
             one ends) and one apheresisd on a store in a temporary directory. The daemon is killed N
             times and started again each time: at random moments while messages flow, 0-300 ms after
             the exec (start-up), just after the log says the store is open (restoring the open
             runs), and while the separator is idle between runs. Each kill's phase is read from the
             daemon's log (docs/daemon.md: 'store open:', 'watching run ... again', 'link open:',
             'link up:', 'link down:') and from the store's message count 30 ms before the kill
             (flowing or idle). First, 8 % of the kills land while a new store is made (migrations,
             audit key, anchor file, first keyed open), each on a store of its own that the daemon
             must then open and report ready on.
  simulator  the same, but optia-sim is killed N times: 0-50 ms after the exec (startup: it reads its
             state file), just after it listens (resume: the run replayed to where it stopped, the
             host reconnecting), mid-run, and after its run ended while it still delivers its queue
             (draining); the daemon stays up.
  product    a store with closed runs (export files through the daemon), then `apheresisctl product
             create`, `product lab`, `product release` and `product labels` for one run after another,
             N of them killed: 0-50 ms after the exec, at a random moment of the command's life, as
             soon as the step's transaction shows in the store's WAL (read from outside: its frames and
             commit frame), or at its first byte of output. Phases: startup (before the store is
             open), verifying (store open, password being checked), in-commit (the transaction's
             frames written, no commit frame), committed-unanchored (committed, its head not yet in the
             audit anchor file), after-commit.

The checks of the daemon and simulator parts compare the store with a reference: the same scenarios
and seed played once, without kills, into a fresh store (the simulator is deterministic). For every
run: live messages with sequence numbers exactly first..last, none lost, none stored twice (by
sequence or by text), each byte for byte as in the reference and under the same run; the run closed
by its RUN_END; the limit alarms (everything but LINK_DOWN, STALE_TELEMETRY and STORE_WRITE_FAILED,
which the kills themselves cause) raised and escalated by the same messages as in the reference, and
none left active on a closed run; the rows derived from the messages (samples, the events a message
made, telemetry gaps, the run's audit entries) as in the reference; nothing quarantined that the
reference did not; `apheresisctl audit verify` intact; `PRAGMA integrity_check` ok. After the last kill
everything settles: the simulator finishes (it exits 0 once every message is acknowledged) and the
daemon stops on SIGTERM with status 0.

The product part checks DIN sequences 1..P (no gap, none twice, the counter equal), every product
complete (its product row, lab values, computation with all its units, signature and one label per
unit, each with its audit entry), what each finished `product create` printed equal to the store,
`apheresisctl audit verify` intact and `PRAGMA integrity_check` ok.

Prints one Markdown table (a row per part) and the findings. Exit status 0 when every part passed,
1 on a finding (lost, duplicated, mismatched, integrity), 2 when a part could not be run, 130 on
Ctrl-C. The temporary directory of a failed part (logs, stores, state files) and the reference are
kept and printed (kills.tsv in it lists every kill: kind, phase, ms after the exec); everything
else is removed. Python 3 standard library only.
"""

import argparse
import collections
import os
import random
import re
import select
import shutil
import socket
import signal
import sqlite3
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "harness"))
from apheresis_harness import (  # noqa: E402  (the path above first)
    REAPER, HarnessError, Interrupted, check_config, clean_env, keep_directory, log, read_text, sigkill, tail,
    wait_until, write_config)

PARTS = ["daemon", "simulator", "product"]
# Scenarios with limit alarms in them (ratio, agreement, AC pump stall, run time and volume, device
# alarms and pauses, clock jumps), played in turn; all share one serial number.
DEFAULT_SCENARIOS = ["fault-ratio-drift", "fault-stall-pump", "alarm-pause-resume", "overrun", "fault-clock-jump"]
SERIAL = "1OPT00417"
# Alarms the kills themselves cause (the link goes down, the telemetry stops): not derived from the data.
KILL_CAUSED_ALARMS = {"LINK_DOWN", "STALE_TELEMETRY", "STORE_WRITE_FAILED"}
# How many of each finding are printed.
SHOW = 8

SUPERVISOR_PW = "supervisor-pw-1"
LAB_PW = "lab-password-1"


# ---------------------------------------------------------------------------------------------
# Small things.

# The temporary directory of each part while it runs: kept when the part cannot finish.
CURRENT_DIRECTORY = {}

def now():
    return time.monotonic()


def read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def connect(database, readonly=True):
    if readonly:
        return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    return sqlite3.connect(database, timeout=30)


def query(database, sql, args=(), readonly=True):
    connection = connect(database, readonly)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def live_message_count(database):
    try:
        return query(database, "SELECT count(*) FROM messages WHERE source = 'live'")[0][0]
    except sqlite3.Error:
        return None


def integrity(database):
    try:
        rows = query(database, "PRAGMA integrity_check", readonly=False)
        return "; ".join(str(r[0]) for r in rows)
    except sqlite3.Error as error:
        return f"error: {error}"


def pick(rng, weights):
    kinds = list(weights)
    return rng.choices(kinds, weights=[weights[k] for k in kinds])[0]


def sleep_until(deadline):
    remaining = deadline - now()
    if remaining > 0:
        time.sleep(remaining)


def phase_summary(kills):
    counts = collections.Counter(k["phase"] for k in kills)
    return ", ".join(f"{phase} {count}" for phase, count in counts.most_common()) or "-"


class Finding(Exception):
    """Something the campaign found that stops a part (the daemon exited by itself, refused its
    store, a command failed): reported as a finding, not as a part that could not be run."""


# ---------------------------------------------------------------------------------------------
# Scenarios, the simulator's state file, the simulator and the daemon.

def scenario_copies(names, directory):
    """The scenarios as files in `directory`, under their own base names (the simulator resumes a run
    only with the scenario of the same name) and with one serial number."""
    paths = []
    os.makedirs(directory, exist_ok=True)
    for name in names:
        source = name if os.path.sep in name or name.endswith(".toml") else os.path.join(
            ROOT, "simulator", "scenarios", name + ".toml")
        with open(source) as f:
            text = f.read()
        text, count = re.subn(r'(?m)^serial = .*$', f'serial = "{SERIAL}"', text)
        if count != 1:
            raise HarnessError(f"{source}: no single 'serial = ...' line")
        path = os.path.join(directory, os.path.basename(source))
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    return paths


def outbox_state(path):
    """docs/simulator.md, "State file": the last run number, the run in progress (number, id) or None,
    the last sequence number and the messages not yet acknowledged. A partial last line is ignored."""
    state = {"last_run": 0, "active": None, "last_seq": 0, "pending": set()}
    try:
        with open(path, "rb") as f:
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return state
    lines = data.split("\n")
    lines = lines[:-1]  # the text after the last newline is a partial line (or empty)
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "seq" and len(f) == 3:
            state["last_seq"] = max(state["last_seq"], int(f[1]))
            state["last_run"] = max(state["last_run"], int(f[2]))
        elif f[0] == "run" and len(f) == 5:
            state["last_run"] = max(state["last_run"], int(f[1]))
            state["active"] = (int(f[1]), f[2])
        elif f[0] == "m" and len(f) == 4:
            state["pending"].add(int(f[1]))
            state["last_seq"] = max(state["last_seq"], int(f[1]))
        elif f[0] == "a" and len(f) == 2:
            state["pending"].discard(int(f[1]))
        elif f[0] == "end" and len(f) == 2:
            if state["active"] and state["active"][1] == f[1]:
                state["active"] = None
    return state


class SimDevice:
    """One optia-sim over TCP with a state file, restarted on the same port; run N plays
    scenarios[(N - 1) % len]. stdout and stderr are appended over every start."""

    def __init__(self, bin_dir, directory, scenarios, seed, speed):
        self.bin_dir = bin_dir
        self.directory = directory
        self.scenarios = scenarios
        self.seed = seed
        self.speed = speed
        self.state = os.path.join(directory, "sim.state")
        self.out = os.path.join(directory, "sim.out")
        self.err = os.path.join(directory, "sim.err")
        self.port = 0
        self.process = None
        self.starts = 0
        self.failures = []  # (exit status, stderr tail)
        self.out_offset = 0
        self.err_offset = 0
        self.started_at = None
        self.run_number = None

    def next_run_number(self):
        state = outbox_state(self.state)
        if state["active"]:
            return state["active"][0]
        return state["last_run"] + 1

    def start(self):
        self.run_number = self.next_run_number()
        scenario = self.scenarios[(self.run_number - 1) % len(self.scenarios)]
        self.out_offset = file_size(self.out)
        self.err_offset = file_size(self.err)
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.started_at = now()
            self.process = REAPER.spawn(
                [os.path.join(self.bin_dir, "optia-sim"), "run", scenario, "--tcp", str(self.port),
                 "--speed", f"{self.speed:g}", "--seed", str(self.seed), "--state", self.state],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=clean_env(), cwd=self.directory)
        self.starts += 1
        return self.process

    def stdout_since_start(self):
        return read_from(self.out, self.out_offset)

    def stderr_since_start(self):
        return read_from(self.err, self.err_offset)

    def wait_port(self, timeout=30):
        def port():
            match = re.search(r"^tcp: 127\.0\.0\.1:(\d+)$", self.stdout_since_start(), re.M)
            return int(match.group(1)) if match else None
        self.port = wait_until(port, timeout, "optia-sim's 'tcp:' line", poll=0.005, process=self.process,
                               log_file=self.err)
        return self.port

    def running(self):
        return self.process is not None and self.process.poll() is None

    def reap(self):
        """The exit status of a simulator that has exited (recorded when not 0), else None."""
        if self.process is None or self.process.poll() is None:
            return None
        status = self.process.returncode
        REAPER.forget(self.process)
        self.process = None
        if status != 0 and status != -signal.SIGKILL:
            self.failures.append((status, tail(self.err, 8)))
        return status

    def kill(self):
        process, self.process = self.process, None
        return sigkill(process)

    def done_lines(self):
        return re.findall(r"^done: (\S+) last-sequence (\d+)$", read_text(self.out), re.M)


class DaemonRunner:
    """apheresisd on one configuration; its stderr appended over every start, each start marked."""

    def __init__(self, bin_dir, directory, config, database):
        self.bin_dir = bin_dir
        self.directory = directory
        self.config = config
        self.database = database
        self.err = os.path.join(directory, "daemon.err")
        self.process = None
        self.offset = 0
        self.starts = 0
        self.started_at = None

    def start(self, prefix=None):
        self.starts += 1
        with open(self.err, "ab") as err:
            err.write(f"=== crash_campaign: start {self.starts} ===\n".encode())
            err.flush()
            self.offset = err.tell()
            self.started_at = now()
            self.process = REAPER.spawn(list(prefix or []) + [os.path.join(self.bin_dir, "apheresisd"), "--config", self.config],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                        env=clean_env(), cwd=self.directory)
        return self.process

    def log(self):
        return read_from(self.err, self.offset)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def check_alive(self, what):
        if self.process is not None and self.process.poll() is not None:
            raise Finding(f"apheresisd exited by itself with status {self.process.returncode} {what} "
                          f"(log: {self.err})" + tail(self.err))

    def kill(self):
        process, self.process = self.process, None
        return sigkill(process)

    def stop(self, grace=30):
        process, self.process = self.process, None
        if process is None:
            return None
        REAPER.stop(process, grace=grace)
        return process.returncode

    def phase(self, flowing):
        """Where the daemon was, from its log since this start (docs/daemon.md): before 'store open:'
        it is starting (configuration, store, migrations, audit key); then it restores the open runs
        of its links ('watching run ... again') until the link is opened; then it connects; once the
        separator is heard, messages either flow (the store's count grew just before the kill) or
        not (idle)."""
        text = self.log()
        if "store open:" not in text:
            return "startup"
        if "link open:" not in text and "cannot open link" not in text:
            return "restore"
        up = text.rfind("link up:")
        if up < 0:
            return "connecting"
        if text.rfind("link down:") > up:
            return "idle"
        return "flowing" if flowing else "idle"


def daemon_config(directory, port, log_level="info"):
    state_dir = os.path.join(directory, "state")
    config = os.path.join(directory, "apheresisd.toml")
    write_config(config, state_dir, log_level, [
        f'[[device]]\nname = "optia-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
        f'reconnect_initial_ms = 50\nreconnect_max_s = 1\n'])
    return config, os.path.join(state_dir, "apheresisd.sqlite")


# ---------------------------------------------------------------------------------------------
# The reference: the same runs played once, no kills, into a fresh store. Grown on demand, so the
# daemon and simulator parts share it.

class Reference:
    def __init__(self, args):
        self.args = args
        self.directory = REAPER.tempdir("crash-reference-")
        self.scenarios = scenario_copies(args.scenarios, os.path.join(self.directory, "scenarios"))
        self.sim = SimDevice(args.bin, self.directory, self.scenarios, args.seed, args.speed)
        self.daemon = None
        self.database = None
        self.runs = 0
        self.seconds = 0.0

    def ensure(self, runs):
        if self.runs >= runs:
            return self.database
        started = now()
        log(f"reference: playing runs {self.runs + 1}..{runs} without kills")
        self.sim.start()
        self.sim.wait_port()
        if self.daemon is None:
            config, self.database = daemon_config(self.directory, self.sim.port)
            check_config(self.args.bin, config)
            self.daemon = DaemonRunner(self.args.bin, self.directory, config, self.database)
        self.daemon.start()
        while True:
            self.daemon.check_alive("while the reference played")
            status = self.sim.reap()
            if status is not None:
                if status != 0:
                    raise HarnessError(f"reference: optia-sim exited with status {status}" + tail(self.sim.err))
                self.runs = outbox_state(self.sim.state)["last_run"]
                if self.runs >= runs:
                    break
                self.sim.start()
            time.sleep(0.05)
        status = self.daemon.stop()
        if status != 0:
            raise HarnessError(f"reference: apheresisd stopped with status {status}" + tail(self.daemon.err))
        self.seconds += now() - started
        return self.database


# ---------------------------------------------------------------------------------------------
# What a store holds, and the comparison with the reference.

def store_view(database):
    connection = connect(database, readonly=False)
    try:
        rows = connection.execute(
            "SELECT m.sequence, r.run_id, m.raw FROM messages m LEFT JOIN runs r ON r.id = m.run_ref "
            "WHERE m.source = 'live' AND m.device_serial = ? ORDER BY m.id", (SERIAL,)).fetchall()
        messages = collections.defaultdict(list)
        for sequence, run_id, raw in rows:
            messages[sequence].append((run_id, bytes(raw)))
        text_repeats = connection.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM messages WHERE source = 'live' "
            "GROUP BY raw HAVING n > 1)").fetchone()[0]
        runs = {}
        for run_id, state, end_ts, run_ref in connection.execute(
                "SELECT run_id, state, end_device_ts, id FROM runs WHERE device_serial = ?", (SERIAL,)):
            runs[run_id] = {"state": state, "end": end_ts, "ref": run_ref}
        timeouts = {r[0] for r in connection.execute(
            "SELECT r.run_id FROM events e JOIN runs r ON r.id = e.run_ref WHERE e.kind = 'run_closed_timeout'")}
        alarms = collections.defaultdict(collections.Counter)
        for run_id, code, kind, level, sequence in connection.execute(
                "SELECT r.run_id, a.code, e.kind, e.level, m.sequence FROM alarm_events e "
                "JOIN alarms a ON a.id = e.alarm_ref LEFT JOIN runs r ON r.id = a.run_ref "
                "LEFT JOIN messages m ON m.id = e.message_ref WHERE e.kind IN ('raised', 'escalated')"):
            if code in KILL_CAUSED_ALARMS:
                continue
            alarms[run_id][(code, kind, level, sequence)] += 1
        quarantined = connection.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        # Nothing stays raised for ever: once a run is closed, none of its alarms is active (the
        # kill-caused ones included).
        left_active = connection.execute(
            "SELECT r.run_id, a.code, a.state FROM alarms a JOIN runs r ON r.id = a.run_ref "
            "WHERE r.state = 'closed' AND a.state <> 'cleared'").fetchall()
        # Rows derived from the messages, per run: samples, the events a message made (run_start,
        # run_end, device_alarm, ...), telemetry gaps found, and the run's audit entries.
        derived = collections.defaultdict(collections.Counter)
        for run_id, count in connection.execute(
                "SELECT r.run_id, count(*) FROM samples s JOIN runs r ON r.id = s.run_ref GROUP BY r.run_id"):
            derived[run_id][("samples",)] = count
        for run_id, kind, sequence, detail in connection.execute(
                "SELECT r.run_id, e.kind, m.sequence, e.detail FROM events e JOIN runs r ON r.id = e.run_ref "
                "JOIN messages m ON m.id = e.message_ref"):
            derived[run_id][("event", kind, sequence, detail)] += 1
        for run_id, kind, missing in connection.execute(
                "SELECT r.run_id, g.kind, g.missing_count FROM run_gaps g JOIN runs r ON r.id = g.run_ref"):
            derived[run_id][("gap", kind, missing)] += 1
        for run_id, action in connection.execute(
                "SELECT r.run_id, a.action FROM audit_log a JOIN runs r ON CAST(r.id AS TEXT) = a.entity_id "
                "WHERE a.entity = 'run'"):
            derived[run_id][("audit", action)] += 1
        return {"messages": messages, "text_repeats": text_repeats, "runs": runs, "timeouts": timeouts,
                "alarms": alarms, "quarantined": quarantined, "derived": derived, "left_active": left_active}
    finally:
        connection.close()


def compare(database, reference_db, run_ids, findings):
    """Counts for the table; each problem appended to `findings` with where it is."""
    ref = store_view(reference_db)
    got = store_view(database)
    expected = {s: v[0] for s, v in ref["messages"].items() if v[0][0] in run_ids}
    if not expected:
        raise HarnessError("the reference store holds none of the campaign's runs")
    first, last = min(expected), max(expected)
    if sorted(expected) != list(range(first, last + 1)) or first != 1:
        raise HarnessError(f"the reference itself is not 1..{last} (the check cannot be trusted)")
    result = {"sent": len(expected), "stored": sum(len(v) for v in got["messages"].values()),
              "lost": 0, "duplicated": 0, "mismatched": 0, "alarms": 0}

    lost = sorted(s for s in expected if s not in got["messages"])
    result["lost"] = len(lost)
    if lost:
        by_run = collections.Counter(expected[s][0] for s in lost)
        findings.append(f"LOST {len(lost)} message(s): sequences {ranges(lost)}; by run: "
                        + ", ".join(f"{r} {n}" for r, n in sorted(by_run.items())))
    twice = {s: len(v) for s, v in got["messages"].items() if len(v) > 1}
    result["duplicated"] = sum(n - 1 for n in twice.values()) + got["text_repeats"]
    if twice:
        findings.append(f"DUPLICATED sequence(s): {ranges(sorted(twice))}")
    if got["text_repeats"]:
        findings.append(f"DUPLICATED by text: {got['text_repeats']} stored message(s) repeat another's bytes")
    extra = sorted(s for s in got["messages"] if s not in expected)
    wrong = []
    for s, stored in got["messages"].items():
        if s in expected and (stored[0][1] != expected[s][1] or stored[0][0] != expected[s][0]):
            wrong.append(s)
    result["mismatched"] = len(wrong) + len(extra)
    if wrong:
        s = min(wrong)
        (run_got, raw_got), (run_want, raw_want) = got["messages"][s][0], expected[s]
        if run_got != run_want:
            what = f"stored under run {run_got}, the reference under {run_want}"
        else:
            at = next((i for i, (a, b) in enumerate(zip(raw_got, raw_want)) if a != b), min(len(raw_got), len(raw_want)))
            what = (f"bytes differ from offset {at}: stored ...{raw_got[max(0, at - 20):at + 40]!r}, "
                    f"reference ...{raw_want[max(0, at - 20):at + 40]!r}")
        findings.append(f"CONTENT differs from the reference for {len(wrong)} message(s): sequences "
                        f"{ranges(sorted(wrong))} (first #{s}: {what})")
    if extra:
        findings.append(f"EXTRA message(s) the reference run never sent: sequences {ranges(extra)}")
    if got["quarantined"] > ref["quarantined"]:
        result["mismatched"] += got["quarantined"] - ref["quarantined"]
        findings.append(f"QUARANTINED {got['quarantined']} input(s) (reference: {ref['quarantined']}): "
                        "SELECT id, reason FROM quarantine")

    if got["left_active"]:
        result["alarms"] += len(got["left_active"])
        findings.append(f"ALARMS still active on closed runs: {got['left_active'][:SHOW]} "
                        "(SELECT * FROM alarms WHERE state <> 'cleared')")
    for run_id in sorted(run_ids):
        r = ref["runs"].get(run_id)
        g = got["runs"].get(run_id)
        if g is None:
            findings.append(f"RUN {run_id} is not in the store")
            continue
        if g["state"] != "closed" or g["end"] != (r or {}).get("end") or run_id in got["timeouts"]:
            findings.append(f"RUN {run_id} not closed by its RUN_END: state {g['state']}, end {g['end']} "
                            f"(reference {(r or {}).get('end')})"
                            + (", closed by the open-run timeout" if run_id in got["timeouts"] else ""))
            result["mismatched"] += 1
        want, have = ref["derived"].get(run_id, collections.Counter()), got["derived"].get(run_id, collections.Counter())
        if want != have:
            missing, surplus = want - have, have - want
            result["mismatched"] += sum(missing.values()) + sum(surplus.values())
            findings.append(f"DERIVED ROWS of run {run_id} differ from the reference (samples, events, gaps, audit): "
                            f"missing {sorted(missing.items())[:SHOW]}, extra {sorted(surplus.items())[:SHOW]}")
        want, have = ref["alarms"].get(run_id, collections.Counter()), got["alarms"].get(run_id, collections.Counter())
        if want != have:
            missing, surplus = want - have, have - want
            result["alarms"] += sum(missing.values()) + sum(surplus.values())
            findings.append(
                f"ALARMS of run {run_id} differ from the reference: "
                + (f"missing {fmt_alarms(missing)}" if missing else "")
                + ("; " if missing and surplus else "")
                + (f"extra {fmt_alarms(surplus)}" if surplus else "")
                + " (code, step, level, raised by message #)")
    return result


def fmt_alarms(counter):
    items = sorted(counter.items(), key=lambda kv: (kv[0][3] or 0, kv[0][0]))
    shown = [f"{code} {kind} {level} #{seq}" + (f" x{n}" if n > 1 else "") for (code, kind, level, seq), n in items[:SHOW]]
    return ", ".join(shown) + (f", ... ({len(items)} in all)" if len(items) > SHOW else "")


def ranges(values):
    values = sorted(values)
    parts, start, prev = [], None, None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    shown = ", ".join(parts[:SHOW])
    return shown + (f", ... ({len(parts)} ranges)" if len(parts) > SHOW else "")


def audit_verify(bin_dir, config, directory, findings):
    """`apheresisctl audit verify` on the part's store: 'intact' or 'BROKEN' (with the finding)."""
    verify = subprocess.run([os.path.join(bin_dir, "apheresisctl"), "audit", "verify", "--config", config],
                            capture_output=True, text=True, env=clean_env(), cwd=directory, timeout=600)
    text = (verify.stdout + verify.stderr).strip()
    with open(os.path.join(directory, "audit-verify.out"), "w") as f:
        f.write(text + f"\n[status {verify.returncode}]\n")
    if verify.returncode == 0 and "audit trail intact" in verify.stdout:
        return "intact"
    findings.append(f"AUDIT VERIFY status {verify.returncode}: " + " | ".join(text.splitlines()[:6]))
    return "BROKEN"


def run_ids_of(runs):
    return {f"RUN-{SERIAL}-{n:04d}" for n in range(1, runs + 1)}


def simulator_said(sim, reference_db, runs, result, findings):
    """What the simulator itself says it sent, against the reference: the last sequence number in
    its state file, and each 'done: RUN-ID last-sequence N' line (docs/simulator.md). A difference
    here is the simulator's (a sequence number skipped or reused on resume), not the daemon's."""
    last = {}
    for run_id, sequence in query(reference_db, "SELECT r.run_id, max(m.sequence) FROM messages m "
                                                "JOIN runs r ON r.id = m.run_ref GROUP BY r.run_id"):
        last[run_id] = sequence
    want = max(last[r] for r in run_ids_of(runs) if r in last)
    state = outbox_state(sim.state)
    result["sent"] = state["last_seq"]
    if state["last_seq"] != want:
        findings.append(f"SIMULATOR: its state file's last sequence is {state['last_seq']}, the reference's {want} "
                        f"({sim.state})")
    for run_id, sequence in sim.done_lines():
        if last.get(run_id) != int(sequence):
            findings.append(f"SIMULATOR: 'done: {run_id} last-sequence {sequence}', the reference's last for that run "
                            f"is {last.get(run_id)}")


# ---------------------------------------------------------------------------------------------
# Part 1: the daemon killed.

class DaemonPart:
    WEIGHTS = {"flowing": 50, "startup": 20, "restore": 15, "idle": 15}

    def __init__(self, args, reference, rng):
        self.args = args
        self.reference = reference
        self.rng = rng
        self.directory = REAPER.tempdir("crash-daemon-")
        CURRENT_DIRECTORY["daemon"] = self.directory
        self.scenarios = scenario_copies(args.scenarios, os.path.join(self.directory, "scenarios"))
        self.sim = SimDevice(args.bin, self.directory, self.scenarios, args.seed, args.speed)
        self.daemon = None
        self.hold = False  # no new run while waiting for an idle daemon
        self.settling = False
        self.kills = []

    def pump(self):
        """Starts the simulator on its next run when it has finished one."""
        if self.sim.process is not None and self.sim.process.poll() is not None:
            self.sim.reap()
        if self.sim.process is None and not self.hold and not self.settling:
            self.sim.start()

    def wait(self, predicate, timeout, what, poll=0.01):
        deadline = now() + timeout
        while True:
            self.pump()
            value = predicate()
            if value:
                return value
            if self.daemon.process is not None and self.daemon.process.poll() is not None:
                raise Finding(f"apheresisd exited by itself with status {self.daemon.process.returncode} while "
                              f"waiting for {what} (log: {self.daemon.err})" + tail(self.daemon.err))
            if now() > deadline:
                raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}" + tail(self.daemon.err))
            time.sleep(poll)

    def ensure_up(self):
        if not self.daemon.running():
            self.daemon.start()
        self.wait(lambda: "link up:" in self.daemon.log(), 120, "'link up:' in the daemon's log")

    def kill_daemon(self, kind, probe):
        """Kills now; `probe` samples the store's count 30 ms before so the phase says whether
        messages were flowing."""
        flowing = False
        if probe:
            before = live_message_count(self.daemon.database)
            time.sleep(0.03)
            after = live_message_count(self.daemon.database)
            flowing = before is not None and after is not None and after > before
        at = now() - self.daemon.started_at
        phase = self.daemon.phase(flowing)
        status = self.daemon.process.poll()
        killed = self.daemon.kill()
        if not killed:
            raise Finding(f"apheresisd had exited by itself (status {status}) before kill {len(self.kills) + 1} "
                          f"(log: {self.daemon.err})" + tail(self.daemon.err))
        self.kills.append({"kind": kind, "phase": phase, "after_s": at, "start": self.daemon.starts})

    def new_store_kills(self, count, findings):
        """Kills while a store is made (migrations, the audit key, the anchor file, the first keyed
        open), each on a store of its own, then the daemon started again on it: it must open the
        store and report ready, not refuse it. Its device's port has no listener (a daemon here must
        not take messages from the campaign's simulator). The first, when strace is there, lands on a
        precise instant no timer hits: the daemon entering link(2) to publish the audit anchor file
        (strace injects the SIGKILL there; the link never happens)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        precise = shutil.which("strace") is not None
        if not precise:
            findings.append("note: no strace: the kill at the anchor file's publication was not made")
        for k in range(count):
            directory = os.path.join(self.directory, f"new-store-{k + 1}")
            os.makedirs(directory)
            config, database = daemon_config(directory, port)
            daemon = DaemonRunner(self.args.bin, directory, config, database)
            if k == 0 and precise:
                anchor = os.path.join(directory, "state", "audit-anchor", "apheresisd.sqlite.heads")
                trace = os.path.join(directory, "strace.log")
                # The anchor file is published whole (header written and fsynced in a temporary file,
                # then linked to its name): the instant between is the daemon entering link(2). Before
                # that design it was created empty and written after, and a kill between the two left
                # a store refused as tampered for ever.
                daemon.start(prefix=["strace", "-f", "-qq", "-o", trace, "-P", anchor, "-e", "trace=link,linkat",
                                     "-e", "inject=link,linkat:error=EIO:signal=KILL:when=1"])
                try:
                    daemon.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                at = now() - daemon.started_at
                daemon.kill()
                if "killed by SIGKILL" not in read_text(trace) or "link" not in read_text(trace):
                    findings.append(f"note: strace could not kill the daemon at the anchor file's publication "
                                    f"(ptrace not allowed?); see {trace}")
                    continue
                phase = "new store: anchor about to be published (strace)"
            else:
                daemon.start()
                sleep_until(daemon.started_at + self.rng.uniform(0, 0.45))
                at = now() - daemon.started_at
                text = daemon.log()
                phase = "new store: made" if "store open:" in text else "new store: making"
                if not daemon.kill():
                    raise HarnessError("apheresisd on a new store exited before the kill" + tail(daemon.err))
            self.kills.append({"kind": "new-store", "phase": phase, "after_s": at})
            daemon.start()
            deadline = now() + 60
            while "ready:" not in daemon.log() and daemon.running() and now() < deadline:
                time.sleep(0.02)
            if not daemon.running() or "ready:" not in daemon.log():
                status = daemon.process.poll() if daemon.process else None
                said = next((line.split(" apheresisd: ", 1)[-1] for line in daemon.log().splitlines()
                             if " critical " in line or " error " in line), tail(daemon.err, 3))
                findings.append(
                    f"NEW STORE killed {at * 1000:.0f} ms after the exec ({phase}): the next start "
                    + (f"exited with status {status}" if status is not None else "did not report ready in 60 s")
                    + f": {said[:400]} (store and log kept: {directory})")
                if daemon.running():
                    daemon.kill()
                continue
            status = daemon.stop()
            check = integrity(database)
            if status != 0 or check != "ok":
                findings.append(f"NEW STORE {directory}: stop status {status}, integrity {check}")

    def run(self, findings):
        args = self.args
        self.new_store_kills(max(1, round(args.kills * 0.08)), findings)
        self.sim.start()
        self.sim.wait_port()
        config, database = daemon_config(self.directory, self.sim.port)
        check_config(args.bin, config)
        self.daemon = DaemonRunner(args.bin, self.directory, config, database)
        for i in range(len(self.kills), args.kills):
            kind = pick(self.rng, self.WEIGHTS)
            self.pump()
            # Every round ends with the daemon killed: each starts it again (or waits for it to be up).
            if kind == "startup":
                # 0-300 ms after the exec; half of them in the first 40 ms (before the store is open).
                delay = self.rng.uniform(0, 0.04) if self.rng.random() < 0.5 else self.rng.uniform(0, 0.3)
                self.daemon.start()
                sleep_until(self.daemon.started_at + delay)
                self.kill_daemon(kind, probe=False)
            elif kind == "restore":
                self.daemon.start()
                self.wait(lambda: "store open:" in self.daemon.log(), 60, "'store open:' in the daemon's log", poll=0.001)
                time.sleep(self.rng.uniform(0, 0.15))
                self.kill_daemon(kind, probe=False)
            elif kind == "flowing":
                self.ensure_up()
                time.sleep(self.rng.uniform(0.0, 1.2))
                self.kill_daemon(kind, probe=True)
            else:  # idle: the run has ended and every message is stored; no next run yet
                self.ensure_up()
                self.hold = True
                try:
                    self.wait(lambda: self.sim.process is None, 600, "the simulator to finish its run")
                    time.sleep(self.rng.uniform(0.05, 0.6))
                    self.kill_daemon(kind, probe=True)
                finally:
                    self.hold = False
            if (i + 1) % 10 == 0:
                log(f"daemon: {i + 1} kills ({phase_summary(self.kills)}); run {self.sim.run_number}")
        # Settle: the daemon up, the simulator's last run delivered (it exits 0), then SIGTERM.
        self.settling = True
        if not self.daemon.running():
            self.daemon.start()
        self.wait(lambda: self.sim.process is None, 900, "the simulator to deliver its last run")
        self.wait(lambda: "store open:" in self.daemon.log(), 60, "'store open:' in the daemon's log")
        time.sleep(0.2)
        status = self.daemon.stop()
        return status, database


def part_daemon(args, reference, rng, findings):
    part = DaemonPart(args, reference, rng)
    status, database = part.run(findings)
    if status != 0:
        findings.append(f"apheresisd stopped with status {status} on SIGTERM after the campaign")
    if part.sim.failures:
        findings.append(f"optia-sim exited with an error {len(part.sim.failures)} time(s): {part.sim.failures[0]}")
    runs = outbox_state(part.sim.state)["last_run"]
    reference_db = reference.ensure(runs)
    result = compare(database, reference_db, run_ids_of(runs), findings)
    simulator_said(part.sim, reference_db, runs, result, findings)
    result.update(kills=part.kills, runs=runs, integrity=integrity(database), directory=part.directory,
                  audit=audit_verify(args.bin, part.daemon.config, part.directory, findings))
    return result


# ---------------------------------------------------------------------------------------------
# Part 2: the simulator killed.

class SimulatorPart:
    WEIGHTS = {"startup": 20, "resume": 20, "running": 45, "draining": 15}
    # Phases: "startup" before it listens (loading the state file: a long queue takes a while),
    # "resume" listening but no host yet (the run replayed silently to where it stopped, the
    # daemon reconnecting), "running" (messages sent and acknowledged), "draining" (the run has
    # ended; queued messages still being delivered).

    def __init__(self, args, reference, rng):
        self.args = args
        self.reference = reference
        self.rng = rng
        self.directory = REAPER.tempdir("crash-simulator-")
        CURRENT_DIRECTORY["simulator"] = self.directory
        self.scenarios = scenario_copies(args.scenarios, os.path.join(self.directory, "scenarios"))
        self.sim = SimDevice(args.bin, self.directory, self.scenarios, args.seed, args.speed)
        self.daemon = None
        self.kills = []
        self.finished_runs = 0

    def phase(self):
        out, err = self.sim.stdout_since_start(), self.sim.stderr_since_start()
        if "tcp:" not in out:
            return "startup"
        if "done:" in out:
            return "done"
        if "ended;" in err:
            return "draining"
        if "host connected" not in err:
            return "resume"
        return "running"

    def wait_sim(self, predicate, timeout, what, poll=0.001):
        deadline = now() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if not self.sim.running():
                return None  # it finished (or failed) first
            self.daemon.check_alive(f"while waiting for {what}")
            if now() > deadline:
                raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}" + tail(self.sim.err))
            time.sleep(poll)

    def run(self):
        args = self.args
        self.sim.start()
        self.sim.wait_port()
        config, database = daemon_config(self.directory, self.sim.port)
        check_config(args.bin, config)
        self.daemon = DaemonRunner(args.bin, self.directory, config, database)
        self.daemon.start()
        while len(self.kills) < args.kills:
            if not self.sim.running():
                self.sim.reap()
                self.sim.start()
            kind = pick(self.rng, self.WEIGHTS)
            if kind == "startup":
                sleep_until(self.sim.started_at + self.rng.uniform(0, 0.05))
            elif kind == "resume":
                if self.wait_sim(lambda: "tcp:" in self.sim.stdout_since_start(), 60, "'tcp:'") is None:
                    continue
                time.sleep(self.rng.uniform(0, 0.1))
            elif kind == "running":
                if self.wait_sim(lambda: "tcp:" in self.sim.stdout_since_start(), 60, "'tcp:'") is None:
                    continue
                time.sleep(self.rng.uniform(0.05, 1.5))
            else:
                if self.wait_sim(lambda: "ended;" in self.sim.stderr_since_start(), 600, "'run ... ended'",
                                 poll=0.005) is None:
                    continue
                time.sleep(self.rng.uniform(0, 0.05))
            phase = self.phase()
            at = now() - self.sim.started_at
            if not self.sim.kill():
                continue  # it finished on its own first: not a kill
            self.daemon.check_alive("during the simulator's kills")
            self.kills.append({"kind": kind, "phase": phase, "after_s": at})
            if len(self.kills) % 10 == 0:
                log(f"simulator: {len(self.kills)} kills ({phase_summary(self.kills)}); run {self.sim.run_number}")
        # Settle: the simulator started again until its run and queue are delivered (it exits 0).
        state = outbox_state(self.sim.state)
        if state["active"] or state["pending"]:
            self.sim.start()
        deadline = now() + 900
        while self.sim.process is not None and self.sim.process.poll() is None:
            self.daemon.check_alive("while the simulator delivered its last run")
            if now() > deadline:
                raise HarnessError("timed out waiting for the simulator to deliver its last run" + tail(self.sim.err))
            time.sleep(0.05)
        last_status = self.sim.reap()
        time.sleep(0.2)
        status = self.daemon.stop()
        return status, last_status, database


def part_simulator(args, reference, rng, findings):
    part = SimulatorPart(args, reference, rng)
    status, last_status, database = part.run()
    if status != 0:
        findings.append(f"apheresisd stopped with status {status} on SIGTERM after the campaign")
    if last_status not in (None, 0):
        findings.append(f"optia-sim's last start exited with status {last_status}")
    if part.sim.failures:
        findings.append(f"optia-sim exited with an error {len(part.sim.failures)} time(s): {part.sim.failures[0]}")
    state = outbox_state(part.sim.state)
    if state["pending"]:
        findings.append(f"optia-sim's state file still holds {len(state['pending'])} unacknowledged message(s)")
    runs = state["last_run"]
    reference_db = reference.ensure(runs)
    result = compare(database, reference_db, run_ids_of(runs), findings)
    simulator_said(part.sim, reference_db, runs, result, findings)
    result.update(kills=part.kills, runs=runs, integrity=integrity(database), directory=part.directory,
                  audit=audit_verify(args.bin, part.daemon.config, part.directory, findings))
    return result


# ---------------------------------------------------------------------------------------------
# Part 3: apheresisctl product create (and the steps after it) killed.

PRODUCT_CONFIG = """
[product]
facility_identification_number = "G1234"
facility_name = "Crash Campaign Hospital"
product_description_code = "S1234"
time_zone = "UTC"
reduced_volume_ml = 20
unit_volume_ml = 5
"""

LAB_VALUES = ["--wbc", "1.3", "--cd3-percent", "44.8", "--viability-percent", "96", "--qc-ml", "1"]


class WalWatch:
    """The store's WAL seen from outside, read whenever its size or modification time changes:
    the transactions committed in it since the watch began (a commit frame not seen before, frames
    whose salts match the WAL header) and whether frames of a transaction not yet committed follow
    the last commit. apheresisctl commits one transaction when it opens the store; the step's own
    commit is the next one (after the password check, Argon2id, ~0.2 s)."""

    def __init__(self, path):
        self.path = path
        self.last = None
        self.seen = set()
        self.commits = []  # times of new commits
        self.pending = 0  # frames after the last commit
        self.started = now()
        self.poll()
        self.commits = []

    def poll(self):
        try:
            st = os.stat(self.path)
            key = (st.st_size, st.st_mtime_ns)
        except OSError:
            key = None
        if key == self.last:
            return
        self.last = key
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return
        if len(data) < 32:
            return
        page_size, _, salt1, salt2 = struct.unpack(">IIII", data[8:24])
        frame = 24 + page_size
        offset, index, pending = 32, 0, 0
        while offset + frame <= len(data):
            _, commit_size, s1, s2 = struct.unpack(">IIII", data[offset:offset + 16])
            if (s1, s2) != (salt1, salt2):
                break
            if commit_size:
                identity = (salt1, salt2, index)
                if identity not in self.seen:
                    self.seen.add(identity)
                    self.commits.append(now())
                pending = 0
            else:
                pending += 1
            offset += frame
            index += 1
        self.pending = pending

    def opened(self):
        return len(self.commits) >= 1

    def commit_seen(self):
        return len(self.commits) >= 2 or (len(self.commits) == 1 and self.pending > 0)

    def describe(self, started):
        times = ", ".join(f"{(t - started) * 1000:.1f}" for t in self.commits[:12])
        return (f"commits at {times} ms" if times else "no commit") + (f", {self.pending} frame(s) uncommitted" if self.pending else "")


class ProductPart:
    STEPS = ["create", "lab", "release", "labels"]
    KILL_CHANCE = {"create": 0.7, "lab": 0.3, "release": 0.3, "labels": 0.3}
    MODES = {"exec": 25, "uniform": 30, "commit": 30, "output": 15}

    def __init__(self, args, rng):
        self.args = args
        self.rng = rng
        self.directory = REAPER.tempdir("crash-product-")
        CURRENT_DIRECTORY["product"] = self.directory
        self.exports = os.path.join(self.directory, "exports")
        self.labels = os.path.join(self.directory, "labels")
        os.makedirs(self.exports)
        os.makedirs(self.labels)
        self.config = os.path.join(self.directory, "apheresisd.toml")
        state_dir = os.path.join(self.directory, "state")
        write_config(self.config, state_dir, "info", [
            f'[[device]]\nname = "optia-export"\ntransport = "export"\ndirectory = "{self.exports}"\n'])
        with open(self.config, "a") as f:
            f.write(PRODUCT_CONFIG)
        self.database = os.path.join(state_dir, "apheresisd.sqlite")
        self.wal = self.database + "-wal"
        self.anchor = os.path.join(state_dir, "audit-anchor", "apheresisd.sqlite.heads")
        self.ctl_log = os.path.join(self.directory, "apheresisctl.log")
        self.kills = []
        self.durations = collections.defaultdict(list)
        self.printed = {}  # product id -> the DIN `product create` printed
        self.attempts = 0

    # The runs: export files of a short run (normal-boy-10y's first 30 minutes, ~24 mL collected:
    # four 5 mL units from 20 mL), ingested by the daemon. Made in batches, as the kills need them.
    def make_runs(self, count):
        scenario = os.path.join(self.directory, "normal-boy-10y.toml")
        if not os.path.exists(scenario):
            with open(os.path.join(ROOT, "simulator", "scenarios", "normal-boy-10y.toml")) as f:
                text = f.read()
            text, n = re.subn(r"(?ms)^\[end\]\n.*?(?=^\[|\Z)", "[end]\nstop_at_target = false\nend_at_min = 30\n\n", text)
            if n != 1:
                text += "\n[end]\nstop_at_target = false\nend_at_min = 30\n"
            with open(scenario, "w") as f:
                f.write(text)
            check_config(self.args.bin, self.config)
        before = self.closed_runs()
        daemon = DaemonRunner(self.args.bin, self.directory, self.config, self.database)
        daemon.start()
        state = os.path.join(self.directory, "sim.state")
        for _ in range(count):
            result = subprocess.run(
                [os.path.join(self.args.bin, "optia-sim"), "run", scenario, "--export-dir", self.exports,
                 "--speed", "1000000", "--seed", str(self.args.seed), "--state", state],
                capture_output=True, text=True, env=clean_env(), cwd=self.directory, timeout=120)
            if result.returncode != 0:
                raise HarnessError(f"optia-sim --export-dir: status {result.returncode}: {result.stderr.strip()}")

        def closed():
            daemon.check_alive("while ingesting the export files")
            return len(self.closed_runs()) >= len(before) + count
        wait_until(closed, 60 + count * 5, f"{len(before) + count} closed runs in the store", poll=0.25)
        status = daemon.stop()
        if status != 0:
            raise HarnessError(f"apheresisd stopped with status {status}" + tail(daemon.err))
        return [r for r in self.closed_runs() if r not in before]

    def closed_runs(self):
        if not os.path.exists(self.database):
            return []
        return [r[0] for r in query(self.database, "SELECT id FROM runs WHERE state = 'closed' ORDER BY id",
                                    readonly=False)]

    def ctl(self, arguments, stdin_lines):
        result = subprocess.run([os.path.join(self.args.bin, "apheresisctl")] + arguments + ["--config", self.config],
                                input="".join(line + "\n" for line in stdin_lines), capture_output=True, text=True,
                                env=clean_env(), cwd=self.directory, timeout=120)
        with open(self.ctl_log, "a") as f:
            f.write(f"$ apheresisctl {' '.join(arguments)}\n{result.stdout}{result.stderr}[status {result.returncode}]\n")
        return result

    def add_users(self):
        for arguments, stdin in (
                (["user", "add", "sup", "--full-name", "Sue Pervisor", "--role", "supervisor"], [SUPERVISOR_PW] * 2),
                (["user", "add", "lab1", "--full-name", "Lab Technologist", "--role", "lab", "--by", "sup"],
                 [SUPERVISOR_PW, LAB_PW, LAB_PW])):
            r = self.ctl(arguments, stdin)
            if r.returncode != 0:
                raise HarnessError(f"apheresisctl {' '.join(arguments)}: status {r.returncode}: {r.stderr.strip()}")

    # What each step leaves in the store when it committed.
    def product_of(self, run_ref):
        rows = query(self.database, "SELECT id FROM products WHERE run_ref = ?", (run_ref,), readonly=False)
        return rows[0][0] if rows else None

    def done(self, step, run_ref):
        product = self.product_of(run_ref)
        if step == "create" or product is None:
            return product is not None
        sql = {
            "lab": "SELECT count(*) FROM lab_results WHERE product_ref = ?",
            "release": "SELECT count(*) FROM signatures WHERE product_ref = ?",
            "labels": "SELECT count(*) FROM label_prints p JOIN units u ON u.id = p.unit_ref WHERE u.product_ref = ?",
        }[step]
        return query(self.database, sql, (product,), readonly=False)[0][0] > 0

    def argv(self, step, run_ref):
        product = self.product_of(run_ref)
        if step == "create":
            return ["product", "create", "--run", str(run_ref), "--user", "lab1"]
        if step == "lab":
            return ["product", "lab", str(product), "--user", "lab1"] + LAB_VALUES
        if step == "release":
            return ["product", "release", str(product), "--user", "lab1"]
        return ["product", "labels", str(product), "--user", "lab1", "--format", "zpl", "--output", self.labels]

    def attempt(self, step, run_ref, mode):
        """One run of the step's command, killed according to `mode` (None: left to finish).
        Returns (killed, phase or None, status, stdout). The WAL is watched all along: the first
        write is the store's open (apheresisctl writes when it opens the store), a write after a
        pause (the password check, Argon2id, takes ~0.2 s) is the step's commit."""
        self.attempts += 1
        argv = [os.path.join(self.args.bin, "apheresisctl")] + self.argv(step, run_ref) + ["--config", self.config]
        watch = WalWatch(self.wal)
        anchor_before = file_size(self.anchor)
        started = now()
        process = REAPER.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=clean_env(), cwd=self.directory)
        process.stdin.write(f"{LAB_PW}\n".encode())
        process.stdin.close()
        if mode is None:
            out = process.stdout.read()
            err = process.stderr.read()
            process.wait(timeout=120)
            process.stdout.close()
            process.stderr.close()
            REAPER.forget(process)
            self.durations[step].append(now() - started)
            self.log_attempt(step, argv, out, err, process.returncode, None)
            return False, None, process.returncode, out.decode(errors="replace")
        os.set_blocking(process.stdout.fileno(), False)
        output = b""

        def watch_until(deadline, stop=None):
            while process.poll() is None and now() < deadline:
                watch.poll()
                if stop is not None and stop():
                    return True
                time.sleep(0.0002)
            return False

        def first_output():
            nonlocal output
            ready, _, _ = select.select([process.stdout], [], [], 0)
            if ready:
                output += process.stdout.read(65536) or b""
            return bool(output)

        if mode == "exec":
            watch_until(started + self.rng.uniform(0, 0.05))
        elif mode == "uniform":
            typical = statistics.median(self.durations[step]) if self.durations[step] else 0.4
            watch_until(started + self.rng.uniform(0, typical * 1.1))
        elif mode == "commit":
            if watch_until(started + 60, watch.commit_seen) and self.rng.random() < 0.5:
                watch_until(now() + self.rng.uniform(0, 0.004))
        else:  # output: the first byte on stdout
            watch_until(started + 60, first_output)
        watch.poll()
        at = now() - started
        commit_seen, opened, pending = watch.commit_seen(), watch.opened(), watch.pending
        anchor_size = file_size(self.anchor)
        killed = sigkill(process)
        try:
            output += process.stdout.read() or b""
        except (OSError, ValueError):
            pass
        err = process.stderr.read() or b""
        process.stdout.close()
        process.stderr.close()
        if not killed:
            self.durations[step].append(at)
            self.log_attempt(step, argv, output, err, process.returncode, f"{mode}: finished first")
            return False, None, process.returncode, output.decode(errors="replace")
        committed = self.done(step, run_ref)
        if committed:
            # Between the commit and its head in the anchor file, or after both.
            phase = "after-commit" if anchor_size > anchor_before else "committed-unanchored"
        elif commit_seen or pending:
            phase = "in-commit"
        elif opened:
            phase = "verifying"
        else:
            phase = "startup"
        self.log_attempt(step, argv, output, err, "SIGKILL",
                         f"{mode} at {at * 1000:.1f} ms: {phase}; WAL: {watch.describe(started)}")
        self.kills.append({"kind": f"{step}/{mode}", "phase": f"{step} {phase}", "after_s": at})
        return True, phase, None, output.decode(errors="replace")

    def log_attempt(self, step, argv, out, err, status, note):
        with open(self.ctl_log, "a") as f:
            f.write(f"$ {' '.join(argv[1:])}" + (f"  # {note}" if note else "") + "\n"
                    + out.decode(errors="replace") + err.decode(errors="replace") + f"[status {status}]\n")

    def step(self, step, run_ref, allow_kills):
        """The step until it has committed, each attempt perhaps killed."""
        chance = self.KILL_CHANCE[step] if allow_kills else 0.0
        for _ in range(30):
            if self.done(step, run_ref):
                return
            mode = pick(self.rng, self.MODES) if self.rng.random() < chance and len(self.kills) < self.args.kills else None
            killed, phase, status, out = self.attempt(step, run_ref, mode)
            if not killed:
                if status != 0:
                    raise Finding(f"apheresisctl {' '.join(self.argv(step, run_ref))} failed with status {status} "
                                  f"after earlier kills (see {self.ctl_log})")
                if step == "create":
                    match = re.search(r"product (\d+) created for run \d+: DIN (.*)$", out, re.M)
                    if match:
                        self.printed[int(match.group(1))] = match.group(2).strip()
                return
            chance /= 2  # each retry less likely killed, so every step ends
        raise HarnessError(f"{step} of run {run_ref} never completed")

    def run(self, findings):
        batch = max(3, self.args.kills // 2 + 2)  # about two kills a product (create is killed more often)
        log(f"product: making {batch} closed runs (export files through the daemon)")
        runs = self.make_runs(batch)
        self.add_users()
        made = 0
        while True:
            if not runs:
                batch = max(3, (self.args.kills - len(self.kills)) // 2 + 2)
                log(f"product: making {batch} more closed runs")
                runs = self.make_runs(batch)
            run_ref = runs.pop(0)
            for step in self.STEPS:
                self.step(step, run_ref, allow_kills=made > 0)  # the first product, unkilled, times the steps
            made += 1
            if made % 5 == 0:
                log(f"product: {made} products, {len(self.kills)} kills ({phase_summary(self.kills)})")
            if len(self.kills) >= self.args.kills:
                return made


def part_product(args, rng, findings):
    part = ProductPart(args, rng)
    try:
        made = part.run(findings)
    except Finding as finding:
        findings.append(str(finding))
        made = None
    database = part.database
    connection = connect(database, readonly=False)
    incomplete = []
    try:
        products = connection.execute(
            "SELECT id, din, facility, din_year, din_sequence, run_ref FROM products ORDER BY din_sequence").fetchall()
        sequences = [p[4] for p in products]
        dins = [p[1] for p in products]
        gaps = sorted(set(range(1, (max(sequences) if sequences else 0) + 1)) - set(sequences))
        duplicated = (len(sequences) - len(set(sequences))) + (len(dins) - len(set(dins)))
        counters = connection.execute("SELECT facility, din_year, last_sequence FROM din_sequences").fetchall()
        if gaps:
            findings.append(f"DIN GAP: sequence(s) {ranges(gaps)} were never issued to a product")
        if duplicated:
            findings.append(f"DIN DUPLICATED: {duplicated} (sequences {sorted(sequences)})")
        for facility, year, last in counters:
            issued = [p[4] for p in products if p[2] == facility and p[3] == year]
            if last != (max(issued) if issued else 0):
                gaps.append(last)
                findings.append(f"DIN COUNTER {facility}/{year} says {last}, the products' highest is "
                                f"{max(issued) if issued else None}: sequences spent without a product")

        def audit(action, entity_id):
            return connection.execute("SELECT count(*) FROM audit_log WHERE action = ? AND entity_id = ?",
                                      (action, str(entity_id))).fetchone()[0]

        for pid, din, _, _, _, run_ref in products:
            problems = []
            if audit("product.create", pid) != 1:
                problems.append(f"{audit('product.create', pid)} product.create audit entries")
            labs = connection.execute("SELECT id FROM lab_results WHERE product_ref = ?", (pid,)).fetchall()
            if len(labs) != 1:
                problems.append(f"{len(labs)} lab result versions")
            for (lab_id,) in labs:
                if audit("lab.enter", lab_id) != 1:
                    problems.append(f"lab result {lab_id} without its audit entry")
            comps = connection.execute("SELECT id, unit_count, lab_result_ref FROM computations WHERE product_ref = ?",
                                       (pid,)).fetchall()
            if len(comps) != len(labs):
                problems.append(f"{len(comps)} computations for {len(labs)} lab results")
            unit_ids = []
            for comp_id, unit_count, _ in comps:
                if audit("computation.create", comp_id) != 1:
                    problems.append(f"computation {comp_id} without its audit entry")
                units = [u[0] for u in connection.execute("SELECT id FROM units WHERE computation_ref = ?", (comp_id,))]
                if len(units) != unit_count:
                    problems.append(f"computation {comp_id}: {len(units)} units of {unit_count}")
                for unit in units:
                    if audit("unit.create", unit) != 1:
                        problems.append(f"unit {unit} without its audit entry")
                unit_ids += units
            signatures = [s[0] for s in connection.execute("SELECT id FROM signatures WHERE product_ref = ?", (pid,))]
            if len(signatures) != 1:
                problems.append(f"{len(signatures)} signatures")
            for sig in signatures:
                if audit("product.release", sig) != 1:
                    problems.append(f"signature {sig} without its audit entry")
            for unit in unit_ids:
                prints = [p[0] for p in connection.execute("SELECT id FROM label_prints WHERE unit_ref = ?", (unit,))]
                if len(prints) != 1:
                    problems.append(f"unit {unit}: {len(prints)} label prints")
                for label in prints:
                    if audit("label.print", label) != 1:
                        problems.append(f"label print {label} without its audit entry")
            printed = part.printed.get(pid)
            if printed is not None:
                eye = f"{din[:5]} {din[5:7]} {din[7:13]}"
                if not printed.startswith(eye):
                    problems.append(f"apheresisctl printed DIN {printed}, the store holds {din}")
            if problems:
                incomplete.append(pid)
                findings.append(f"PRODUCT {pid} (DIN {din}, run {run_ref}) incomplete: " + "; ".join(problems[:SHOW]))
    finally:
        connection.close()
    audit = audit_verify(args.bin, part.config, part.directory, findings)
    check = integrity(database)
    issued = sum(c[2] for c in counters)
    return {"kills": part.kills, "runs": made if made is not None else len(products), "sent": issued,
            "stored": len(products), "lost": len(gaps), "duplicated": duplicated, "mismatched": len(incomplete),
            "alarms": None, "integrity": check, "audit": audit, "directory": part.directory}


# ---------------------------------------------------------------------------------------------
# The table.

COLUMNS = ["part", "kills", "kills by phase", "runs", "messages sent", "stored", "lost", "duplicated",
           "content mismatches", "alarms mismatched", "integrity", "verdict", "time"]


def table_row(part, result, findings, seconds):
    if result is None:
        verdict = "FAIL (stopped)" if any(f.startswith("STOPPED") for f in findings) else "NOT RUN"
        cells = [part, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", verdict, f"{seconds:.0f} s"]
        return "| " + " | ".join(cells) + " |"
    failed = any(not f.startswith("note:") for f in findings)
    integrity_cell = result["integrity"]
    if "audit" in result:
        integrity_cell += f"; audit {result['audit']}"
    cells = [part, str(len(result["kills"])), phase_summary(result["kills"]), str(result["runs"]),
             str(result["sent"]), str(result["stored"]), str(result["lost"]), str(result["duplicated"]),
             str(result["mismatched"]), "-" if result["alarms"] is None else str(result["alarms"]),
             integrity_cell, "FAIL" if failed else "pass", f"{seconds:.0f} s"]
    return "| " + " | ".join(cells) + " |"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs per part (default 100)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated: daemon,simulator,product")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill points and of the simulator (default 1)")
    parser.add_argument("--bin", help="directory of apheresisd, optia-sim and apheresisctl "
                                      "(default: `swift build --show-bin-path`, the debug build)")
    parser.add_argument("--speed", type=float, default=600, help="simulator speed (default 600)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help="scenarios played in turn (names in simulator/scenarios or paths)")
    parser.add_argument("--keep", action="store_true", help="keep every temporary directory, not only failed parts'")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    if args.bin is None:
        args.bin = subprocess.run(["swift", "build", "--show-bin-path"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip()
    args.bin = os.path.abspath(args.bin)
    return args


def main(argv):
    args = parse_args(argv)
    for tool in ("apheresisd", "optia-sim", "apheresisctl"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            print(f"crash_campaign: no {tool} in {args.bin}: build first (swift build --product {tool})", file=sys.stderr)
            return 2

    def interrupted(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    version = subprocess.run([os.path.join(args.bin, "apheresisd"), "--version"], capture_output=True, text=True,
                             env=clean_env()).stdout.strip()
    print(f"kill -9 campaign: {args.kills} kills per part, seed {args.seed}, speed {args.speed:g}x, "
          f"parts {','.join(args.parts)}")
    print(f"binaries: {args.bin} (apheresisd {version}); scenarios in turn: {', '.join(args.scenarios)}")
    sys.stdout.flush()
    rows, all_findings, status = [], {}, 0
    all_findings_dirs = {}
    reference = None
    kept = []
    try:
        for part in args.parts:
            rng = random.Random(f"{args.seed}/{part}")
            findings = []
            started = now()
            result = None
            log(f"{part}: starting")
            try:
                if part in ("daemon", "simulator") and reference is None:
                    reference = Reference(args)
                if part == "daemon":
                    result = part_daemon(args, reference, rng, findings)
                elif part == "simulator":
                    result = part_simulator(args, reference, rng, findings)
                else:
                    result = part_product(args, rng, findings)
                if result["integrity"] != "ok":
                    findings.append(f"INTEGRITY: PRAGMA integrity_check said {result['integrity']}")
            except Finding as finding:
                findings.append(f"STOPPED: {finding}")
                status = max(status, 1)
                result = None
                current = CURRENT_DIRECTORY.pop(part, None)
                if current:
                    kept.append(keep_directory(current))
                    all_findings_dirs[part] = current
            except HarnessError as error:
                findings.append(f"could not run: {error}")
                status = max(status, 2)
                result = None
                current = CURRENT_DIRECTORY.pop(part, None)
                if current:
                    kept.append(keep_directory(current))
                    findings.append(f"note: logs and stores kept in {current}")
            seconds = now() - started
            if part in ("daemon", "simulator") and reference is not None:
                seconds_note = f" (of which the reference {reference.seconds:.0f} s so far)"
            else:
                seconds_note = ""
            log(f"{part}: done in {seconds:.0f} s{seconds_note}")
            problems = [f for f in findings if not f.startswith("note:")]
            if problems:
                status = max(status, 1) if result is not None else status
            directory = (result or {}).get("directory")
            if directory and result:
                with open(os.path.join(directory, "kills.tsv"), "w") as f:
                    f.write("kill\tkind\tphase\tms after exec\n")
                    for n, kill in enumerate(result["kills"], 1):
                        f.write(f"{n}\t{kill['kind']}\t{kill['phase']}\t{kill['after_s'] * 1000:.1f}\n")
            if (problems or args.keep) and directory:
                kept.append(keep_directory(directory))
            all_findings[part] = (findings, directory if problems else all_findings_dirs.get(part))
            rows.append(table_row(part, result, findings, seconds))
        if reference is not None and (status != 0 or args.keep):
            kept.append(keep_directory(reference.directory))
    except Interrupted as signal_name:
        REAPER.cleanup()
        print(f"\ncrash_campaign: stopped by {signal_name}; children and temporary directories removed", file=sys.stderr)
        return 130
    finally:
        REAPER.cleanup()

    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in rows:
        print(row)
    if "product" in args.parts:
        print("\nproduct row: runs = products made; messages sent = DINs the store's counter issued, stored = products "
              "with a DIN; "
              "lost = DIN sequences without a product; duplicated = DINs issued twice; "
              "content mismatches = incomplete products (units, labels, audit entries).")
    if reference is not None:
        print(f"reference (no kills): {reference.runs} run(s), {reference.seconds:.0f} s")
    print()
    for part, (findings, directory) in all_findings.items():
        if not findings:
            print(f"{part}: nothing lost, duplicated or changed")
            continue
        for finding in findings:
            print(f"{part}: {finding}")
        if directory:
            print(f"{part}: logs and stores kept in {directory}")
    for directory in kept:
        if not any(directory == d for _, d in all_findings.values()):
            print(f"kept: {directory}")
    if status == 1:
        print("\ncrash_campaign: FINDINGS (see above); reproduce with --seed", args.seed)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
