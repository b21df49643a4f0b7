#!/usr/bin/env python3
"""Runs the libFuzzer targets of Fuzz/ and prints what they found as a Markdown table.

Each target runs for --runs executions (default 10^7) or --max-time seconds, whichever ends first,
on its corpus (.build-fuzz/corpus/<target>/, seeded by seed_corpora.py, grown by the run), with its
dictionary, ASan and LeakSanitizer (-detect_leaks=1), -timeout (an input running longer is a hang)
and -rss_limit_mb (more is an OOM). libFuzzer stops at its first finding; the run is then started
again on the rest of the budget, up to --max-findings findings per target. Every crashing, hanging,
leaking or OOM input is copied to Tests/FuzzRegressionTests/Inputs/<target>/<kind>-<sha1>, where
FuzzRegressionTests replays it. Exit status 1 when anything was found, 2 when a target could not run.

Table: target, executions, time, corpus size (inputs, bytes), coverage (libFuzzer's last `cov:`
and `ft:`), crashes, hangs (timeouts), leaks, OOMs. Logs: .build-fuzz/logs/<target>.log.
Python 3, standard library only.

Usage: scripts/fuzz/run_fuzz.py [--runs N] [--max-time S] [--jobs 2] [target ...]
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGETS = ["e1381", "e1394", "export-csv", "config", "api-bodies"]
# Inputs up to these sizes (the seeds that matter fit; export files are cut to their first rows).
MAX_LEN = {"e1381": 8192, "e1394": 4096, "export-csv": 16384, "config": 4096, "api-bodies": 4096}
KINDS = {"crash": "crashes", "timeout": "hangs", "leak": "leaks", "oom": "ooms"}


class Result:
    def __init__(self, target):
        self.target = target
        self.executions = 0
        self.seconds = 0.0
        self.cov = None
        self.ft = None
        self.found = {kind: [] for kind in KINDS}
        self.failed = None  # why the target could not run at all
        self.corpus_files = 0
        self.corpus_bytes = 0

    @property
    def findings(self):
        return sum(len(v) for v in self.found.values())


def run_target(target, args, log):
    result = Result(target)
    binary = os.path.join(args.bin_dir, "fuzz-" + target)
    corpus = os.path.join(args.work, "corpus", target)
    artifacts = os.path.join(args.work, "artifacts", target) + os.sep
    dictionary = os.path.join(args.work, "dict", target + ".dict")
    inputs = os.path.join(args.inputs, target)
    if not os.access(binary, os.X_OK):
        result.failed = "no executable %s (build the Fuzz package first)" % binary
        return result
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    environment = dict(os.environ)
    # libFuzzer and ASan print the stack; the Swift runtime's own backtracer would only slow a crash down.
    environment["SWIFT_BACKTRACE"] = "enable=no"
    # Shorter allocation stacks than ASan's 30 frames: recording them is most of the cost of a run
    # that allocates much; 10 still reach the project's frame (and TOMLKit's, for lsan.supp).
    environment["ASAN_OPTIONS"] = "detect_leaks=1:malloc_context_size=10:" + environment.get("ASAN_OPTIONS", "")
    environment["LSAN_OPTIONS"] = "suppressions=%s:%s" % (
        os.path.join(ROOT, "scripts", "fuzz", "lsan.supp"), environment.get("LSAN_OPTIONS", ""))
    started = time.monotonic()
    runs_left = args.runs
    while True:
        elapsed = time.monotonic() - started
        time_left = None if args.max_time is None else args.max_time - elapsed
        if runs_left <= 0 or (time_left is not None and time_left < 1):
            break
        command = [binary, "-runs=%d" % runs_left, "-timeout=%d" % args.timeout, "-rss_limit_mb=%d" % args.rss_limit_mb,
                   "-detect_leaks=1", "-max_len=%d" % MAX_LEN[target], "-print_final_stats=1",
                   "-artifact_prefix=" + artifacts, "-seed=%d" % args.seed if args.seed else "-seed=0"]
        if time_left is not None:
            command.append("-max_total_time=%d" % max(1, int(time_left)))
        if os.path.exists(dictionary):
            command.append("-dict=" + dictionary)
        command.append(corpus)
        log.write("$ %s\n" % " ".join(command))
        log.flush()
        # Straight into the log, so that a long run can be watched (tail -f); then read back.
        start = os.fstat(log.fileno()).st_size
        process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=args.work)
        log.flush()
        with open(log.name, "rb") as written:
            written.seek(start)
            output = written.read().decode(errors="replace")
        executed = parse_stat(output, "number_of_executed_units")
        if executed is None:  # stopped before its final stats: the last status line's count
            counts = re.findall(r"^#(\d+)\s", output, re.M)
            executed = int(counts[-1]) if counts else 0
        result.executions += executed
        runs_left -= max(1, executed)
        coverage = re.findall(r"\bcov: (\d+) ft: (\d+)", output)
        if coverage:
            result.cov, result.ft = (int(x) for x in coverage[-1])
        artifact = re.search(r"Test unit written to (\S+)", output)
        if artifact:
            kind, path = keep(artifact.group(1), inputs)
            again = path in result.found[kind]
            if not again:
                result.found[kind].append(path)
            # The same input again means the corpus itself reproduces it: starting over finds nothing new.
            if again or result.findings >= args.max_findings:
                break
            continue
        if process.returncode != 0:
            result.failed = "exit status %d without an input written; see %s" % (process.returncode, log.name)
        break
    result.seconds = time.monotonic() - started
    names = os.listdir(corpus)
    result.corpus_files = len(names)
    result.corpus_bytes = sum(os.path.getsize(os.path.join(corpus, n)) for n in names)
    return result


def parse_stat(output, name):
    match = re.findall(r"stat::%s:\s+(\d+)" % name, output)
    return int(match[-1]) if match else None


def keep(artifact, inputs):
    """Copies a libFuzzer artifact (crash-, timeout-, leak-, oom-<sha1>) into the regression inputs."""
    name = os.path.basename(artifact)
    kind = name.split("-", 1)[0]
    if kind not in KINDS:
        kind = "crash"
    data = open(artifact, "rb").read()
    os.makedirs(inputs, exist_ok=True)
    path = os.path.join(inputs, "%s-%s" % (kind, hashlib.sha1(data).hexdigest()))
    shutil.copyfile(artifact, path)
    return kind, os.path.relpath(path, ROOT)


def human(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return "%d h %02d min" % (hours, rest // 60)


def size(n):
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0


def table(results):
    lines = ["| target | executions | time | corpus | coverage (cov / ft) | crashes | hangs | leaks | OOMs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.failed and not r.executions:
            lines.append("| %s | not run: %s | | | | | | | |" % (r.target, r.failed))
            continue
        coverage = "%s / %s" % (r.cov, r.ft) if r.cov is not None else "?"
        lines.append("| %s | %s | %s | %d (%s) | %s | %d | %d | %d | %d |" % (
            r.target, "{:,}".format(r.executions), human(r.seconds), r.corpus_files, size(r.corpus_bytes), coverage,
            len(r.found["crash"]), len(r.found["timeout"]), len(r.found["leak"]), len(r.found["oom"])))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="of %s (default: all)" % ", ".join(TARGETS))
    parser.add_argument("--runs", type=int, default=10 ** 7, help="executions per target (default 10^7)")
    parser.add_argument("--max-time", type=float, help="seconds per target (whichever of the two ends first)")
    parser.add_argument("--timeout", type=int, default=5, help="seconds one input may take before it is a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory before it is an OOM")
    parser.add_argument("--max-findings", type=int, default=3, help="findings per target before it stops")
    parser.add_argument("--jobs", type=int, default=1, help="targets run at the same time")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer's -seed (0: a new one each run)")
    parser.add_argument("--work", default=os.path.join(ROOT, ".build-fuzz"), help="corpus/, dict/, artifacts/, logs/")
    parser.add_argument("--bin-dir", help="the fuzz executables (default: WORK/debug)")
    parser.add_argument("--inputs", default=os.path.join(ROOT, "Tests", "FuzzRegressionTests", "Inputs"))
    args = parser.parse_args()
    args.bin_dir = args.bin_dir or os.path.join(args.work, "debug")
    targets = args.targets or TARGETS
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error("unknown target %s; the targets are %s" % (", ".join(unknown), ", ".join(TARGETS)))
    os.makedirs(os.path.join(args.work, "logs"), exist_ok=True)

    results = {}
    pending = list(targets)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                target = pending.pop(0)
            path = os.path.join(args.work, "logs", target + ".log")
            open(path, "w").close()
            with open(path, "a") as log:  # appended to by libFuzzer too
                result = run_target(target, args, log)
            with lock:
                results[target] = result
                state = "%d finding(s)" % result.findings if result.findings else (result.failed or "nothing found")
                print("%s: %s executions in %s, %s" % (target, "{:,}".format(result.executions), human(result.seconds),
                                                      state), flush=True)

    threads = [threading.Thread(target=worker) for _ in range(max(1, min(args.jobs, len(targets))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ordered = [results[t] for t in targets]
    print()
    print(table(ordered))
    found = [path for r in ordered for paths in r.found.values() for path in paths]
    if found:
        print("\nInputs kept for FuzzRegressionTests:")
        for path in found:
            print("  " + path)
    if any(r.failed for r in ordered):
        return 2
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
