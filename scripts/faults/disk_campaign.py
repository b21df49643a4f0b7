#!/usr/bin/env python3
"""The "Disk" campaign (issue 13): the store's state directory on a file system broken during a run,
one optia-sim over TCP feeding one apheresisd at a fast speed.

    scripts/faults/disk_campaign.py [--bin DIR] [--smoke] [--only full,read-only,eio,read-only-ext4]
                                    [--allow-skip] [--faultfs PATH] [--keep-logs DIR]

Cases (each one row of the result table):
  full       the state directory is a small tmpfs (40 MiB); a filler file fills it during the run
             (to the last byte; in the full form also to just under the store's 16 MiB reserve),
             then is removed.
  read-only  the state directory goes read-only mid-run, then writable again. `mount -o remount,ro`
             of the tmpfs under it is tried first; the kernel refuses it while a file is open for
             writing (EBUSY: the store always is), so the volume is then made read-only by faultfs
             (below), which answers every change with EROFS as a volume remounted read-only by the
             kernel's own error handling does.
  read-only-ext4  (full form only) a real kernel read-only remount: the state directory on ext4
             in a loop-mounted image with errors=remount-ro; an ext4 error is raised through sysfs
             (trigger_fs_error) and the kernel remounts it read-only under the open store. Its
             journal is aborted then, so the repair is a person's: stop the daemon, unmount,
             e2fsck, mount, start the daemon (no recovery "by itself" to measure).
  eio        writes failing with EIO, through faultfs (scripts/faults/faultfs.c, a passthrough FUSE
             file system over a tmpfs that fails on command). Smoke: fsync alone fails (the
             dangerous one: SQLite must not take the commit for done). Full form: writes and
             fsyncs, fsync alone, everything including reads, and "eio-lose": a disk that accepts
             writes and fails every fsync, then a power cut (kill -9 of the daemon, the writes
             made meanwhile undone on the backing file) and a restart.

Checks, per case: every message the separator made is stored exactly once at the end (nothing
lost, nothing twice), nothing the separator saw acknowledged is missing (the simulator's state
file records each ACK), STORE_WRITE_FAILED is raised (journal line naming the store's file) soon
after each fault, the API's alarms list and /metrics say the store is failing for as long as the
fault lasts (the API has no separate health endpoint: GET /api/v1/alarms lists the daemon's own
alarm first, /metrics has apheresisd_store_failing), the daemon recovers by itself once the fault
is gone (alarm cleared, storing again, store_failed / store_recovered events written), and
PRAGMA integrity_check is ok (for faultfs on the backing files, after unmounting). What people
read is held to docs/store.md and docs/daemon.md too: a read-only volume (EROFS) must be said to
be read-only, and neither the journal line nor the API's alarm may carry SQLite's own error text.

--smoke: each case once with one short fault (CI, under 2 minutes). Without it, the full form:
several faults per case and a longer run.

A failed case keeps its temporary directory (logs, and the store's files as the broken volume held
them, in kept-state/) and prints its path. Exit status: 0 when every case passed; 1 when a case
failed or could not be measured; 2 when a case was not run (mounting not permitted, no FUSE) and
--allow-skip was not given; 130 on Ctrl-C.
Everything mounted is unmounted and every child stopped on the way out. Runs as root (mount).
"""

import argparse
import datetime
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
    MOUNTS, REAPER, Daemon, HarnessError, Interrupted, Simulator, check_config, clean_env, log,
    keep_directory, read_text, scenario_text, simulator_state, store_facts, tail, wait_until, write_config)

FAULTFS_SOURCE = os.path.join(ROOT, "scripts", "faults", "faultfs.c")
DEFAULT_FAULTFS = os.path.join(ROOT, ".build-faults", "tools", "faultfs")
SCENARIO = os.path.join(ROOT, "simulator", "scenarios", "normal-boy-10y.toml")
CASES = ["full", "read-only", "eio", "read-only-ext4"]
SMOKE_CASES = ["full", "read-only", "eio"]
TMPFS_SIZE = "40m"
RESERVE_BYTES = 16 * 1024 * 1024  # the daemon's default store_reserve_mib
ALARM = "STORE_WRITE_FAILED"
# How soon after a fault the daemon must say so (alarm in the journal and the API): messages are
# refused many times a second, so anything slower than this is a finding.
ALARM_WITHIN_S = 5.0
# An error's own text where the staff should read plain words (docs/daemon.md: no Swift or SQLite
# internals in what people read): GRDB's "SQLite error N: ... - while executing `...`".
RAW_ERROR = re.compile(r"SQLite error \d+|while executing|RecordStoreError|DatabaseError")
RECOVER_WITHIN_S = 60.0


class Form:
    def __init__(self, smoke):
        self.smoke = smoke
        if smoke:
            self.speed, self.end_at_min, self.settle_s, self.gap_s = 120, 40, 2.0, 3.0
            self.episodes = {
                "full": [("fill", 6.0)],
                "read-only": [("erofs", 6.0)],
                "eio": [("eio-fsync", 6.0)],
                "read-only-ext4": [("ext4-error", 5.0)],  # not in the smoke set; with --only
            }
        else:
            # 25 s faults outlast the 15 s stale-telemetry line (3 TICKs of 5 s): that alarm is then
            # true (no TICK is stored) and must be written once the store takes writes again.
            self.speed, self.end_at_min, self.settle_s, self.gap_s = 60, 150, 4.0, 8.0
            self.episodes = {
                "full": [("fill", 10.0), ("fill-reserve", 25.0), ("fill", 6.0)],
                "read-only": [("erofs", 10.0), ("erofs", 25.0)],
                "eio": [("eio-write", 8.0), ("eio-fsync", 8.0), ("eio-all", 8.0), ("eio-lose-crash", 6.0),
                        ("eio-fsync", 25.0)],
                "read-only-ext4": [("ext4-error", 8.0)],
            }


class NotRun(Exception):
    """The case cannot run here (mounting not permitted, no FUSE): its row says why."""


# ---------------------------------------------------------------------------------------------
# The broken file systems.

class TmpfsVolume:
    """The state directory directly on a small tmpfs (case full)."""

    def __init__(self, directory):
        self.point = os.path.join(directory, "state")
        self.filler = os.path.join(self.point, "filler")

    def mount(self):
        try:
            MOUNTS.tmpfs(self.point, TMPFS_SIZE)
        except PermissionError as error:
            raise NotRun(f"mount not permitted: {error}")

    def free_bytes(self):
        st = os.statvfs(self.point)
        return st.f_bavail * st.f_frsize

    def fill(self, leave=0):
        """Writes the filler until only `leave` bytes are free (0: until ENOSPC). Returns its size."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with open(self.filler, "wb", buffering=0) as f:
            while True:
                room = self.free_bytes() - leave
                if room <= 0:
                    break
                piece = chunk if room >= len(chunk) else chunk[:max(room, 4096)]
                try:
                    written += f.write(piece)
                except OSError:  # ENOSPC: full to the last block
                    break
        return written

    def unfill(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def database_for_checks(self):
        return os.path.join(self.point, "apheresisd.sqlite")

    def close(self):
        MOUNTS.unmount(self.point)


class Ext4Volume:
    """The state directory on a small ext4 file system in a loop-mounted image, errors=remount-ro
    (case read-only-ext4): an error the kernel is told of (/sys/fs/ext4/DEV/trigger_fs_error, as
    ext4 does on a failing disk) makes the kernel itself remount it read-only under the open store,
    which `mount -o remount,ro` cannot do. Its journal is then aborted, so it cannot simply be
    remounted read-write: the repair is the one a person would do (stop the daemon, unmount,
    e2fsck, mount, start the daemon)."""

    def __init__(self, directory):
        self.image = os.path.join(directory, "ext4.img")
        self.point = os.path.join(directory, "state")

    def mount(self):
        with open(self.image, "wb") as f:
            f.truncate(64 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", self.image], check=True, capture_output=True, timeout=60)
        self.mount_image()

    def mount_image(self):
        os.makedirs(self.point, exist_ok=True)
        try:
            MOUNTS.mount(["mount", "-o", "loop,errors=remount-ro", self.image, self.point], self.point,
                         f"ext4 image at {self.point}")
        except PermissionError as error:
            raise NotRun(f"mount not permitted: {error}")

    def device(self):
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", self.point], capture_output=True, text=True).stdout.strip()
        return os.path.basename(source)

    def trigger_error(self):
        control = f"/sys/fs/ext4/{self.device()}/trigger_fs_error"
        if not os.path.exists(control):
            raise NotRun(f"{control} is missing: this kernel cannot be told of an ext4 error")
        with open(control, "w") as f:
            f.write("disk campaign: simulated failing disk\n")

    def read_only(self):
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 3 and fields[1] == os.path.realpath(self.point):
                    return "ro" in fields[3].split(",") or "emergency_ro" in fields[3]
        return False

    def repair(self):
        MOUNTS.unmount(self.point)
        fsck = subprocess.run(["e2fsck", "-f", "-y", self.image], capture_output=True, text=True, timeout=120)
        self.mount_image()
        return fsck.returncode

    def database_for_checks(self):
        return os.path.join(self.point, "apheresisd.sqlite")

    def close(self):
        MOUNTS.unmount(self.point)


class FaultVolume:
    """The state directory on faultfs over a tmpfs (cases read-only and eio)."""

    def __init__(self, directory, faultfs):
        self.directory = directory
        self.faultfs = faultfs
        self.backing = os.path.join(directory, "backing")
        self.point = os.path.join(directory, "state")
        self.control = os.path.join(directory, "faultfs.control")
        self.err = os.path.join(directory, "faultfs.err")
        self.process = None
        self.remounted_ro = False

    def mount(self):
        if not os.path.exists("/dev/fuse"):
            raise NotRun("no /dev/fuse: FUSE is not available here")
        try:
            MOUNTS.tmpfs(self.backing, "64m")
        except PermissionError as error:
            raise NotRun(f"mount not permitted: {error}")
        self.start_fuse()

    def start_fuse(self):
        os.makedirs(self.point, exist_ok=True)
        self.set_mode("ok")
        with open(self.err, "ab") as err:
            self.process = REAPER.spawn([self.faultfs, self.backing, self.point, self.control],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
        try:
            wait_until(lambda: MOUNTS.is_mounted(self.point), 15, "faultfs to mount", poll=0.05,
                       process=self.process, log_file=self.err)
        except HarnessError as error:
            if re.search(r"permission denied|not permitted", read_text(self.err), re.I):
                raise NotRun(f"FUSE mount not permitted: {read_text(self.err).strip().splitlines()[-1]}")
            raise error
        MOUNTS.register(self.point)

    def set_mode(self, mode):
        with open(self.control + ".tmp", "w") as f:
            f.write(mode + "\n")
        os.replace(self.control + ".tmp", self.control)

    def stats(self):
        text = read_text(self.control + ".stats")
        return dict(item.split("=", 1) for item in text.split() if "=" in item)

    def wait_mode(self, mode, timeout=5.0):
        wait_until(lambda: self.stats().get("mode") == mode, timeout, f"faultfs to take mode {mode}", poll=0.02,
                   process=self.process, log_file=self.err)

    def try_remount_ro(self):
        """`mount -o remount,ro` of the tmpfs the store lives on. Returns (done, words)."""
        result = subprocess.run(["mount", "-o", "remount,ro", self.backing], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            self.remounted_ro = True
            return True, "remounted read-only"
        words = (result.stderr or result.stdout).strip().splitlines()
        return False, words[0] if words else f"status {result.returncode}"

    def remount_rw(self):
        if self.remounted_ro:
            subprocess.run(["mount", "-o", "remount,rw", self.backing], check=True, capture_output=True, timeout=30)
            self.remounted_ro = False

    def stop_fuse(self):
        MOUNTS.unmount(self.point)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            REAPER.stop(self.process, grace=2)
            self.process = None

    def database_for_checks(self):
        """After stop_fuse(): the files as the 'disk' holds them."""
        return os.path.join(self.backing, "apheresisd.sqlite")

    def close(self):
        if self.remounted_ro:
            self.remount_rw()
        self.stop_fuse()
        MOUNTS.unmount(self.backing)


def build_faultfs(path):
    """Compiles scripts/faults/faultfs.c (libfuse 3) when the binary is missing or older."""
    if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(FAULTFS_SOURCE):
        return path
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True, text=True)
    if flags.returncode != 0:
        raise NotRun("libfuse3-dev is not installed (pkg-config fuse3 fails): make disk-smoke installs it")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    result = subprocess.run([cc, "-O2", "-Wall", "-o", path, FAULTFS_SOURCE, *flags.stdout.split()],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise HarnessError(f"cannot build faultfs:\n{result.stderr}")
    return path


# ---------------------------------------------------------------------------------------------
# One case.

class Episode:
    def __init__(self, kind, duration):
        self.kind = kind
        self.duration = duration
        self.note = ""
        self.wall_start = None
        self.refused = None  # writes refused in the episode, as the daemon's "cleared" line counts them
        self.api_messages = set()  # what the API's STORE_WRITE_FAILED said, in short
        self.alarm_log_s = None      # fault start to the journal's "raised STORE_WRITE_FAILED"
        self.alarm_api_s = None      # fault start to the alarm in GET /api/v1/alarms
        self.metric_failing_s = None  # fault start to apheresisd_store_failing 1
        self.all_well_after_alarm = 0  # polls during the fault that said all is well after it was said
        self.api_statuses = set()
        self.journal_line = None
        self.recovered_alarm_s = None  # fault cleared to the alarm gone from the API
        self.recovered_store_s = None  # fault cleared to a message stored again
        self.cleared_line = False
        self.acked_during = 0


def alarms_say_failing(reply):
    status, body = reply
    if status != 200 or not isinstance(body, dict):
        return None
    return any(a.get("code") == ALARM for a in body.get("data", []))


def store_alarm_messages(reply):
    status, body = reply
    if status != 200 or not isinstance(body, dict):
        return []
    return [a.get("message", "") for a in body.get("data", []) if a.get("code") == ALARM]


def metric_failing(reply):
    status, body = reply
    if status != 200 or not isinstance(body, str):
        return None
    match = re.search(r"^apheresisd_store_failing(?:\{[^}]*\})? (\S+)$", body, re.M)
    return float(match.group(1)) >= 1 if match else None


def stored_count(daemon):
    status, body = daemon.get("/api/v1/devices")
    if status == 200 and isinstance(body, dict):
        return sum(d.get("messages_stored", 0) for d in body.get("data", []))
    return None


class CaseRun:
    def __init__(self, name, form, args, faultfs):
        self.name = name
        self.form = form
        self.args = args
        self.faultfs = faultfs
        self.directory = REAPER.tempdir(f"apheresisd-disk-{name}-")
        if name == "full":
            self.volume = TmpfsVolume(self.directory)
        elif name == "read-only-ext4":
            self.volume = Ext4Volume(self.directory)
        else:
            self.volume = FaultVolume(self.directory, faultfs)
        self.episodes = [Episode(kind, duration) for kind, duration in form.episodes[name]]
        self.notes = []
        self.failures = []
        self.sim = None
        self.daemon = None
        self.stored_total = 0  # messages stored by daemons before a restart (the API counts per process)
        self.started = time.monotonic()

    def run(self):
        self.volume.mount()
        text = scenario_text(SCENARIO, end_at_min=self.form.end_at_min)
        self.sim = Simulator(self.args.bin, text, self.directory, 1, self.form.speed)
        self.sim.start()
        self.sim.wait_port()
        config = os.path.join(self.directory, "apheresisd.toml")
        write_config(config, self.volume.point, "info", [
            f'[[device]]\nname = "optia-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {self.sim.port}\n'
            'reconnect_initial_ms = 100\nreconnect_max_s = 2\n'])
        check_config(self.args.bin, config)
        self.daemon = Daemon(self.args.bin, self.directory, config).start()
        wait_until(lambda: (stored_count(self.daemon) or 0) >= 20, 60, "20 messages stored before the first fault",
                   poll=0.2, process=self.daemon.process, log_file=self.daemon.err)
        time.sleep(self.form.settle_s)
        for index, episode in enumerate(self.episodes):
            if index:
                time.sleep(self.form.gap_s)
            log(f"{self.name}: fault {index + 1}/{len(self.episodes)}: {episode.kind} for {episode.duration:g} s")
            self.episode(episode)
        # The rest of the run: the simulator ends once every message is acknowledged.
        wait_until(lambda: self.sim.process.poll() is not None, self.form.end_at_min * 60 / self.form.speed + 120,
                   "the simulator to finish its run (every message acknowledged)", poll=0.25, log_file=self.sim.err)
        if self.sim.process.returncode != 0:
            self.failures.append(f"optia-sim exited with status {self.sim.process.returncode}")
        time.sleep(0.5)
        self.stored_total += stored_count(self.daemon) or 0
        status = self.daemon.stop()
        if status not in (0, None):
            self.failures.append(f"apheresisd exited with status {status} on SIGTERM")
        if isinstance(self.volume, FaultVolume):
            self.volume.stop_fuse()
        return self.verify()

    # -- one fault ---------------------------------------------------------------------------

    def inject(self, episode):
        kind = episode.kind
        if kind == "fill":
            size = self.volume.fill(leave=0)
            episode.note = f"filler {size / 1048576:.1f} MiB, {self.volume.free_bytes()} bytes left"
        elif kind == "fill-reserve":
            size = self.volume.fill(leave=RESERVE_BYTES // 2)
            episode.note = f"filler {size / 1048576:.1f} MiB, {self.volume.free_bytes() / 1048576:.1f} MiB left (reserve 16 MiB)"
        elif kind == "erofs":
            done, words = self.volume.try_remount_ro()
            if done:
                episode.note = "tmpfs remounted read-only"
            else:
                episode.note = f"`mount -o remount,ro` refused ({words}); faultfs answers EROFS"
                self.volume.set_mode("erofs")
                self.volume.wait_mode("erofs")
        elif kind in ("eio-write", "eio-fsync", "eio-all"):
            self.volume.set_mode(kind)
            self.volume.wait_mode(kind)
        elif kind == "eio-lose-crash":
            self.volume.set_mode("eio-lose")
            self.volume.wait_mode("eio-lose")
        elif kind == "ext4-error":
            self.volume.trigger_error()
            wait_until(self.volume.read_only, 10, "the kernel to remount the ext4 volume read-only", poll=0.05)
        else:
            raise HarnessError(f"unknown fault {kind}")

    def clear(self, episode):
        kind = episode.kind
        if kind.startswith("fill"):
            self.volume.unfill()
        elif kind == "erofs":
            if self.volume.remounted_ro:
                self.volume.remount_rw()
            else:
                self.volume.set_mode("ok")
                self.volume.wait_mode("ok")
        else:
            self.volume.set_mode("ok")
            self.volume.wait_mode("ok")

    def episode(self, episode):
        daemon = self.daemon
        log_offset = len(daemon.log())
        acked_before = len(simulator_state(self.sim.state)["acked"])
        start = time.monotonic()
        episode.wall_start = time.time()
        self.inject(episode)
        if episode.kind == "eio-lose-crash":
            return self.lose_and_crash(episode, start, log_offset)
        if episode.kind == "ext4-error":
            return self.ext4_error(episode, start, log_offset)
        self.observe_fault(episode, start, log_offset)
        episode.acked_during = len(simulator_state(self.sim.state)["acked"]) - acked_before
        self.clear(episode)
        self.observe_recovery(episode, time.monotonic(), log_offset)

    def observe_fault(self, episode, start, log_offset, until=None):
        """Polls the journal, the API's alarms and /metrics until the fault has lasted its time."""
        end = until or (start + episode.duration)
        while time.monotonic() < end:
            now = time.monotonic() - start
            text = self.daemon.log()[log_offset:]
            if episode.alarm_log_s is None:
                match = re.search(rf"^.*raised {ALARM}: .*$", text, re.M)
                if match:
                    # The line's own time stamp (the stderr handler writes UTC with milliseconds).
                    stamp = logged_at(match.group(0))
                    episode.alarm_log_s = max(0.0, stamp - episode.wall_start) if stamp is not None else now
                    episode.journal_line = match.group(0)
            alarms = self.daemon.get("/api/v1/alarms", timeout=2)
            episode.api_statuses.add(alarms[0])
            failing = alarms_say_failing(alarms)
            for message in store_alarm_messages(alarms):
                episode.api_messages.add(class_of(message) + (" [raw error text]" if RAW_ERROR.search(message) else ""))
            if failing and episode.alarm_api_s is None:
                episode.alarm_api_s = now
            elif failing is False and episode.alarm_api_s is not None:
                episode.all_well_after_alarm += 1
            if episode.metric_failing_s is None and metric_failing(self.daemon.get("/metrics", timeout=2)):
                episode.metric_failing_s = now
            if not self.daemon.alive():
                raise HarnessError(f"apheresisd exited with status {self.daemon.process.returncode} during the fault"
                                   + tail(self.daemon.err))
            time.sleep(0.2)

    def observe_recovery(self, episode, cleared, log_offset):
        before = stored_count(self.daemon) or 0
        deadline = cleared + RECOVER_WITHIN_S
        while time.monotonic() < deadline and (episode.recovered_alarm_s is None or episode.recovered_store_s is None):
            now = time.monotonic() - cleared
            if episode.recovered_alarm_s is None and alarms_say_failing(self.daemon.get("/api/v1/alarms", timeout=2)) is False:
                episode.recovered_alarm_s = now
            if episode.recovered_store_s is None and (stored_count(self.daemon) or 0) > before:
                episode.recovered_store_s = now
            time.sleep(0.1)
        cleared = re.search(rf"cleared {ALARM}: .*? after (\d+) s and (\d+) refused write\(s\)", self.daemon.log()[log_offset:])
        episode.cleared_line = cleared is not None
        if cleared:
            episode.refused = int(cleared.group(2))

    def lose_and_crash(self, episode, start, log_offset):
        """A disk that takes writes and fails every fsync, then a power cut: the daemon killed, the
        writes made meanwhile gone from the backing file, the machine back, the daemon started again."""
        self.observe_fault(episode, start, log_offset)
        episode.acked_during = 0
        self.stored_total += stored_count(self.daemon) or 0
        self.daemon.kill()
        self.volume.set_mode("crash")
        wait_until(lambda: self.volume.stats().get("crashed") == "1", 10, "faultfs to undo the lost writes", poll=0.05)
        lost = self.volume.stats().get("lost_writes", "?")
        self.volume.stop_fuse()
        self.volume.start_fuse()
        episode.note = f"kill -9 during the fault, {lost} write(s) undone on the backing file, daemon started again"
        cleared = time.monotonic()
        self.daemon.start()
        self.observe_recovery(episode, cleared, 0)
        # A new process: its journal starts over, so the episode's "cleared" line cannot come; the
        # alarm simply is not there. What matters here is what the store kept.
        episode.cleared_line = None

    def ext4_error(self, episode, start, log_offset):
        """The kernel remounted the store's volume read-only; a person repairs it and starts the
        daemon again."""
        self.observe_fault(episode, start, log_offset)
        episode.acked_during = 0
        status = self.daemon.stop()
        fsck = self.volume.repair()
        episode.note = (f"kernel remounted the volume read-only (errors=remount-ro); daemon stopped (exit status {status}), "
                        f"e2fsck -fy status {fsck}, mounted again, daemon started again")
        cleared = time.monotonic()
        self.daemon.start()
        self.observe_recovery(episode, cleared, 0)
        episode.cleared_line = None  # a new process: the episode ended with the old one

    # -- afterwards ------------------------------------------------------------------------------

    def verify(self):
        state = simulator_state(self.sim.state)
        facts = store_facts(self.volume.database_for_checks(), self.sim.serial)
        made = state["created"] or set(range(1, state["last"] + 1))
        stored = facts["distinct"]
        lost = sorted(made - stored)
        acked_unstored = sorted(state["acked"] - stored)
        duplicated = facts["repeats"] + facts["sample_repeats"] + facts["quarantined"]
        episodes_n = len(self.episodes)
        failed_events = facts["events"].get("store_failed", 0)
        recovered_events = facts["events"].get("store_recovered", 0)
        # An episode ended by a kill -9 has no recovery in the same process: no events for it.
        expected_events = sum(1 for e in self.episodes if e.kind not in ("eio-lose-crash", "ext4-error"))
        reasons = list(self.failures)
        if lost:
            reasons.append(f"{len(lost)} message(s) lost ({short_list(lost)})")
        if acked_unstored:
            reasons.append(f"{len(acked_unstored)} ACKed but not stored ({short_list(acked_unstored)})")
        if duplicated:
            reasons.append(f"{duplicated} duplicated (rows {facts['repeats']}, samples {facts['sample_repeats']}, "
                           f"quarantined {facts['quarantined']})")
        if facts["integrity"] != "ok":
            reasons.append(f"integrity_check: {facts['integrity'][:200]}")
        if failed_events < expected_events or recovered_events < expected_events:
            reasons.append(f"events store_failed {failed_events} / store_recovered {recovered_events} for "
                           f"{expected_events} fault(s)")
        for i, e in enumerate(self.episodes, 1):
            label = f"fault {i} ({e.kind})" if episodes_n > 1 else e.kind
            if e.alarm_log_s is None or e.alarm_log_s > ALARM_WITHIN_S:
                reasons.append(f"{label}: no '{ALARM}' journal line within {ALARM_WITHIN_S:g} s")
            elif self.volume.point not in (e.journal_line or ""):
                reasons.append(f"{label}: the journal line does not name the store's file")
            elif RAW_ERROR.search(e.journal_line):
                reasons.append(f"{label}: the journal line carries an internal error's text, not plain words")
            elif e.kind in ("erofs", "ext4-error") and "read-only" not in class_of(e.journal_line):
                # docs/store.md: EROFS is the class .readOnly ("remounted read-only after disk errors").
                reasons.append(f"{label}: the volume is read-only (EROFS) but the journal says '{class_of(e.journal_line)}'")
            raw = sorted(m for m in e.api_messages if m.endswith("[raw error text]"))
            if raw:
                reasons.append(f"{label}: the API's {ALARM} message carried SQLite's own text at times ('{raw[0]}')")
            if e.alarm_api_s is None or e.alarm_api_s > ALARM_WITHIN_S:
                statuses = ", ".join(str(x) for x in sorted(e.api_statuses, key=str))
                reasons.append(f"{label}: GET /api/v1/alarms did not list {ALARM} within {ALARM_WITHIN_S:g} s "
                               f"(HTTP {statuses}" + (", not the documented 503 for a failing store" if 500 in e.api_statuses else "")
                               + ")")
            if e.all_well_after_alarm:
                reasons.append(f"{label}: the API said all is well {e.all_well_after_alarm} time(s) during the fault")
            if e.metric_failing_s is None:
                reasons.append(f"{label}: apheresisd_store_failing never 1")
            if e.acked_during:
                self.notes.append(f"{label}: {e.acked_during} ACK(s) while the fault lasted (messages committed just "
                                  "before it took effect, or resends of stored ones; none is missing if 'lost' is 0)")
            if e.recovered_alarm_s is None or e.recovered_store_s is None:
                reasons.append(f"{label}: no recovery within {RECOVER_WITHIN_S:g} s")
            if e.cleared_line is False:
                reasons.append(f"{label}: no 'cleared {ALARM}' journal line")
        self.reasons = reasons
        return {
            "case": self.name,
            "sent": len(made),
            "stored": len(stored & made),
            "lost": len(lost),
            "acked_unstored": len(acked_unstored),
            "acked": len(state["acked"]),
            "duplicated": duplicated,
            "facts": facts,
            "seconds": time.monotonic() - self.started,
        }

    def close(self, keep=False):
        """Stops everything and unmounts. A failed case keeps its directory, with a copy of the
        store's files as the broken volume held them (kept-state/), and says where."""
        for process in [self.daemon.process if self.daemon else None, self.sim.process if self.sim else None]:
            if process is not None:
                REAPER.stop(process, grace=10)
        try:
            if keep:
                self.keep_state()
            self.volume.close()
        finally:
            if keep:
                keep_directory(self.directory)
                print(f"kept for inspection: {self.directory}", flush=True)
            else:
                REAPER.remove_dir(self.directory)

    def keep_state(self):
        source = self.volume.backing if isinstance(self.volume, FaultVolume) else self.volume.point
        target = os.path.join(self.directory, "kept-state")
        try:
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("filler", "lost+found"), dirs_exist_ok=True)
        except (OSError, shutil.Error) as error:
            log(f"{self.name}: could not copy the store's files from {source}: {error}")


def logged_at(line):
    """Unix time of a daemon log line ('2026-12-06T03:35:52.315Z notice ...'), or None."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z ", line)
    if not match:
        return None
    return datetime.datetime.fromisoformat(match.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()


def short_list(values, n=8):
    text = ", ".join(str(v) for v in values[:n])
    return text + (", ..." if len(values) > n else "")


def seconds(value):
    return "-" if value is None else f"{value:.1f} s"


def class_of(line):
    """The plain words of the failure from the journal line ("disk is full", "read-only", ...)."""
    if not line:
        return "-"
    match = re.search(r"refuses writes: (.*?)(?:\. Messages from|$)", line)
    words = match.group(1) if match else line
    for pattern, short in [(r"disk is full: ([\d.]+ \w+)", r"disk full (\1 free)"), (r"disk is full", "disk full"),
                           (r"read-only", "read-only"), (r"I/O error \((\w+)", r"I/O error (\1)"),
                           (r"SQLITE_\w+", r"\g<0>")]:
        found = re.search(pattern, words)
        if found:
            return found.expand(short)
    return words[:60]


# ---------------------------------------------------------------------------------------------

def row_for(case, result, run):
    episodes = run.episodes
    alarm = ", ".join(f"{ALARM} +{seconds(e.alarm_log_s)}" if e.alarm_log_s is not None else "none" for e in episodes)
    journal = "; ".join(dict.fromkeys(class_of(e.journal_line) for e in episodes))
    named = all(e.journal_line and run.volume.point in e.journal_line for e in episodes)
    journal = f"{journal}{', names the store file' if named else ', does NOT name the store file'}"
    health = []
    for e in episodes:
        if e.alarm_api_s is None:
            said = "API: no alarm"
        else:
            said = f"API alarm +{seconds(e.alarm_api_s)}" + (f", {e.all_well_after_alarm} all-well poll(s)" if e.all_well_after_alarm else ", kept")
        statuses = ",".join(str(s) for s in sorted(e.api_statuses, key=str))
        metric = f"failing=1 +{seconds(e.metric_failing_s)}" if e.metric_failing_s is not None else "failing never 1"
        health.append(f"{said}; {metric}; HTTP {statuses}")
    recovered = ", ".join(
        "no" if e.recovered_store_s is None else f"{seconds(max(e.recovered_store_s, e.recovered_alarm_s or 0))}"
        for e in episodes)
    verdict = "PASS" if not run.reasons else "FAIL: " + "; ".join(run.reasons)
    faults = ", ".join(f"{e.kind} {e.duration:g} s" for e in episodes)
    return [f"{case} ({faults})", str(result["sent"]), str(result["stored"]),
            f"{result['lost']}" + (f" ({result['acked_unstored']} ACKed)" if result["acked_unstored"] else ""),
            str(result["duplicated"]), alarm, journal, " / ".join(health), recovered, result["facts"]["integrity"], verdict]


HEADER = ["case", "sent", "stored", "lost", "duplicated", "alarm raised (after the fault)", "journal line",
          "health during the fault", "recovered (after the fault cleared)", "integrity", "verdict"]


def print_table(rows, notes):
    print()
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    if notes:
        print()
        for note in notes:
            print(f"- {note}")
    sys.stdout.flush()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", help="directory of apheresisd and optia-sim (default: swift build --show-bin-path)")
    parser.add_argument("--smoke", action="store_true", help="each case once, short (CI)")
    parser.add_argument("--only", help="comma-separated cases: " + ",".join(CASES))
    parser.add_argument("--allow-skip", action="store_true", help="a case that cannot run here does not fail the script")
    parser.add_argument("--faultfs", default=DEFAULT_FAULTFS, help="the faultfs binary (built from faultfs.c when missing)")
    parser.add_argument("--keep-logs", help="copy every log into this directory")
    args = parser.parse_args(argv)
    if args.bin is None:
        args.bin = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
    args.bin = os.path.abspath(args.bin)
    REAPER.keep_logs = os.path.abspath(args.keep_logs) if args.keep_logs else None
    cases = args.only.split(",") if args.only else (SMOKE_CASES if args.smoke else CASES)
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; the cases are {', '.join(CASES)}")
    for tool in ("apheresisd", "optia-sim"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            parser.error(f"{args.bin}/{tool} is missing: build it first (swift build --product {tool})")

    def interrupted(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, interrupted)

    form = Form(args.smoke)
    rows, notes = [], []
    status = 0
    started = time.monotonic()
    print(f"# Disk campaign ({'smoke' if args.smoke else 'full'}): optia-sim at {form.speed}x over TCP, "
          f"run of {form.end_at_min} simulated min, state directory on a broken file system", flush=True)
    try:
        faultfs = None
        for case in cases:
            run = None
            failed = True
            try:
                if case != "full" and faultfs is None:
                    faultfs = build_faultfs(args.faultfs)
                run = CaseRun(case, form, args, faultfs or args.faultfs)
                result = run.run()
                rows.append(row_for(case, result, run))
                notes += [f"{case}: {n}" for n in run.notes]
                notes += [f"{case}, fault {i} ({e.kind}): {e.note}" for i, e in enumerate(run.episodes, 1) if e.note]
                for i, e in enumerate(run.episodes, 1):
                    if e.api_messages:
                        notes.append(f"{case}, fault {i} ({e.kind}): the API's {ALARM} said: " + "; ".join(sorted(e.api_messages)))
                refused = [str(e.refused) for e in run.episodes if e.refused is not None]
                if refused:
                    notes.append(f"{case}: writes refused per fault (the daemon's count; the separator resent meanwhile): "
                                 + ", ".join(refused))
                notes.append(f"{case}: {result['seconds']:.0f} s; {result['acked']} ACKs in the simulator's state file "
                             f"({result['acked_unstored']} of them not stored); events {format_events(result['facts']['events'])}")
                failed = bool(run.reasons)
                if run.reasons:
                    status = max(status, 1)
            except Interrupted:
                failed = False  # Ctrl-C: clean up, keep nothing
                raise
            except NotRun as reason:
                failed = False  # nothing to look at
                rows.append([case] + ["-"] * (len(HEADER) - 2) + [f"not run: {reason}"])
                if not args.allow_skip:
                    status = max(status, 2)
            except HarnessError as error:
                rows.append([case] + ["-"] * (len(HEADER) - 2) + [f"could not be measured: {str(error).splitlines()[0]}"])
                log(f"{case}: {error}")
                status = max(status, 1)
            finally:
                if run is not None:
                    run.close(keep=failed)
        print_table(rows, notes)
        print(f"\n{len(cases)} case(s) in {time.monotonic() - started:.0f} s", flush=True)
    except Interrupted as signal_name:
        log(f"interrupted ({signal_name}): cleaning up")
        status = 130
    finally:
        MOUNTS.cleanup()
        REAPER.cleanup()
    return status


def format_events(events):
    keys = ["store_failed", "store_recovered", "stale", "link_down", "link_up"]
    return ", ".join(f"{k} {events.get(k, 0)}" for k in keys)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
