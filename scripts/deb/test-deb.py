#!/usr/bin/env python3
"""Install apheresisd's .deb on this machine, check it, run it, remove and purge it.

    sudo python3 scripts/deb/test-deb.py [--config release|debug] .build-deb/release/apheresisd_V_ARCH.deb

(make deb-test, make deb-smoke; docs/packaging.md.) Needs root and a machine without apheresisd
installed. Whatever happens, the package is purged at the end, and what purge keeps on purpose
(the state directory, the audit key, the system user) is removed too when this test made it, so
the machine is left as it was found. One line per check; the last line is "N passed, N failed".
"""

import argparse
import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

PKG = "apheresisd"
UNIT = "/lib/systemd/system/apheresisd.service"
CONF = "/etc/apheresisd/apheresisd.toml"
KEY = "/etc/apheresisd/audit.key"
STATE = "/var/lib/apheresisd"
BACKUPS = "/var/backups/apheresisd"
EXECUTABLES = ["apheresisd", "apheresisctl", "optia-sim"]
# What `systemd-analyze security --offline=yes` rates the unit today (docs/service.md, "Hardening");
# a higher (worse) exposure fails.
SECURITY_THRESHOLD = 1.5
SCENARIO = "/usr/share/apheresisd/scenarios/normal-boy-10y.toml"

results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
    return ok


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def installed_packages() -> set[str]:
    out = run(["dpkg-query", "-W", "-f", "${Package}:${Architecture} ${db:Status-Abbrev}\n"]).stdout
    return {line.split()[0] for line in out.splitlines() if len(line.split()) > 1 and line.split()[1].startswith("ii")}


def package_status() -> str:
    r = run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PKG])
    return r.stdout.strip() if r.returncode == 0 else "not-installed"


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def check_files(version: str, config: str) -> None:
    expected = {
        "/usr/bin/apheresisd": 0o755, "/usr/bin/apheresisctl": 0o755, "/usr/bin/optia-sim": 0o755,
        UNIT: 0o644, CONF: 0o644,
        "/usr/lib/sysusers.d/apheresisd.conf": 0o644,
        "/usr/lib/tmpfiles.d/apheresisd.conf": 0o644,
        "/lib/udev/rules.d/99-apheresisd.rules": 0o644,
        "/usr/share/man/man8/apheresisd.8.gz": 0o644,
        "/usr/share/man/man1/apheresisctl.1.gz": 0o644,
        "/usr/share/man/man1/optia-sim.1.gz": 0o644,
        "/usr/share/man/man5/apheresisd.toml.5.gz": 0o644,
        "/usr/share/doc/apheresisd/README.md": 0o644,
        "/usr/share/doc/apheresisd/service.md": 0o644,
        "/usr/share/doc/apheresisd/configuration.md": 0o644,
        "/usr/share/doc/apheresisd/copyright": 0o644,
        # A native package's debian/changelog is its changelog (Debian policy 12.7): changelog.gz.
        "/usr/share/doc/apheresisd/changelog.gz": 0o644,
        SCENARIO: 0o644,
    }
    for exe in EXECUTABLES:
        expected[f"/usr/share/bash-completion/completions/{exe}"] = 0o644
        expected[f"/usr/share/zsh/vendor-completions/_{exe}"] = 0o644
        expected[f"/usr/share/fish/vendor_completions.d/{exe}.fish"] = 0o644
    for path, mode in expected.items():
        try:
            st = os.stat(path)
            check(f"file {path}", stat.S_IMODE(st.st_mode) == mode and st.st_uid == 0,
                  f"mode {stat.S_IMODE(st.st_mode):o} uid {st.st_uid}, expected {mode:o} root")
        except FileNotFoundError:
            check(f"file {path}", False, "missing")
    # Every Documentation= of the unit names an installed file.
    docs = [w for line in open(UNIT) if line.startswith("Documentation=")
            for w in line.split("=", 1)[1].split()]
    missing = [d for d in docs if not os.path.exists(d.removeprefix("file://"))]
    check("unit: every Documentation= file installed", bool(docs) and not missing, f"missing {missing}")
    unit_text = open(UNIT).read()
    check("unit: ExecStart=/usr/bin/apheresisd, nothing under /usr/local",
          "ExecStart=/usr/bin/apheresisd " in unit_text and "/usr/local" not in unit_text)
    conffiles = run(["dpkg-query", "-W", "-f", "${Conffiles}", PKG]).stdout
    check("conffile: /etc/apheresisd/apheresisd.toml", CONF in conffiles, conffiles.strip())
    # The postinst: the audit key (root-only, 32 bytes), the user, the state directory.
    try:
        st = os.stat(KEY)
        check("postinst: audit key root:root 0600, 32 bytes",
              stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0 and st.st_gid == 0 and st.st_size == 32,
              f"mode {stat.S_IMODE(st.st_mode):o} uid {st.st_uid} size {st.st_size}")
    except FileNotFoundError:
        check("postinst: audit key root:root 0600, 32 bytes", False, "missing")
    check("sysusers: user apheresisd, member of dialout",
          user_exists("apheresisd") and "apheresisd" in grp.getgrnam("dialout").gr_mem)
    if user_exists("apheresisd"):
        u = pwd.getpwnam("apheresisd")
        check("sysusers: no login shell, home /var/lib/apheresisd",
              u.pw_shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false") and u.pw_dir == STATE,
              f"{u.pw_shell} {u.pw_dir}")
    try:
        st = os.stat(STATE)
        check("tmpfiles: /var/lib/apheresisd apheresisd 0750",
              stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == pwd.getpwnam("apheresisd").pw_uid,
              f"mode {stat.S_IMODE(st.st_mode):o} uid {st.st_uid}")
    except (FileNotFoundError, KeyError):
        check("tmpfiles: /var/lib/apheresisd apheresisd 0750", False, "missing")
    for exe in EXECUTABLES:
        out = run([f"/usr/bin/{exe}", "--version"])
        check(f"{exe} --version is {version}", out.returncode == 0 and out.stdout.strip() == version,
              (out.stdout + out.stderr).strip())
        libs = run(["ldd", f"/usr/bin/{exe}"]).stdout
        swift_libs = [line.split()[0] for line in libs.splitlines() if "swift" in line.lower() or "Foundation" in line]
        if config == "release":
            check(f"{exe}: Swift runtime linked statically (ldd names no libswift*)", not swift_libs, " ".join(swift_libs))
        else:
            check(f"{exe}: debug smoke links the toolchain's Swift runtime", bool(swift_libs) and "not found" not in libs)


def check_systemd() -> None:
    r = run(["systemd-analyze", "verify", UNIT])
    # Without systemd as PID 1 verify still loads the unit; everything it prints is a finding.
    check("systemd-analyze verify", r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(),
          (r.stdout + r.stderr).strip())
    r = run(["systemd-analyze", "security", "--offline=yes", f"--threshold={int(SECURITY_THRESHOLD * 10)}", UNIT])
    level = None
    for line in r.stdout.splitlines():
        if "Overall exposure level" in line:
            level = float(line.split(":")[1].split()[0])
    check(f"systemd-analyze security --offline=yes: exposure {level} <= {SECURITY_THRESHOLD}",
          level is not None and level <= SECURITY_THRESHOLD, (r.stdout[-400:] + r.stderr).strip())
    backup_units = [UNIT.replace("apheresisd.service", f"apheresisd-backup.{kind}") for kind in ("service", "timer")]
    r = run(["systemd-analyze", "verify", *backup_units])
    check("systemd-analyze verify apheresisd-backup.service and .timer",
          r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), (r.stdout + r.stderr).strip())
    r = run(["systemctl", "is-enabled", "apheresisd-backup.timer"])
    check("the backup timer is installed, not enabled", r.stdout.strip() == "disabled", (r.stdout + r.stderr).strip())
    st = os.stat(BACKUPS) if os.path.isdir(BACKUPS) else None
    check("tmpfiles: /var/backups/apheresisd apheresisd 0750",
          st is not None and stat.S_IMODE(st.st_mode) == 0o750 and st.st_uid == pwd.getpwnam("apheresisd").pw_uid)
    check("the example alert rules are installed",
          os.path.exists("/usr/share/doc/apheresisd/examples/apheresisd-alerts.yml"))
    r = run(["/usr/bin/apheresisd", "--check-config", CONF])
    check("apheresisd --check-config /etc/apheresisd/apheresisd.toml", r.returncode == 0, (r.stdout + r.stderr).strip())
    # udevadm verify came with systemd 253; Debian 12 has 252, and udev is not installed everywhere.
    r = run(["udevadm", "verify", "/lib/udev/rules.d/99-apheresisd.rules"]) if shutil.which("udevadm") else None
    if r is None or "verify" in r.stderr:
        print("skip udevadm verify (no udevadm here, or one without the verify command)")
    else:
        check("udevadm verify 99-apheresisd.rules", r.returncode == 0, r.stderr.strip())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_daemon_runs() -> None:
    """The installed daemon, as the apheresisd user, against the installed optia-sim over TCP:
    it must report READY=1 through sd_notify and store a run."""
    work = tempfile.mkdtemp(prefix="apheresisd-deb-test-")
    sim = daemon = None
    try:
        os.chmod(work, 0o755)
        state = os.path.join(work, "state")
        os.mkdir(state, 0o750)
        uid, gid = pwd.getpwnam("apheresisd").pw_uid, grp.getgrnam("apheresisd").gr_gid
        os.chown(state, uid, gid)
        # As the service user, with its groups, the way the unit runs it (User=, SupplementaryGroups=).
        as_service = dict(user="apheresisd", group="apheresisd", extra_groups=["dialout"], umask=0o027)
        sim = subprocess.Popen(["/usr/bin/optia-sim", "run", SCENARIO,
                                "--tcp", "0", "--speed", "600", "--state", os.path.join(state, "sim.state")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work, **as_service)
        first = sim.stdout.readline().strip()
        if not check("optia-sim (installed) listens", first.startswith("tcp: 127.0.0.1:"), first):
            return
        sim_port = int(first.rsplit(":", 1)[1])
        api_port = free_port()
        config = os.path.join(work, "apheresisd.toml")
        with open(config, "w") as f:
            f.write(f'format = 1\n\n[daemon]\nstate_directory = "{state}"\nlog_level = "info"\n\n'
                    f'[[device]]\nname = "optia-1"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {sim_port}\n\n'
                    f'[api]\nlisten = "127.0.0.1:{api_port}"\n')
        os.chmod(config, 0o644)
        r = run(["/usr/bin/apheresisd", "--check-config", config], cwd=work, **as_service)
        check("apheresisd --check-config (the test's TCP configuration)", r.returncode == 0, r.stdout + r.stderr)
        notify_path = os.path.join(work, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        os.chmod(notify_path, 0o777)
        notify.settimeout(1)
        env = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM")}
        env["NOTIFY_SOCKET"] = notify_path
        log = open(os.path.join(work, "daemon.log"), "w+")
        daemon = subprocess.Popen(["/usr/bin/apheresisd", "--config", config],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work, **as_service)
        ready = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and daemon.poll() is None and not ready:
            try:
                ready = b"READY=1" in notify.recv(4096)
            except socket.timeout:
                pass
        log.seek(0)
        if not check("apheresisd (installed, as user apheresisd) sends READY=1", ready, log.read()[-2000:]):
            return
        runs: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not runs:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v1/runs", timeout=5) as reply:
                    body = json.load(reply)
                runs = body.get("data", []) if isinstance(body, dict) else []
            except OSError:
                pass
            if not runs:
                time.sleep(1)
        log.seek(0)
        check("the daemon stored a run of the simulator (GET /api/v1/runs)",
              bool(runs) and runs[0].get("latest_sample") is not None, json.dumps(runs)[:500] + "\n" + log.read()[-3000:])
        # A backup while the daemon runs, by the installed apheresisctl as the service user.
        backups = os.path.join(state, "backups")
        os.mkdir(backups, 0o750)
        os.chown(backups, uid, gid)
        r = run(["/usr/bin/apheresisctl", "backup", "--config", config, backups, "--keep", "2"], cwd=work, **as_service)
        check("apheresisctl backup (installed, as apheresisd, while the daemon runs)",
              r.returncode == 0 and "integrity ok" in r.stdout
              and any(n.endswith(".sqlite") for n in os.listdir(backups)), r.stdout + r.stderr)
        db = os.path.join(state, "apheresisd.sqlite")
        check("the store is the service user's, not readable by others",
              os.path.exists(db) and os.stat(db).st_uid == uid and not os.stat(db).st_mode & 0o007)
        daemon.terminate()
        try:
            code = daemon.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        check("apheresisd stops on SIGTERM with exit status 0", code == 0, f"exit {code}")
    finally:
        for p in (daemon, sim):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def check_man_and_completions() -> None:
    pages = ["/usr/share/man/man8/apheresisd.8.gz", "/usr/share/man/man1/apheresisctl.1.gz",
             "/usr/share/man/man1/optia-sim.1.gz", "/usr/share/man/man5/apheresisd.toml.5.gz"]
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANROFFSEQ="")
    for page in pages:
        # As lintian checks manual pages: every groff warning counts.
        r = run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", page], env=env)
        shown = run(["man", "-l", page], env=env)
        check(f"man {os.path.basename(page)} renders without warnings",
              r.returncode == 0 and not r.stderr.strip() and len(shown.stdout.splitlines()) > 10, r.stderr.strip())
    for exe in EXECUTABLES:
        r = run(["bash", "-c", f"source /usr/share/bash-completion/completions/{exe} && complete -p {exe}"])
        check(f"bash completion for {exe} loads", r.returncode == 0 and exe in r.stdout, r.stderr.strip())
        for shell, path in (("zsh", f"/usr/share/zsh/vendor-completions/_{exe}"),
                            ("fish", f"/usr/share/fish/vendor_completions.d/{exe}.fish")):
            if shutil.which(shell):
                r = run([shell, "-n", path])
                check(f"{shell} completion for {exe} parses", r.returncode == 0, r.stderr.strip())
            else:
                print(f"skip {shell} -n {path} ({shell} is not installed here)")


def check_remove_and_purge() -> None:
    r = run(["dpkg", "-r", PKG])
    check("dpkg -r apheresisd", r.returncode == 0, r.stdout + r.stderr)
    check("after remove: executables gone", not any(os.path.exists(f"/usr/bin/{e}") for e in EXECUTABLES))
    check("after remove: unit gone", not os.path.exists(UNIT))
    check("after remove: conffile kept", os.path.exists(CONF))
    check("after remove: state directory and audit key kept", os.path.isdir(STATE) and os.path.exists(KEY))
    check("after remove: package state config-files", package_status().startswith("rc"), package_status())
    r = run(["dpkg", "-P", PKG])
    check("dpkg -P apheresisd", r.returncode == 0, r.stdout + r.stderr)
    check("after purge: conffile gone", not os.path.exists(CONF))
    check("after purge: the clinical record /var/lib/apheresisd is kept", os.path.isdir(STATE))
    check("after purge: the audit key is kept", os.path.exists(KEY))
    check("after purge: purge says what it kept", STATE in r.stderr and KEY in r.stderr, r.stderr.strip())
    check("after purge: package unknown to dpkg", package_status() in ("not-installed", "un", "pn"), package_status())


def main() -> int:
    parser = argparse.ArgumentParser(description="Install, check, run, remove and purge apheresisd's .deb.")
    parser.add_argument("deb")
    parser.add_argument("--config", choices=["release", "debug"], default="release")
    args = parser.parse_args()
    deb = os.path.abspath(args.deb)
    if os.geteuid() != 0:
        print("test-deb.py: needs root (dpkg, apt, running the daemon as apheresisd)", file=sys.stderr)
        return 2
    if package_status() != "not-installed" and not package_status().startswith("un"):
        print(f"test-deb.py: {PKG} is already on this machine ({package_status()}); this test installs and "
              "purges it, so it refuses to run here", file=sys.stderr)
        return 2
    version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()
    before = {"packages": installed_packages(), "state": os.path.exists(STATE), "backups": os.path.exists(BACKUPS), "key": os.path.exists(KEY),
              "etc": os.path.exists("/etc/apheresisd"), "user": user_exists("apheresisd"),
              "group": group_exists("apheresisd")}
    started = time.monotonic()
    print(f"== deb-test ({args.config}): {deb}")
    try:
        r = run(["apt-get", "install", "-y", "--no-install-recommends", deb],
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if not check("apt-get install ./apheresisd_*.deb", r.returncode == 0, (r.stdout + r.stderr)[-3000:]):
            return 1
        said = [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("apheresisd:")]
        print("   postinst said: " + "\n   ".join(said))
        check("postinst announces the audit key it generated, and that the service is not enabled",
              any("generated the audit key" in l for l in said) and any("neither enabled nor started" in l for l in said))
        depends = run(["dpkg-query", "-W", "-f", "${Depends}", PKG]).stdout
        check("Depends (from dpkg-shlibdeps) names libserialport0, libsystemd0, libsqlite3-0, libsodium23, libzint",
              all(lib in depends for lib in ("libserialport0", "libsystemd0", "libsqlite3-0", "libsodium23", "libzint")),
              depends)
        print(f"   Depends: {depends}")
        for section in (check_files, check_systemd, check_daemon_runs, check_man_and_completions, check_remove_and_purge):
            try:
                section(version, args.config) if section is check_files else section()
            except Exception:
                check(section.__name__, False, traceback.format_exc())
    finally:
        # Leave the machine as it was: purge, then what purge keeps on purpose, if this test made it.
        if package_status() != "not-installed" and not package_status().startswith(("un", "pn")):
            run(["dpkg", "-P", PKG])
        if not before["state"]:
            shutil.rmtree(STATE, ignore_errors=True)
        if not before["backups"]:
            shutil.rmtree(BACKUPS, ignore_errors=True)
        if not before["key"] and os.path.exists(KEY):
            os.remove(KEY)
        if not before["etc"] and os.path.isdir("/etc/apheresisd") and not os.listdir("/etc/apheresisd"):
            os.rmdir("/etc/apheresisd")
        if not before["user"] and user_exists("apheresisd"):
            run(["userdel", "apheresisd"])
        if not before["group"] and group_exists("apheresisd"):
            run(["groupdel", "apheresisd"])
        pulled = installed_packages() - before["packages"]
        if pulled:
            print(f"   removing the packages apt pulled in for the test: {' '.join(sorted(pulled))}")
            run(["apt-get", "purge", "-y", *sorted(pulled)], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        left = [p for p, made in ((STATE, before["state"]), (BACKUPS, before["backups"]), (KEY, before["key"])) if os.path.exists(p) and not made]
        check("machine left as found (package purged, test's user, key and state removed)",
              package_status() in ("not-installed", "un", "pn") and not left
              and user_exists("apheresisd") == before["user"], f"left {left}")
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print(f"deb-test ({args.config}) took {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
