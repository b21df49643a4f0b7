#!/usr/bin/env python3
"""The daemon's figures from issue 12, measured from outside against the real release binaries.

    scripts/bench/daemon_figures.py [--bin DIR] [--only ready,devices,soak,shutdown]
                                    [--devices N] [--window S] [--soak-minutes M]
                                    [--scenario FILE] [--quick] [--keep-logs DIR] [--json FILE]

Parts (each selectable with --only):
  ready     start to READY=1: apheresisd with one simulated device (transport "simulator"),
            NOTIFY_SOCKET pointing at our own datagram socket; time from just before the exec to
            the datagram holding READY=1. 5 starts on a new store and 5 on an existing one, median.
  devices   N optia-sim over TCP (default 64) on one daemon, at speed 1 and speed 10: after every
            link is up and 10 s of settling, CPU (utime+stime from /proc/PID/stat) over --window
            seconds as a share of the whole machine (all cores), and peak VmRSS.
  soak      4 separators at speed 600 for --soak-minutes (default 10): VmRSS, open descriptors and
            threads every 10 s; first, last, max and the slope over the second half (MB/hour).
  shutdown  SIGTERM to exit with 1 and N devices: scripts/bench/shutdown_time.sh when it is there
            (its median of 3 rounds, 1 with --quick), otherwise measured here the same way.

--quick: N=8, 20 s windows, a 2-minute soak: a smoke run, not figures.

optia-sim plays one run and exits; this script starts it again on the same port and state file
whenever it does (a new run, as the daemon's own demo simulator does), so a separator never
goes quiet however long the window. Each simulator has its own serial number.

Prints the machine first, then one Markdown table: figure, goal, measured, notes. A missed goal is
a figure, not a failure: the exit status is non-zero only when something could not be measured
(1), or on Ctrl-C (130). Every child process and temporary directory is removed on the way out.
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARTS = ["ready", "devices", "soak", "shutdown"]
FLAT_MB_PER_H = 5.0

sys.path.insert(0, os.path.join(ROOT, "scripts", "harness"))
from apheresis_harness import (  # noqa: E402  (the path above first)
    NPROC, REAPER, Fleet, HarnessError as MeasureError, Interrupted, check_config, clean_env,
    log, machine_busy, machine_description, message_count, open_fds, proc_cpu_seconds, proc_status, read_text,
    status_mb, tail, wait_until, write_config)


# ---------------------------------------------------------------------------------------------
# Part 1: start to READY=1.

def notify_reader(sock, received, stop):
    """Drains the notification socket for as long as the daemon may write to it."""
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return
        received.append((time.monotonic(), data.decode(errors="replace")))


def start_to_ready_once(bin_dir, directory, config, rounds_label):
    notify_path = os.path.join(directory, "notify.sock")
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    received, stop = [], threading.Event()
    reader = threading.Thread(target=notify_reader, args=(sock, received, stop), daemon=True)
    reader.start()
    err_path = os.path.join(directory, f"daemon-{rounds_label}.err")
    daemon = None
    try:
        with open(err_path, "wb") as err:
            started = time.monotonic()
            daemon = REAPER.spawn([os.path.join(bin_dir, "apheresisd"), "--config", config],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                  env=clean_env({"NOTIFY_SOCKET": notify_path}), cwd=directory)
        ready_at = wait_until(lambda: next((t for t, text in received if "READY=1" in text.split("\n")), None),
                              30, "READY=1 on the notification socket", poll=0.002, process=daemon,
                              log_file=err_path)
        ready = ready_at - started
        stopping = time.monotonic()
        REAPER.stop(daemon, grace=30)  # the reader keeps draining while it stops
        return ready, time.monotonic() - stopping, daemon.returncode
    finally:
        if daemon is not None and daemon.poll() is None:
            REAPER.stop(daemon, grace=30)
        stop.set()
        reader.join()
        sock.close()


def part_ready(args):
    directory = REAPER.tempdir("apheresisd-figures-ready-")
    try:
        scenario = os.path.abspath(args.scenario)
        device = (f'[[device]]\nname = "optia-sim"\ntransport = "simulator"\nscenario = "{scenario}"\n'
                  f'speed = 60\n')
        rows = []
        fresh, existing, stops, statuses = [], [], [], set()
        existing_state = os.path.join(directory, "state-existing")
        for i in range(args.ready_rounds):
            state = os.path.join(directory, f"state-new-{i}")
            config = os.path.join(directory, f"new-{i}.toml")
            write_config(config, state, "info", [device])
            if i == 0:
                check_config(args.bin, config)
            ready, stop, status = start_to_ready_once(args.bin, directory, config, f"new-{i}")
            fresh.append(ready)
            stops.append(stop)
            statuses.add(status)
            shutil.rmtree(state, ignore_errors=True)
        config = os.path.join(directory, "existing.toml")
        write_config(config, existing_state, "info", [device])
        start_to_ready_once(args.bin, directory, config, "existing-prime")  # makes the store
        for i in range(args.ready_rounds):
            ready, stop, status = start_to_ready_once(args.bin, directory, config, f"existing-{i}")
            existing.append(ready)
            stops.append(stop)
            statuses.add(status)
        for label, values in (("new store", fresh), ("existing store", existing)):
            median = statistics.median(values) * 1000
            rows.append(row(
                f"start to READY=1 ({label})", "< 300 ms", f"{median:.0f} ms",
                f"{goal_word(median < 300)}; median of {len(values)} starts (min {min(values) * 1000:.0f}, "
                f"max {max(values) * 1000:.0f} ms), exec to the datagram, 1 simulated device",
                value=median, unit="ms", met=median < 300, samples=[v * 1000 for v in values]))
        rows[-1]["notes"] += (f"; after READY, SIGTERM to exit took {statistics.median(stops):.2f} s (median, "
                              f"max {max(stops):.2f} s) with this simulator-transport device, exit status "
                              f"{', '.join(str(s) for s in sorted(statuses))}")
        return rows
    finally:
        REAPER.remove_dir(directory)


# ---------------------------------------------------------------------------------------------
# Part 2: N separators on one daemon.

def part_devices(args):
    rows = []
    for speed in args.speeds:
        log(f"devices: {args.devices} separators at speed {speed}: starting")
        fleet = Fleet(args.bin, args.scenario, args.devices, speed, f"devices-x{speed}")
        try:
            fleet.start()
            log(f"devices: every link up after {fleet.links_up_s:.1f} s; settling {args.settle:.0f} s")
            time.sleep(args.settle)
            fleet.alive()
            pid = fleet.daemon.pid
            database = fleet.database()
            messages_start = message_count(database)
            cpu_start, busy_start = proc_cpu_seconds(pid), machine_busy()
            started = time.monotonic()
            peak_rss = 0.0
            first_rss = status_mb(proc_status(pid), "VmRSS")
            log(f"devices: sampling for {args.window:.0f} s")
            series = []  # (s into the window, VmRSS MB), every 10 s for --json
            while time.monotonic() - started < args.window:
                fleet.alive()
                rss_now = status_mb(proc_status(pid), "VmRSS")
                peak_rss = max(peak_rss, rss_now)
                if not series or time.monotonic() - started - series[-1][0] >= 10:
                    series.append((round(time.monotonic() - started), round(rss_now, 2)))
                time.sleep(min(1.0, max(0.0, args.window - (time.monotonic() - started))))
            elapsed = time.monotonic() - started
            fleet.alive()
            cpu_seconds = proc_cpu_seconds(pid) - cpu_start
            busy_end = machine_busy()
            status = proc_status(pid)
            peak_rss = max(peak_rss, status_mb(status, "VmRSS"))
            messages_end = message_count(database)
            machine_pct = 100 * (busy_end[0] - busy_start[0]) / max(1, busy_end[1] - busy_start[1])
            cpu_pct = 100 * cpu_seconds / (elapsed * NPROC)
            rate = ("?" if messages_start is None or messages_end is None
                    else f"{(messages_end - messages_start) / elapsed:.1f}")
            threads = status.get("Threads", "?")
            hwm = status_mb(status, "VmHWM")
            common = (f"{args.devices} x optia-sim over TCP at speed {speed}; {rate} messages/s stored; "
                      f"{threads} threads; links up {fleet.links_up_s:.1f} s after exec; "
                      f"machine {machine_pct:.0f} % busy in the window")
            rows.append(row(
                f"{args.devices} separators, CPU, speed {speed:g}", f"< 10 % of {NPROC} cores",
                f"{cpu_pct:.1f} %",
                f"{goal_word(cpu_pct < 10)}; {cpu_seconds:.1f} CPU s over {elapsed:.0f} s "
                f"({cpu_pct * NPROC:.1f} % of one core); {common}",
                value=cpu_pct, unit="% of machine", met=cpu_pct < 10))
            rows.append(row(
                f"{args.devices} separators, peak RSS, speed {speed:g}", "< 64 MB", f"{peak_rss:.1f} MB",
                f"{goal_word(peak_rss < 64)}; VmRSS sampled every 1 s in the window, "
                f"{first_rss:.1f} MB at its start, {status_mb(status, 'VmRSS'):.1f} MB at its end "
                f"(VmHWM since start {hwm:.1f} MB); MB = 2^20 bytes",
                value=peak_rss, unit="MB", met=peak_rss < 64,
                samples=[{"t": t, "rss_mb": v} for t, v in series]))
            if fleet.simulator_failures():
                rows[-1]["notes"] += f"; {fleet.simulator_failures()} simulator exits with an error"
        finally:
            fleet.close()
    return rows


# ---------------------------------------------------------------------------------------------
# Part 3: RSS over an accelerated run.

def slope_mb_per_hour(samples):
    """Least-squares slope of (seconds, MB) pairs, in MB per hour."""
    if len(samples) < 2:
        return float("nan")
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 3600


def count_row(figure, samples, index, source):
    """Descriptors or threads: flat when the second half never goes above the first half's highest
    (both move a little as links reconnect and the thread pool breathes)."""
    middle = len(samples) // 2
    first_half = max(s[index] for s in samples[:middle + 1])
    second_half = max(s[index] for s in samples[middle:])
    flat = second_half <= first_half
    return row(figure, "flat", f"{samples[0][index]} -> {samples[-1][index]}",
               f"{goal_word(flat)} (flat: the second half's highest, {second_half}, not above the first "
               f"half's, {first_half}); min {min(s[index] for s in samples)}; {source} every sample",
               value=samples[-1][index], met=flat)


def part_soak(args):
    count, speed = 4, 600
    log(f"soak: {count} separators at speed {speed} for {args.soak_minutes:g} min: starting")
    fleet = Fleet(args.bin, args.scenario, count, speed, "soak")
    try:
        fleet.start()
        pid = fleet.daemon.pid
        duration = args.soak_minutes * 60
        samples = []  # (t, rss MB, anon MB, fds, threads)
        message_at = {}  # t -> messages stored
        started = time.monotonic()
        messages_start = message_count(fleet.database())
        runs_start = fleet.runs_done()
        next_sample = started
        while True:
            fleet.alive()
            now = time.monotonic()
            if now >= next_sample:
                status = proc_status(pid)
                samples.append((now - started, status_mb(status, "VmRSS"), status_mb(status, "RssAnon"),
                                open_fds(pid), int(status.get("Threads", "0"))))
                message_at[samples[-1][0]] = message_count(fleet.database())
                log(f"soak: t={now - started:4.0f} s RSS {samples[-1][1]:.1f} MB, {samples[-1][3]} fds, "
                    f"{samples[-1][4]} threads")
                next_sample += args.soak_interval
            if now - started >= duration:
                break
            time.sleep(max(0.0, min(next_sample, started + duration) - time.monotonic()))
        elapsed = time.monotonic() - started
        messages_end = message_count(fleet.database())
        runs = fleet.runs_done() - runs_start
        rss = [s[1] for s in samples]
        half = [(t, v) for t, v, *_ in samples if t >= duration / 2]
        slope = slope_mb_per_hour(half)
        anon_first, anon_last = samples[0][2], samples[-1][2]
        rate = ("?" if messages_start is None or messages_end is None
                else f"{(messages_end - messages_start) / elapsed:.0f}")
        # "Flat": the second half grows by less than FLAT_MB_PER_H. Sampling jitter of a few hundred
        # kB alone makes about 1.5 MB/h of noise in the slope of a 10-minute soak; 5 MB/h at 600x
        # is under 0.2 MB a day at the real rate.
        flat = slope < FLAT_MB_PER_H
        half_messages = None
        if len(half) >= 2:
            t0, t1 = half[0][0], half[-1][0]
            half_messages = [m for m in (message_at.get(t0), message_at.get(t1)) if m is not None]
        per_message = ""
        if half_messages and len(half_messages) == 2 and half_messages[1] > half_messages[0]:
            grown = (half[-1][1] - half[0][1]) * 1048576
            per_message = f"; {grown / (half_messages[1] - half_messages[0]):.0f} bytes per message stored over the second half"
        rows = [
            row(f"RSS over {args.soak_minutes:g} min, {count} devices at {speed}x", "flat",
                f"{rss[0]:.1f} -> {rss[-1]:.1f} MB (max {max(rss):.1f}); second half {slope:+.1f} MB/h",
                f"{goal_word(flat)} (flat taken as < {FLAT_MB_PER_H:g} MB/h over the second half){per_message}; RssAnon "
                f"{anon_first:.1f} -> {anon_last:.1f} MB; {len(samples)} samples every "
                f"{args.soak_interval:g} s; {runs} runs completed, {rate} messages/s stored",
                value=slope, unit="MB/h", met=flat,
                samples=[{"t": round(t), "rss_mb": round(r, 2), "anon_mb": round(a, 2), "fds": f, "threads": th,
                          "messages": message_at.get(t)}
                         for t, r, a, f, th in samples]),
            count_row("open descriptors over the soak", samples, 3, "count of /proc/PID/fd"),
            count_row("threads over the soak", samples, 4, "Threads of /proc/PID/status"),
        ]
        if fleet.simulator_failures():
            rows[0]["notes"] += f"; {fleet.simulator_failures()} simulator exits with an error"
        return rows
    finally:
        fleet.close()


# ---------------------------------------------------------------------------------------------
# Part 4: SIGTERM to exit.

def part_shutdown(args):
    counts = [1, args.devices]
    script = os.path.join(ROOT, "scripts", "bench", "shutdown_time.sh")
    if os.path.exists(script) and not args.own_shutdown:
        return shutdown_with_script(args, script, counts)
    return shutdown_here(args, counts)


def shutdown_with_script(args, script, counts):
    rounds = 1 if args.quick else 3
    out_path = os.path.join(REAPER.tempdir("apheresisd-figures-shutdown-"), "shutdown.out")
    log(f"shutdown: {os.path.relpath(script, ROOT)} {' '.join(map(str, counts))} ({rounds} round(s) each)")
    with open(out_path, "wb") as out:
        process = REAPER.spawn(["bash", script] + [str(c) for c in counts], stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                               env=clean_env({"BIN": os.path.abspath(args.bin), "ROUNDS": str(rounds),
                                              "SCENARIO": os.path.abspath(args.scenario)}))
        # SIGINT first on the way out: the script's EXIT trap then kills its children and removes
        # its directory.
        try:
            status = process.wait()
        finally:
            REAPER.stop(process, grace=10, sig=signal.SIGINT)
    text = read_text(out_path)
    rows = []
    for n in counts:
        match = re.search(rf"^N={n} shutdown_s median=([\d.]+) min=([\d.]+) max=([\d.]+) \((\d+) rounds?\)$",
                          text, re.M)
        if not match:
            raise MeasureError(f"shutdown_time.sh gave no figure for N={n} (status {status}):\n{text[-2000:]}")
        median, low, high, done = float(match.group(1)), float(match.group(2)), float(match.group(3)), match.group(4)
        rows.append(row(f"SIGTERM to exit, {n} device{'s' if n > 1 else ''}", "< 2 s", f"{median:.2f} s",
                        f"{goal_word(median < 2)}; median of {done} round(s) (min {low:.2f}, max {high:.2f} s) "
                        f"by scripts/bench/shutdown_time.sh, TCP simulators at speed 1",
                        value=median, unit="s", met=median < 2))
    return rows


def shutdown_here(args, counts):
    rows = []
    rounds = 1 if args.quick else 3
    for n in counts:
        figures = []
        for _ in range(rounds):
            fleet = Fleet(args.bin, args.scenario, n, 1, f"shutdown-{n}")
            try:
                fleet.start()
                time.sleep(3)
                fleet.alive()
                started = time.monotonic()
                os.kill(fleet.daemon.pid, signal.SIGTERM)
                try:
                    status = fleet.daemon.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    raise MeasureError(f"apheresisd with {n} devices still running 120 s after SIGTERM")
                figures.append(time.monotonic() - started)
                if status != 0:
                    raise MeasureError(f"apheresisd exited with status {status} after SIGTERM"
                                       + tail(fleet.daemon_err))
            finally:
                fleet.close()
        median = statistics.median(figures)
        rows.append(row(f"SIGTERM to exit, {n} device{'s' if n > 1 else ''}", "< 2 s", f"{median:.2f} s",
                        f"{goal_word(median < 2)}; median of {rounds} round(s) (min {min(figures):.2f}, "
                        f"max {max(figures):.2f} s), TCP simulators at speed 1",
                        value=median, unit="s", met=median < 2))
    return rows


# ---------------------------------------------------------------------------------------------

def goal_word(met):
    return "goal met" if met else "GOAL MISSED"


def row(figure, goal, measured, notes, **extra):
    return {"figure": figure, "goal": goal, "measured": measured, "notes": notes, **extra}


def markdown_table(rows):
    lines = ["| figure | goal | measured | notes |", "|---|---|---|---|"]
    for r in rows:
        cells = [str(r[k]).replace("|", "\\|").replace("\n", " ") for k in ("figure", "goal", "measured", "notes")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Measure apheresisd's figures of issue 12 (start to READY, N devices, soak, shutdown).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--bin", default=os.path.join(ROOT, ".build", "release"),
                        help="directory holding apheresisd and optia-sim (default .build/release)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run: " + ",".join(PARTS) + " (default all)")
    parser.add_argument("--devices", type=int, default=None, help="separators for 'devices' and 'shutdown' (default 64)")
    parser.add_argument("--window", type=float, default=None, help="sampling window of 'devices', s (default 60)")
    parser.add_argument("--speeds", default="1,10",
                        help="simulator speeds of 'devices', comma-separated (default 1,10: the real rate and 10x)")
    parser.add_argument("--settle", type=float, default=10, help="settling time before the window, s (default 10)")
    parser.add_argument("--soak-minutes", type=float, default=None, help="length of 'soak', min (default 10)")
    parser.add_argument("--soak-interval", type=float, default=10, help="soak sampling interval, s (default 10)")
    parser.add_argument("--ready-rounds", type=int, default=5, help="starts per store kind in 'ready' (default 5)")
    parser.add_argument("--scenario", default=os.path.join(ROOT, "simulator", "scenarios", "normal-boy-10y.toml"),
                        help="scenario every simulator plays (default simulator/scenarios/normal-boy-10y.toml)")
    parser.add_argument("--own-shutdown", action="store_true",
                        help="measure 'shutdown' here even when scripts/bench/shutdown_time.sh exists")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=8, 20 s windows, a 2-minute soak")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every daemon and simulator log there before cleanup")
    parser.add_argument("--json", metavar="FILE", help="also write the machine and every row as JSON")
    args = parser.parse_args(argv)
    args.devices = args.devices or (8 if args.quick else 64)
    args.window = args.window or (20 if args.quick else 60)
    args.soak_minutes = args.soak_minutes or (2 if args.quick else 10)
    if args.quick:
        args.settle = min(args.settle, 5)
    try:
        args.speeds = [float(v) if "." in v else int(v) for v in args.speeds.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--speeds: not a list of numbers: {args.speeds}")
    if not args.speeds or any(not 0.1 <= v <= 1000 for v in args.speeds):
        parser.error("--speeds: each between 0.1 and 1000")
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.devices < 1 or args.window <= 0 or args.soak_minutes <= 0:
        parser.error("--devices, --window and --soak-minutes must be positive")
    args.bin = os.path.abspath(args.bin)
    args.scenario = os.path.abspath(args.scenario)
    return args


def main(argv):
    args = parse_args(argv)
    REAPER.keep_logs = os.path.abspath(args.keep_logs) if args.keep_logs else None
    for tool in ("apheresisd", "optia-sim"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            print(f"daemon_figures: no {tool} in {args.bin}: build first "
                  f"(swift build -c release --product apheresisd && swift build -c release --product optia-sim)",
                  file=sys.stderr)
            return 1
    if not os.path.exists(args.scenario):
        print(f"daemon_figures: no scenario {args.scenario}", file=sys.stderr)
        return 1

    def interrupted(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    machine = machine_description()
    version = subprocess.run([os.path.join(args.bin, "apheresisd"), "--version"], capture_output=True,
                             text=True, env=clean_env()).stdout.strip()
    print(f"machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory']}, Linux {machine['kernel']}, "
          f"load average {machine['loadavg']}")
    print(f"date:    {machine['date']}")
    print(f"binary:  {args.bin}/apheresisd {version}")
    print(f"parts:   {', '.join(args.parts)}" + ("  (--quick: a smoke run, not figures)" if args.quick else ""))
    sys.stdout.flush()

    functions = {"ready": part_ready, "devices": part_devices, "soak": part_soak, "shutdown": part_shutdown}
    rows, failed = [], False
    try:
        for part in args.parts:
            log(f"{part}: starting")
            try:
                rows.extend(functions[part](args))
            except MeasureError as error:
                failed = True
                log(f"{part}: could not measure: {error}")
                lines = [line.strip() for line in str(error).split("\n") if line.strip()]
                note = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "")
                rows.append(row(part, "-", "not measured", note))
            log(f"{part}: done")
    except Interrupted as signal_name:
        REAPER.cleanup()
        print(f"\ndaemon_figures: stopped by {signal_name}; children and temporary directories removed",
              file=sys.stderr)
        if rows:
            print(markdown_table(rows))
        return 130
    finally:
        REAPER.cleanup()

    print()
    print(markdown_table(rows))
    print(f"\nmachine load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "version": version, "quick": args.quick,
                       "devices": args.devices, "window_s": args.window, "soak_minutes": args.soak_minutes,
                       "rows": rows}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
