#!/usr/bin/env python3
"""The "Clocks" campaign (issue 13): apheresisd under Debian's libfaketime, its wall clock stepped and
slewed during a run, and a separator whose own clock jumps.

    scripts/faults/clock_campaign.py [--bin DIR] [--smoke] [--only CASES] [--keep-logs DIR]

The daemon runs with LD_PRELOAD=libfaketimeMT.so.1, FAKETIME_TIMESTAMP_FILE (rewritten by this
script to change the offset during the run), FAKETIME_NO_CACHE=1 (read at every call) and
FAKETIME_DONT_FAKE_MONOTONIC=1: an NTP step or a person setting the clock moves CLOCK_REALTIME
only; CLOCK_MONOTONIC and CLOCK_BOOTTIME (Swift's ContinuousClock) go on. It is started through
the faketime wrapper (see faketime_prefix) with scripts/faults/faketime_monotonic.c preloaded in
front of libfaketime, which would otherwise move the daemon's monotonic timers too (libfaketime
0.9.10 shifts absolute timerfd deadlines on every clock: Task.sleep would last an hour more after
a -1 h step). optia-sim runs without it, over TCP, at a fast speed. Cases:

  step+1h      the wall clock jumps +3600 s mid-run (full form: twice)
  step-1h      the wall clock jumps -3600 s mid-run (full form: twice)
  slew-x1.0005 the wall clock runs 500 ppm fast, NTP's largest slew, from the daemon's start
  slew-x1.5    the wall clock runs 50 % fast from the start (0.5 s per second: under the 1 s a
               look that makes a step, so still no step event)
  sep-jump     the separator's clock jumps (simulator/scenarios/fault-clock-jump.toml: +3600 s at
               minute 20, -300 s at minute 40), the daemon's clocks untouched (libfaketime loaded
               with offset +0)

Each is compared with a reference run of the same scenario without libfaketime (for sep-jump: the
same scenario without its clock_jump entries). Checks:
  - no false STALE_TELEMETRY or LINK_DOWN (staleness is measured on the monotonic clock);
  - a wall_clock_step event for each wall-clock step (the daemon's contract: every second it
    compares how far the wall clock advanced with the monotonic clock; more than 1 s apart is a step:
    a warning 'wall clock stepped by +3600.0 s' and an events row kind 'wall_clock_step' whose
    detail is JSON with step_s, wall_before_unix_ms, wall_after_unix_ms), and none for a slew;
  - durations and rates right: the run's last RUN_TIME (the device's honest duration), its samples,
    the watch's derived figures, predictions, completeness and per-TICK series equal the reference
    run's; the API's ages measured across the step (age_seconds of an alarm raised before it, the
    open run's latest_sample_age_seconds) agree with the real time that passed;
  - every message stored once;
  - sep-jump: DATA_CLOCK_JUMP raised at the jumps (docs/limits-implementation.md: latched, raised
    at minute 20, repeated at minute 40), the samples flagged, and nothing else differs from the
    reference: no other alarm, no gap, no rate spike.

--smoke: each case once, 30 simulated minutes at 150x (sep-jump: 45) (CI). The full form: two steps
per step case and 60-minute runs at 60x.

A failed case keeps its temporary directory (logs, store) and prints its path. Exit status: 0 when
every case passed, 1 otherwise (or when something could not be measured),
130 on Ctrl-C. Every child and temporary directory is removed on the way out.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts", "harness"))
from apheresis_harness import (  # noqa: E402  (the path above first)
    REAPER, Daemon, HarnessError, Interrupted, Simulator, check_config, keep_directory, log, read_text, scenario_text,
    simulator_state, store_facts, write_config)

import sqlite3  # noqa: E402

SCENARIOS = os.path.join(ROOT, "simulator", "scenarios")
NORMAL = os.path.join(SCENARIOS, "normal-boy-10y.toml")
CLOCK_JUMP = os.path.join(SCENARIOS, "fault-clock-jump.toml")
LIBFAKETIME_CANDIDATES = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                          "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                          "/usr/lib/faketime/libfaketimeMT.so.1"]
# A device alarm (latched until acknowledged or the run ends) raised early in the run (minute 9 of 30 or
# 60, before the first step), so that an alarm raised before a step is active after it: its age_seconds
# must go on with real time.
EARLY_ALARM = '[[timeline]]\nat_min = 9\naction = "device_alarm"\ncode = "CLOCK_CAMPAIGN"\ntext = "raised before the step"\nseverity = "WARNING"\n'
SHIM_SOURCE = os.path.join(ROOT, "scripts", "faults", "faketime_monotonic.c")
DEFAULT_SHIM = os.path.join(ROOT, ".build-faults", "tools", "faketime_monotonic.so")
CASES = ["step+1h", "step-1h", "slew-x1.0005", "slew-x1.5", "sep-jump"]
FALSE_ALARMS = ("STALE_TELEMETRY", "LINK_DOWN")
AGE_TOLERANCE_S = 3.0
STEP_TOLERANCE_S = 2.0


class Form:
    def __init__(self, smoke):
        self.smoke = smoke
        self.speed = 150 if smoke else 60
        self.end_at_min = 30 if smoke else 60
        # fault-clock-jump.toml jumps at minutes 20 and 40 and ends at 60: the smoke stops at 45.
        self.clock_jump_end_at_min = 45 if smoke else None
        # Fractions of the run's real length at which the wall clock steps.
        self.step_at = [0.45] if smoke else [0.35, 0.7]

    def run_seconds(self, end_at_min):
        return end_at_min * 60 / self.speed


def case_plan(name, form):
    """(scenario text, reference scenario text, faketime file at start, steps [(fraction, content, step_s)])."""
    normal = in_timeline(scenario_text(NORMAL, end_at_min=form.end_at_min), EARLY_ALARM)
    if name in ("step+1h", "step-1h"):
        sign = 1 if name == "step+1h" else -1
        steps, offset = [], 0
        for fraction in form.step_at:
            offset += sign * 3600
            steps.append((fraction, f"{offset:+d}\n", sign * 3600.0))
        return normal, normal, "+0\n", steps
    if name.startswith("slew-x"):
        return normal, normal, f"+0 x{name[len('slew-x'):]}\n", []
    if name == "sep-jump":
        jumping = scenario_text(CLOCK_JUMP, end_at_min=form.clock_jump_end_at_min)
        calm = re.sub(r'(?ms)^\[\[timeline\]\]\nat_min = [\d.]+\naction = "clock_jump"\nseconds = -?\d+\n?', "", jumping)
        if "clock_jump" in calm:
            raise HarnessError("could not take the clock_jump entries out of fault-clock-jump.toml for its reference run")
        return jumping, calm, "+0\n", []
    raise HarnessError(f"unknown case {name}")


def in_timeline(text, entry):
    """The scenario with one more [[timeline]] entry, in time order (the simulator wants them so)."""
    at = float(re.search(r"at_min = ([\d.]+)", entry).group(1))
    parts = re.split(r"(?m)^(?=\[\[timeline\]\])", text)
    for i, part in enumerate(parts[1:], 1):
        if float(re.search(r"at_min = ([\d.]+)", part).group(1)) > at:
            return "".join(parts[:i]) + entry + "\n" + "".join(parts[i:])
    return text.rstrip("\n") + "\n\n" + entry


def end_of(text):
    match = re.search(r"(?m)^end_at_min = ([\d.]+)", text)
    return float(match.group(1)) if match else 60.0


# ---------------------------------------------------------------------------------------------

class RunResult:
    """One daemon run of one scenario: what the API and the store said."""

    def __init__(self):
        self.watch = None
        self.run = None
        self.facts = None
        self.alarms = {}           # code -> rows
        self.journal_alarms = {}   # code -> [transition...] from the journal (repeats are only there)
        self.events = {}
        self.wall_steps = []       # detail dicts of wall_clock_step events
        self.step_lines = []       # signed seconds from 'wall clock stepped by X s'
        self.samples = 0
        self.last_run_time = None
        self.flagged_samples = 0
        self.gaps = 0
        self.span_ms = None
        self.sent = 0
        self.lost = []
        self.duplicated = 0
        self.age_checks = []       # (what, measured, expected)
        self.api_false_alarms = set()
        self.seconds = 0.0
        self.directory = None


def run_once(args, form, label, text, faketime_start=None, steps=(), libfaketime=None):
    directory = REAPER.tempdir(f"apheresisd-clock-{label}-")
    result = RunResult()
    result.directory = directory
    completed = False
    started = time.monotonic()
    sim = daemon = None
    wrapper_pid = None
    try:
        state_dir = os.path.join(directory, "state")
        os.makedirs(state_dir)
        sim = Simulator(args.bin, text, directory, 1, form.speed)
        sim.start()
        sim.wait_port()
        config = os.path.join(directory, "apheresisd.toml")
        write_config(config, state_dir, "info", [
            f'[[device]]\nname = "optia-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {sim.port}\n'])
        check_config(args.bin, config)
        env, prefix = {}, None
        stamp = os.path.join(directory, "faketime.rc")
        if faketime_start is not None:
            with open(stamp, "w") as f:
                f.write(faketime_start)
            # The faketime wrapper appends libfaketime to LD_PRELOAD: the shim comes first.
            env = {"FAKETIME_TIMESTAMP_FILE": stamp, "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                   "LD_PRELOAD": args.shim}
            prefix = faketime_prefix(libfaketime)
        daemon = Daemon(args.bin, directory, config, env_extra=env, argv_prefix=prefix).start()
        wrapper_pid = daemon.process.pid if prefix else None
        if prefix:
            check_faked(daemon, faketime_start)
        run_started = time.monotonic()
        real_length = form.run_seconds(end_of(text))
        pending = list(steps)
        alarm_seen = {}  # alarm id -> (monotonic when first seen, age then)
        latest_checks = []
        while sim.process.poll() is None:
            now = time.monotonic()
            if not daemon.alive():
                raise HarnessError(f"apheresisd exited with status {daemon.process.returncode}" + read_text(daemon.err)[-2000:])
            if now - run_started > real_length + 120:
                raise HarnessError("the simulator did not finish its run in time")
            if pending and now - run_started >= pending[0][0] * real_length:
                fraction, content, step_s = pending.pop(0)
                log(f"{label}: wall clock {step_s:+.0f} s (faketime '{content.strip()}')")
                with open(stamp + ".tmp", "w") as f:
                    f.write(content)
                os.replace(stamp + ".tmp", stamp)
                latest_checks.append(now + 3.0)
            status, body = daemon.get("/api/v1/alarms", timeout=3)
            if status == 200:
                for alarm in body.get("data", []):
                    if alarm.get("code") in FALSE_ALARMS:
                        result.api_false_alarms.add(alarm["code"])
                    if alarm.get("code", "").startswith("DEVICE_") and alarm.get("id"):
                        first = alarm_seen.setdefault(alarm["id"], (now, alarm["age_seconds"]))
                        if latest_checks and now >= latest_checks[0]:
                            expected = first[1] + (now - first[0])
                            result.age_checks.append((f"alarm {alarm['code']} age_seconds", alarm["age_seconds"], expected))
            if latest_checks and now >= latest_checks[0]:
                latest_checks.pop(0)
                status, runs = daemon.get("/api/v1/runs", timeout=3)
                if status == 200:
                    for run in runs.get("data", []):
                        age = run.get("latest_sample_age_seconds")
                        if run.get("state") == "open" and age is not None:
                            # TICKs arrive many times a second: the newest sample is a moment old.
                            result.age_checks.append(("open run latest_sample_age_seconds", age, 0.0))
            time.sleep(0.25)
        if sim.process.returncode != 0:
            raise HarnessError(f"optia-sim exited with status {sim.process.returncode}: {read_text(sim.err)[-1500:]}")
        time.sleep(0.5)
        # The watch of an ended run is kept while the daemon runs: read it before stopping.
        database = os.path.join(state_dir, "apheresisd.sqlite")
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        try:
            run_ref = connection.execute("SELECT id FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        finally:
            connection.close()
        _, watch = daemon.get(f"/api/v1/runs/{run_ref}/watch")
        _, run = daemon.get(f"/api/v1/runs/{run_ref}")
        result.watch = watch.get("data") if isinstance(watch, dict) else None
        result.run = run.get("data") if isinstance(run, dict) else None
        status = daemon.stop()
        if status not in (0, None):
            raise HarnessError(f"apheresisd exited with status {status} on SIGTERM")
        read_store(result, database, run_ref, sim)
        for match in re.finditer(r"wall clock stepped by ([+-]?\d+\.\d) s", daemon.log()):
            result.step_lines.append(float(match.group(1)))
        for match in re.finditer(r"\b(raised|repeated|escalated|deescalated|cleared) ([A-Z][A-Z0-9_]+): ", daemon.log()):
            result.journal_alarms.setdefault(match.group(2), []).append(match.group(1))
        result.seconds = time.monotonic() - started
        completed = True
        return result
    finally:
        for process in [daemon.process if daemon else None, sim.process if sim else None]:
            if process is not None:
                REAPER.stop(process, grace=10)
        if wrapper_pid is not None:
            # The wrapper's shared memory and semaphore, when it did not get to remove them itself.
            for name in (f"faketime_shm_{wrapper_pid}", f"sem.faketime_sem_{wrapper_pid}"):
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass
        if not completed and not isinstance(sys.exc_info()[1], Interrupted):
            keep(directory, label)


def keep(directory, label):
    """A failed run's directory (logs, store) stays for inspection; the caller is told where."""
    keep_directory(directory)
    print(f"kept for inspection: {directory}", flush=True)


def read_store(result, database, run_ref, sim):
    facts = store_facts(database, sim.serial)
    state = simulator_state(sim.state)
    made = state["created"] or set(range(1, state["last"] + 1))
    result.facts = facts
    result.sent = len(made)
    result.lost = sorted(made - facts["distinct"]) + sorted(state["acked"] - facts["distinct"])
    result.duplicated = facts["repeats"] + facts["sample_repeats"] + facts["quarantined"]
    result.events = facts["events"]
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        for code, alarm_id in connection.execute("SELECT code, id FROM alarms ORDER BY id"):
            result.alarms.setdefault(code, []).append(alarm_id)
        for (detail,) in connection.execute("SELECT detail FROM events WHERE kind = 'wall_clock_step' ORDER BY id"):
            try:
                result.wall_steps.append(json.loads(detail))
            except (TypeError, ValueError):
                result.wall_steps.append({"unparsed": detail})
        result.samples, result.last_run_time = connection.execute(
            "SELECT count(*), max(run_time_min) FROM samples WHERE run_ref = ?", (run_ref,)).fetchone()
        result.flagged_samples = connection.execute(
            "SELECT count(*) FROM samples WHERE run_ref = ? AND quality_flags LIKE '%clock%'", (run_ref,)).fetchone()[0]
        result.gaps = connection.execute("SELECT count(*) FROM run_gaps WHERE run_ref = ?", (run_ref,)).fetchone()[0]
        opened, closed = connection.execute("SELECT opened_at_unix_ms, closed_at_unix_ms FROM runs WHERE id = ?", (run_ref,)).fetchone()
        result.span_ms = (closed - opened) if opened is not None and closed is not None else None
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------
# Comparison with the reference.

def differences(a, b, path="", out=None, tolerance=1e-9):
    """Where two JSON values differ (numbers within a relative tolerance)."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            differences(a.get(key), b.get(key), f"{path}.{key}" if path else key, out, tolerance)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items, reference {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{path}[{i}]", out, tolerance)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-12):
            out.append(f"{path}: {a} (reference {b})")
    elif a != b:
        out.append(f"{path}: {a!r} (reference {b!r})")
    return out


def duration_findings(result, reference):
    """What the daemon reports as durations and rates, against the run without faketime."""
    found = []
    if result.last_run_time != reference.last_run_time:
        found.append(f"last RUN_TIME {result.last_run_time} min (reference {reference.last_run_time})")
    if result.samples != reference.samples:
        found.append(f"{result.samples} samples (reference {reference.samples})")
    if result.watch is None or reference.watch is None:
        found.append("no watch of the ended run in the API")
    else:
        keys = ["run_time_minutes", "derived", "predictions", "completeness", "series"]

        def judged(watch):
            # A point's received_at is the wall-clock time the daemon received it (the dashboard's
            # time axis): it follows the daemon's wall clock by design, as the stored wall times
            # do (reported apart, "wall span"); every figure of the point must still be the same.
            picked = {k: watch.get(k) for k in keys}
            if isinstance(picked.get("series"), list):
                picked["series"] = [{k: v for k, v in p.items() if k != "received_at"} if isinstance(p, dict) else p
                                    for p in picked["series"]]
            return picked

        diffs = differences(judged(result.watch), judged(reference.watch))
        if diffs:
            found.append(f"watch differs in {len(diffs)} place(s): {'; '.join(diffs[:3])}")
    if result.run is not None and reference.run is not None:
        diffs = differences(result.run.get("completeness"), reference.run.get("completeness"), "completeness")
        if diffs:
            found.append("; ".join(diffs[:2]))
    for what, measured, expected in result.age_checks:
        if measured is None or abs(measured - expected) > AGE_TOLERANCE_S:
            found.append(f"{what} {measured:.1f} s across the step, where {expected:.1f} s of real time had passed")
    return dedupe(found)


def dedupe(items):
    return list(dict.fromkeys(items))


def false_stale(result, reference):
    counts = {code: len(result.alarms.get(code, [])) - len(reference.alarms.get(code, [])) for code in FALSE_ALARMS}
    total = sum(max(0, v) for v in counts.values())
    extra_api = result.api_false_alarms - reference.api_false_alarms
    return total, counts, extra_api


def judge(name, steps, result, reference):
    reasons, notes = [], []
    total, counts, extra_api = false_stale(result, reference)
    if total or extra_api:
        reasons.append("false alarm(s): " + ", ".join(f"{c} {n}" for c, n in counts.items() if n > 0)
                       + (f" (API showed {', '.join(sorted(extra_api))})" if extra_api else ""))
    expected_steps = [s for _, _, s in steps]
    seen = [d.get("step_s") for d in result.wall_steps]
    if len(seen) != len(expected_steps):
        reasons.append(f"{len(seen)} wall_clock_step event(s), expected {len(expected_steps)}"
                       + (f" (journal lines: {len(result.step_lines)})" if result.step_lines or expected_steps else ""))
    else:
        for want, got, detail in zip(expected_steps, seen, result.wall_steps):
            if not isinstance(got, (int, float)) or abs(got - want) > STEP_TOLERANCE_S:
                reasons.append(f"wall_clock_step step_s {got!r}, expected {want:+.0f}")
            before, after = detail.get("wall_before_unix_ms"), detail.get("wall_after_unix_ms")
            if not isinstance(before, int) or not isinstance(after, int) or abs((after - before) / 1000 - want) > 5:
                reasons.append(f"wall_clock_step detail {detail}: wall_before/after do not span the step")
    lines_expected = [f"{s:+.1f}" for s in expected_steps]
    lines_seen = [f"{s:+.1f}" for s in result.step_lines]
    if lines_seen != lines_expected:
        reasons.append(f"journal 'wall clock stepped by' lines {lines_seen or 'none'}, expected {lines_expected or 'none'}")
    durations = duration_findings(result, reference)
    reasons += durations
    if result.lost:
        reasons.append(f"{len(result.lost)} message(s) lost")
    if result.duplicated:
        reasons.append(f"{result.duplicated} duplicated")
    if result.facts["integrity"] != "ok":
        reasons.append(f"integrity_check: {result.facts['integrity'][:100]}")
    # Nothing else wrong: the same alarms as the reference (sep-jump: plus DATA_CLOCK_JUMP).
    expected_codes = {c: len(v) for c, v in reference.alarms.items()}
    if name == "sep-jump":
        jumps = result.journal_alarms.get("DATA_CLOCK_JUMP", [])
        if len(result.alarms.get("DATA_CLOCK_JUMP", [])) == 0:
            reasons.append("no DATA_CLOCK_JUMP alarm")
        notes.append(f"DATA_CLOCK_JUMP steps: {', '.join(jumps) or 'none'}; samples flagged: {result.flagged_samples}")
        expected_codes["DATA_CLOCK_JUMP"] = len(result.alarms.get("DATA_CLOCK_JUMP", [])) or 1
        raises = sum(1 for k in jumps if k in ("raised", "repeated", "escalated"))
        if raises < 2:
            reasons.append(f"DATA_CLOCK_JUMP seen {raises} time(s), expected 2 (minute 20 and minute 40)")
        if result.flagged_samples < 2:
            reasons.append(f"{result.flagged_samples} sample(s) flagged for the clock jump, expected 2")
    got_codes = {c: len(v) for c, v in result.alarms.items()}
    other = {c: (got_codes.get(c, 0), expected_codes.get(c, 0)) for c in set(got_codes) | set(expected_codes)
             if got_codes.get(c, 0) != expected_codes.get(c, 0) and c not in FALSE_ALARMS}
    if other:
        reasons.append("alarms differ from the reference: " + ", ".join(f"{c} {g} (reference {e})" for c, (g, e) in sorted(other.items())))
    if result.gaps != reference.gaps:
        reasons.append(f"{result.gaps} gap(s) (reference {reference.gaps})")
    for what, measured, expected in result.age_checks:
        notes.append(f"across the step: {what} {measured:.1f} s, real time {expected:.1f} s")
    if result.span_ms is not None and reference.span_ms is not None:
        notes.append(f"wall span of the run {result.span_ms / 1000:.1f} s (reference {reference.span_ms / 1000:.1f} s): "
                     "stored wall times follow the daemon's wall clock, RUN_TIME does not")
    return dedupe(reasons), notes, durations


def row(name, steps, result, reference, reasons, durations):
    total, _, extra_api = false_stale(result, reference)
    expected = len(steps)
    seen = len(result.wall_steps)
    if name == "sep-jump":
        jumps = sum(1 for k in result.journal_alarms.get("DATA_CLOCK_JUMP", []) if k in ("raised", "repeated", "escalated"))
        jump_cell = f"wall {expected}/{seen}; DATA_CLOCK_JUMP 2/{jumps}"
    else:
        values = ", ".join(f"{d.get('step_s'):+.1f} s" if isinstance(d.get("step_s"), (int, float)) else "?" for d in result.wall_steps)
        jump_cell = f"{expected}/{seen}" + (f" ({values})" if values else "")
    durations_cell = "yes" if not durations else "NO: " + "; ".join(durations[:3])
    lost_dup = f"{len(result.lost)} / {result.duplicated} (of {result.sent})"
    verdict = "PASS" if not reasons else "FAIL: " + "; ".join(reasons)
    return [name, str(total) + (f" (API: {', '.join(sorted(extra_api))})" if extra_api else ""), jump_cell,
            durations_cell, lost_dup, verdict]


HEADER = ["case", "false stale alarms", "jump events (expected/seen)", "durations right",
          "messages lost / duplicated", "verdict"]


def faketime_prefix(libfaketime):
    """How the daemon is started under libfaketime.

    Not with LD_PRELOAD alone: libfaketime's constructor then creates its shared memory and adds
    FAKETIME_SHARED to the environment (setenv), which moves glibc's `environ` array; Swift finds
    CommandLine.arguments on Linux by walking back from `environ` to argv, so the daemon would start
    with no arguments at all, i.e. as the demo (and optia-sim would print its usage). The faketime
    wrapper creates the shared memory itself and hands FAKETIME_SHARED down, so the daemon's
    libfaketime only attaches and never calls setenv. The wrapper also sets FAKETIME (which would
    win over FAKETIME_TIMESTAMP_FILE): `env -u FAKETIME` takes it away again."""
    wrapper = shutil.which("faketime")
    if wrapper is None:
        raise HarnessError("the faketime wrapper is not installed (Debian package faketime)")
    variant = ["-m"] if libfaketime.endswith("MT.so.1") else []
    return [wrapper, *variant, "-f", "+0", "env", "-u", "FAKETIME"]


def check_faked(daemon, faketime_start):
    """The daemon really runs under libfaketime with the file as its source: its maps name the
    library and its environment has the file and no FAKETIME."""
    pid = daemon.daemon_pid()
    maps = read_text(f"/proc/{pid}/maps") if pid else ""
    if "libfaketime" not in maps:
        raise HarnessError("apheresisd was started without libfaketime loaded")
    if "faketime_monotonic" not in maps:
        raise HarnessError("apheresisd was started without the faketime_monotonic shim loaded")
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().split(b"\0")
    if any(v.startswith(b"FAKETIME=") for v in environ):
        raise HarnessError("FAKETIME is set in the daemon's environment: it would win over the timestamp file")


def build_shim(path):
    """Compiles scripts/faults/faketime_monotonic.c when the library is missing or older."""
    if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(SHIM_SOURCE):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    result = subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-Wall", "-o", path, SHIM_SOURCE, "-ldl"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"cannot build {SHIM_SOURCE}:\n{result.stderr}")
    return path


def find_libfaketime():
    for path in LIBFAKETIME_CANDIDATES:
        if os.path.exists(path):
            return path
    listing = subprocess.run(["dpkg", "-L", "libfaketime"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if line.endswith("libfaketimeMT.so.1"):
            return line
    return None


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", help="directory of apheresisd and optia-sim (default: swift build --show-bin-path)")
    parser.add_argument("--smoke", action="store_true", help="each case once, short (CI)")
    parser.add_argument("--only", help="comma-separated cases: " + ",".join(CASES))
    parser.add_argument("--keep-logs", help="copy every log into this directory")
    parser.add_argument("--shim", default=DEFAULT_SHIM,
                        help="faketime_monotonic.so (built from scripts/faults/faketime_monotonic.c when missing)")
    args = parser.parse_args(argv)
    if args.bin is None:
        args.bin = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
    args.bin = os.path.abspath(args.bin)
    REAPER.keep_logs = os.path.abspath(args.keep_logs) if args.keep_logs else None
    cases = args.only.split(",") if args.only else CASES
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; the cases are {', '.join(CASES)}")
    libfaketime = find_libfaketime()
    if libfaketime is None:
        parser.error("libfaketime is not installed (Debian package faketime): make clock-smoke installs it")
    try:
        args.shim = os.path.abspath(build_shim(args.shim))
    except HarnessError as error:
        parser.error(str(error))

    def interrupted(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, interrupted)

    form = Form(args.smoke)
    print(f"# Clock campaign ({'smoke' if args.smoke else 'full'}): optia-sim at {form.speed}x over TCP, "
          f"apheresisd under {os.path.basename(libfaketime)}", flush=True)
    rows, notes, status = [], [], 0
    references = {}
    started = time.monotonic()
    try:
        for name in cases:
            try:
                text, reference_text, faketime_start, steps = case_plan(name, form)
                if reference_text not in references:
                    log(f"reference run ({'no clock jumps' if name == 'sep-jump' else 'no faketime'})")
                    references[reference_text] = run_once(args, form, "reference", reference_text)
                    REAPER.remove_dir(references[reference_text].directory)
                    notes.append(f"reference for {name}: {references[reference_text].seconds:.0f} s, "
                                 f"{references[reference_text].sent} messages, alarms "
                                 f"{ {c: len(v) for c, v in references[reference_text].alarms.items()} }")
                reference = references[reference_text]
                log(f"{name}")
                result = run_once(args, form, name, text, faketime_start, steps, libfaketime)
                reasons, case_notes, durations = judge(name, steps, result, reference)
                if reasons:
                    keep(result.directory, name)
                else:
                    REAPER.remove_dir(result.directory)
                rows.append(row(name, steps, result, reference, reasons, durations))
                notes += [f"{name}: {n}" for n in case_notes]
                notes.append(f"{name}: {result.seconds:.0f} s; events "
                             + ", ".join(f"{k} {v}" for k, v in sorted(result.events.items()) if k in
                                         ("wall_clock_step", "stale", "link_down", "link_up")))
                if reasons:
                    status = 1
            except HarnessError as error:
                rows.append([name, "-", "-", "-", "-", f"could not be measured: {str(error).splitlines()[0]}"])
                log(f"{name}: {error}")
                status = 1
        print()
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for cells in rows:
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if notes:
            print()
            for note in notes:
                print(f"- {note}")
        print(f"\n{len(cases)} case(s) in {time.monotonic() - started:.0f} s", flush=True)
    except Interrupted as signal_name:
        log(f"interrupted ({signal_name}): cleaning up")
        status = 130
    finally:
        REAPER.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
