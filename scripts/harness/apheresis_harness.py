"""Processes, simulators and the daemon, for the scripts that drive apheresisd from outside
(scripts/bench/daemon_figures.py and the fault campaigns in scripts/faults/).

Every process is started through REAPER, in its own session, and every temporary directory
through REAPER.tempdir, so a script that fails or is interrupted leaves nothing behind.
Python 3 standard library only.
"""

import datetime
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1
# Variables that would make the daemon talk to a systemd that is not there (or to ours when it
# should not): the children get a clean environment and only what a part sets on purpose.
SYSTEMD_VARS = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID",
                "LISTEN_FDS", "LISTEN_PID", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"]


class HarnessError(Exception):
    """Something could not be measured or driven (as opposed to a figure that misses its goal)."""


class Interrupted(BaseException):
    pass


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Children and temporary directories, always cleaned up.

class Reaper:
    """Every process this script starts runs in its own session (so a Ctrl-C on the terminal
    reaches only this script, and its own children, like the daemon's simulator, share its
    process group); cleanup terminates each group, then kills what is left."""

    def __init__(self):
        self.processes = []
        self.directories = []
        self.keep_logs = None
        self.closing = False
        self.lock = threading.Lock()

    def spawn(self, argv, **kwargs):
        with self.lock:  # the simulators' supervisor thread spawns too
            if self.closing:
                raise HarnessError("cleaning up: no new process")
            process = subprocess.Popen(argv, start_new_session=True, **kwargs)
            self.processes.append(process)
            return process

    def forget(self, process):
        with self.lock:
            if process in self.processes:
                self.processes.remove(process)

    def tempdir(self, prefix):
        path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        self.directories.append(path)
        return path

    def stop(self, process, grace=5.0, sig=signal.SIGTERM):
        """Signals the process's group, waits up to `grace` s, then kills the group."""
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # grandchildren left in the group
        except (ProcessLookupError, PermissionError):
            pass
        if process.poll() is None:
            process.wait()
        self.forget(process)

    def cleanup(self):
        with self.lock:
            self.closing = True
            processes = list(self.processes)
        for process in processes:
            try:
                self.stop(process, grace=3.0)
            except Exception as error:  # keep cleaning
                log(f"cleanup: {process.args[0]}: {error}")
        for path in list(self.directories):
            if self.keep_logs:
                keep_logs(path, self.keep_logs)
            shutil.rmtree(path, ignore_errors=True)
            self.directories.remove(path)

    def remove_dir(self, path):
        if self.keep_logs:
            keep_logs(path, self.keep_logs)
        shutil.rmtree(path, ignore_errors=True)
        if path in self.directories:
            self.directories.remove(path)


def keep_logs(directory, destination):
    target = os.path.join(destination, os.path.basename(directory))
    os.makedirs(target, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith((".err", ".out", ".log", ".toml")):
            shutil.copy(os.path.join(directory, name), target)


REAPER = Reaper()


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------------------------
# /proc readings.

def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": field 3 is state, so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            values[key] = value.strip()
    return values


def status_mb(status, key):
    value = status.get(key)
    return int(value.split()[0]) / 1024 if value else float("nan")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def machine_busy():
    """(busy, total) jiffies of the whole machine, for its load during a window."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_description():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            memory = f"{int(f.readline().split()[1]) / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": NPROC,
        "cpu": model,
        "memory": memory,
        "kernel": platform.release(),
        "loadavg": load,
    }


def message_count(database):
    """Messages stored so far (the highest row id: messages are never deleted), read-only."""
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            row = connection.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
            return int(row[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return None


# ---------------------------------------------------------------------------------------------
# Simulators and the daemon.

def wait_until(predicate, timeout, what, poll=0.1, process=None, log_file=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise HarnessError(f"{what}: the process exited with status {process.returncode}"
                               + tail(log_file))
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}" + tail(log_file))
        time.sleep(poll)


def tail(path, lines=15):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        text = f.readlines()[-lines:]
    return "\n  --- end of " + os.path.basename(path) + ":\n  " + "  ".join(text)


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Simulator:
    """One optia-sim over TCP with its own serial number; started again on the same port and state
    file each time it finishes a run."""

    def __init__(self, bin_dir, scenario_text, directory, index, speed):
        self.bin_dir = bin_dir
        self.directory = directory
        self.index = index
        self.speed = speed
        self.scenario = os.path.join(directory, f"scenario-{index}.toml")
        self.state = os.path.join(directory, f"sim-{index}.state")
        self.out = os.path.join(directory, f"sim-{index}.out")
        self.err = os.path.join(directory, f"sim-{index}.err")
        self.serial = f"1OPT9{index:04d}"
        text, count = re.subn(r'(?m)^serial = .*$', f'serial = "{self.serial}"', scenario_text)
        if count != 1:
            raise HarnessError("the scenario has no single 'serial = ...' line to make each separator its own")
        with open(self.scenario, "w") as f:
            f.write(text)
        self.port = 0
        self.process = None
        self.starts = 0
        self.failures = []

    def start(self):
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            self.process = REAPER.spawn(
                [os.path.join(self.bin_dir, "optia-sim"), "run", self.scenario, "--tcp", str(self.port),
                 "--speed", f"{self.speed:g}", "--state", self.state],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=clean_env(), cwd=self.directory)
        self.starts += 1

    def wait_port(self, timeout=30):
        def port():
            match = re.search(r"^tcp: 127\.0\.0\.1:(\d+)$", read_text(self.out), re.M)
            return int(match.group(1)) if match else None
        self.port = wait_until(port, timeout, f"optia-sim {self.index}'s 'tcp:' line",
                               process=self.process, log_file=self.err)

    def supervise(self):
        """Called now and then: starts a finished simulator again (a new run)."""
        if self.process is not None and self.process.poll() is not None:
            status = self.process.returncode
            REAPER.forget(self.process)
            if status != 0:
                self.failures.append(status)
            self.start()

    def runs_done(self):
        return len(re.findall(r"^done: ", read_text(self.out), re.M))


class Fleet:
    """N simulators, their supervisor thread, and one daemon reading them all."""

    def __init__(self, bin_dir, scenario_path, count, speed, label):
        self.bin_dir = bin_dir
        self.count = count
        self.speed = speed
        self.directory = REAPER.tempdir(f"apheresisd-figures-{label}-")
        self.state_dir = os.path.join(self.directory, "state")
        os.makedirs(self.state_dir)
        with open(scenario_path) as f:
            scenario_text = f.read()
        self.simulators = [Simulator(bin_dir, scenario_text, self.directory, i, speed)
                           for i in range(1, count + 1)]
        self.config = os.path.join(self.directory, "apheresisd.toml")
        self.daemon_err = os.path.join(self.directory, "daemon.err")
        self.daemon = None
        self.stop_supervisor = threading.Event()
        self.supervisor = None
        self.links_up_s = None

    def start(self, log_level="info"):
        for simulator in self.simulators:
            simulator.start()
        for simulator in self.simulators:
            simulator.wait_port()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()
        write_config(self.config, self.state_dir, log_level, [
            f'[[device]]\nname = "optia-{s.index}"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {s.port}\n'
            for s in self.simulators])
        check_config(self.bin_dir, self.config)
        started = time.monotonic()
        with open(self.daemon_err, "wb") as err:
            self.daemon = REAPER.spawn([os.path.join(self.bin_dir, "apheresisd"), "--config", self.config],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                       env=clean_env(), cwd=self.directory)
        wait_until(lambda: read_text(self.daemon_err).count("link up: ") >= self.count,
                   max(60, self.count * 2), f"{self.count} x 'link up:' in the daemon's log",
                   poll=0.25, process=self.daemon, log_file=self.daemon_err)
        self.links_up_s = time.monotonic() - started

    def _supervise(self):
        while not self.stop_supervisor.wait(0.25):
            for simulator in self.simulators:
                try:
                    simulator.supervise()
                except Exception as error:  # never let the thread die silently
                    simulator.failures.append(str(error))

    def database(self):
        return os.path.join(self.state_dir, "apheresisd.sqlite")

    def alive(self):
        if self.daemon.poll() is not None:
            raise HarnessError(f"apheresisd exited with status {self.daemon.returncode} during the window"
                               + tail(self.daemon_err))

    def runs_done(self):
        return sum(s.runs_done() for s in self.simulators)

    def simulator_failures(self):
        return sum(len(s.failures) for s in self.simulators)

    def close(self):
        self.stop_supervisor.set()
        if self.supervisor:
            self.supervisor.join()
        if self.daemon is not None:
            REAPER.stop(self.daemon, grace=30)
        for simulator in self.simulators:
            if simulator.process is not None:
                REAPER.stop(simulator.process, grace=2)
        REAPER.remove_dir(self.directory)


def write_config(path, state_dir, log_level, device_blocks):
    with open(path, "w") as f:
        f.write(f'format = 1\n\n[daemon]\nstate_directory = "{state_dir}"\nlog_level = "{log_level}"\n\n'
                f'[api]\nlisten = "127.0.0.1:0"\n\n')
        f.write("\n".join(device_blocks))


def check_config(bin_dir, config):
    result = subprocess.run([os.path.join(bin_dir, "apheresisd"), "--check-config", config],
                            capture_output=True, text=True, env=clean_env(), timeout=60)
    if result.returncode != 0:
        raise HarnessError(f"apheresisd --check-config refused {config} (status {result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")


# ---------------------------------------------------------------------------------------------
# Fault campaigns (scripts/faults/): mounts that are always unmounted, the daemon as one process
# with its API, the simulator's state file, and what the store holds afterwards.

import json as _json
import urllib.error as _urlerror
import urllib.request as _urlrequest


class Mounts:
    """Every file system a campaign mounts, unmounted on the way out (also on failure and Ctrl-C):
    call cleanup() before REAPER.cleanup(), which removes the directories they sit in."""

    def __init__(self):
        self.points = []

    def mount(self, argv, point, what):
        """Runs a mount command (`mount -t tmpfs ...`) for `point`; raises PermissionError with the
        command's words when the kernel refuses it (EPERM: not root, no CAP_SYS_ADMIN, a sandbox)."""
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            text = (result.stderr or result.stdout).strip().splitlines()
            reason = text[0] if text else f"status {result.returncode}"
            if re.search(r"permission denied|not permitted|must be superuser|only root", reason, re.I):
                raise PermissionError(f"{what}: {reason}")
            raise HarnessError(f"{what}: {' '.join(argv)}: {reason}")
        self.points.append(point)

    def tmpfs(self, point, size):
        os.makedirs(point, exist_ok=True)
        self.mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", point], point,
                   f"tmpfs of {size} at {point}")

    def register(self, point):
        """A mount made otherwise (a FUSE file system mounts itself)."""
        if point not in self.points:
            self.points.append(point)

    @staticmethod
    def is_mounted(point):
        real = os.path.realpath(point)
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == real for line in f if len(line.split()) > 1)

    def unmount(self, point, lazy_after=5.0):
        """umount; retried while busy, then lazily (detached now, freed when its last user goes)."""
        deadline = time.monotonic() + lazy_after
        while self.is_mounted(point):
            result = subprocess.run(["umount", point], capture_output=True, text=True, timeout=60)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                subprocess.run(["umount", "-l", point], capture_output=True, text=True, timeout=60)
                break
            time.sleep(0.2)
        if point in self.points:
            self.points.remove(point)

    def cleanup(self):
        for point in reversed(list(self.points)):
            try:
                self.unmount(point, lazy_after=2.0)
            except Exception as error:  # keep cleaning
                log(f"cleanup: umount {point}: {error}")


MOUNTS = Mounts()


def http_get(port, path, timeout=5.0):
    """(status, parsed JSON or text) of GET http://127.0.0.1:PORT/PATH; (None, reason) when
    nothing answers."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with _urlrequest.urlopen(url, timeout=timeout) as reply:
            body = reply.read().decode(errors="replace")
            status = reply.status
    except _urlerror.HTTPError as error:
        body = error.read().decode(errors="replace")
        status = error.code
    except (OSError, _urlerror.URLError) as error:
        return None, str(error)
    try:
        return status, _json.loads(body)
    except ValueError:
        return status, body


class Daemon:
    """One apheresisd with its own configuration, stderr log and API port (listen 127.0.0.1:0; the
    port is read from the log's 'api: listening on' line)."""

    def __init__(self, bin_dir, directory, config, env_extra=None, name="daemon", argv_prefix=None):
        self.bin_dir = bin_dir
        self.directory = directory
        self.config = config
        self.env_extra = env_extra or {}
        # A wrapper that execs the daemon as its child (faketime ...): signals go to the daemon itself.
        self.argv_prefix = list(argv_prefix or [])
        self.err = os.path.join(directory, f"{name}.err")
        self.process = None
        self.port = None
        self.log_offset = 0

    def start(self, timeout=60):
        with open(self.err, "ab") as err:
            self.log_offset = err.tell()
            self.process = REAPER.spawn(self.argv_prefix + [os.path.join(self.bin_dir, "apheresisd"), "--config", self.config],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                        env=clean_env(self.env_extra), cwd=self.directory)

        def port():
            match = re.search(r"api: listening on (?:http://)?127\.0\.0\.1:(\d+)", self.log()[self.log_offset:])
            return int(match.group(1)) if match else None
        self.port = wait_until(port, timeout, "the daemon's 'api: listening on' line", poll=0.1,
                               process=self.process, log_file=self.err)
        return self

    def log(self):
        return read_text(self.err)

    def get(self, path, timeout=5.0):
        return http_get(self.port, path, timeout=timeout)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def daemon_pid(self):
        """The apheresisd process: the one started, or the wrapper's child of that name."""
        if self.process is None:
            return None
        if not self.argv_prefix:
            return self.process.pid
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    head, _, rest = f.read().rpartition(")")
            except OSError:
                continue
            comm = head.partition("(")[2]
            if comm == "apheresisd" and int(rest.split()[2]) == self.process.pid:  # process group
                return int(name)
        return None

    def stop(self, grace=30.0, sig=signal.SIGTERM):
        if self.process is not None:
            if self.argv_prefix and self.process.poll() is None:
                pid = self.daemon_pid()
                if pid is not None:
                    try:
                        os.kill(pid, sig)
                        self.process.wait(timeout=grace)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
            REAPER.stop(self.process, grace=grace, sig=sig)
            status = self.process.returncode
            self.process = None
            return status
        return None

    def kill(self):
        """kill -9: a power cut as far as the daemon is concerned."""
        return self.stop(grace=5.0, sig=signal.SIGKILL)


def simulator_state(path):
    """What the simulator's state file says: {'created': {seq...}, 'acked': {seq...}, 'last': N}.
    (docs/simulator.md, "State file": 'm SEQ ...' a message made, 'a SEQ' its acknowledgement.)"""
    created, acked, last = set(), set(), 0
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("m", "a") and parts[1].isdigit():
            (created if parts[0] == "m" else acked).add(int(parts[1]))
        elif len(parts) >= 2 and parts[0] == "seq" and parts[1].isdigit():
            last = max(last, int(parts[1]))
    return {"created": created, "acked": acked, "last": max([last, *created]) if created else last}


def store_facts(database, serial):
    """What the store holds for one separator, read-only: its live sequences (with repeats counted),
    samples stored twice, conflicting resends kept in quarantine, the integrity check, and events by
    kind."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute("SELECT sequence FROM messages WHERE device_serial = ? AND sequence IS NOT NULL",
                                  (serial,)).fetchall()
        sequences = [r[0] for r in rows]
        sample_repeats = connection.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM samples s JOIN messages m ON m.id = s.message_ref "
            "WHERE m.device_serial = ? GROUP BY s.run_ref, s.run_time_min, s.device_ts HAVING n > 1)", (serial,)).fetchone()[0]
        conflicts = connection.execute("SELECT count(*) FROM quarantine WHERE device_serial = ?", (serial,)).fetchone()[0]
        integrity = "; ".join(r[0] for r in connection.execute("PRAGMA integrity_check").fetchall())
        events = {}
        for kind, count in connection.execute("SELECT kind, count(*) FROM events GROUP BY kind"):
            events[kind] = count
        return {"sequences": sequences, "distinct": set(sequences), "repeats": len(sequences) - len(set(sequences)),
                "sample_repeats": sample_repeats, "quarantined": conflicts, "integrity": integrity, "events": events}
    finally:
        connection.close()


def scenario_text(path, end_at_min=None, extra=""):
    """A scenario file's text, its run cut at `end_at_min` (elapsed minutes) and `extra` TOML
    (timeline entries) appended: a shorter run for a campaign, the same engine and patient."""
    with open(path) as f:
        text = f.read()
    if end_at_min is not None:
        text, count = re.subn(r"(?ms)^\[end\]\n.*?(?=^\[|\Z)", f"[end]\nstop_at_target = false\nend_at_min = {end_at_min:g}\n\n", text)
        if count != 1:
            text += f"\n[end]\nstop_at_target = false\nend_at_min = {end_at_min:g}\n"
    return text + ("\n" + extra if extra else "")


# ---------------------------------------------------------------------------------------------
# kill -9 (scripts/faults/crash_campaign.py): a process killed at a chosen instant, and a temporary
# directory kept for inspection.

def sigkill(process):
    """SIGKILL to the process's group (it runs in its own session), then reap it. Returns True when
    the kill ended the process, False when it had already exited on its own. A process already
    reaped is not signalled (its process group id may belong to someone else by now); one not yet
    reaped still holds its group, so the signal cannot reach another's."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait()
    REAPER.forget(process)
    return process.returncode == -signal.SIGKILL


def keep_directory(path):
    """The directory outlives the script: REAPER.cleanup() no longer removes it."""
    with REAPER.lock:
        if path in REAPER.directories:
            REAPER.directories.remove(path)
    return path
