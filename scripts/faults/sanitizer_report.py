#!/usr/bin/env python3
"""Runs a test command built with a sanitizer and counts the sanitizer's reports, from the test
process and from every child it starts (apheresisd, optia-sim, apheresisctl are built with the same
sanitizer): each process writes its reports to its own file through the sanitizer's `log_path`.

    scripts/faults/sanitizer_report.py --sanitizer address|thread [--keep DIR] -- COMMAND...

ASAN_OPTIONS / TSAN_OPTIONS from the environment are kept and `log_path` is added. Prints the test
counts and one Markdown row per kind of report (the first frame in the project's code named), and
exits 1 when the tests failed or any report was written. Python 3 standard library only.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

OPTIONS = {"address": "ASAN_OPTIONS", "thread": "TSAN_OPTIONS"}
HEADER = re.compile(r"^(?:==\d+==)?(ERROR|WARNING): (AddressSanitizer|LeakSanitizer|ThreadSanitizer): (.*?)(?: \(pid=\d+\))?$", re.M)
PROJECT_FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (\S+) (/\S*(?:Sources|simulator|Tests)/\S+)")


def parse_reports(directory):
    reports = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), errors="replace") as f:
            text = f.read()
        starts = [m.start() for m in HEADER.finditer(text)] + [len(text)]
        for begin, end in zip(starts, starts[1:]):
            block = text[begin:end]
            header = HEADER.search(block)
            frame = PROJECT_FRAME.search(block)
            where = f"{frame.group(1)[:80]} ({os.path.basename(frame.group(2))})" if frame else "no frame in the project"
            reports.append({"file": name, "tool": header.group(2), "kind": header.group(3).strip()[:100], "where": where})
    return reports


def main(argv):
    parser = argparse.ArgumentParser(description="Run a sanitized test command and count the reports.")
    parser.add_argument("--sanitizer", choices=sorted(OPTIONS), required=True)
    parser.add_argument("--keep", help="copy the report files here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    reports_dir = tempfile.mkdtemp(prefix=f"apheresisd-{args.sanitizer}-reports-")
    variable = OPTIONS[args.sanitizer]
    options = [o for o in os.environ.get(variable, "").split(":") if o and not o.startswith("log_path=")]
    env = dict(os.environ)
    env[variable] = ":".join(options + [f"log_path={reports_dir}/report"])
    output = []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, errors="replace")
    for line in process.stdout:
        sys.stdout.write(line)
        output.append(line)
    status = process.wait()
    text = "".join(output)
    reports = parse_reports(reports_dir)
    if args.keep and reports:
        os.makedirs(args.keep, exist_ok=True)
        for name in os.listdir(reports_dir):
            shutil.copy(os.path.join(reports_dir, name), args.keep)
    shutil.rmtree(reports_dir, ignore_errors=True)

    passed = re.search(r"Test run with (\d+) tests? (?:in \d+ suites? )?passed", text)
    failed = re.search(r"Test run with (\d+) tests? (?:in \d+ suites? )?failed.*?with (\d+) issues?", text)
    xctest = re.findall(r"Executed (\d+) tests?, with (\d+) failures?", text)
    print(f"\n{args.sanitizer} sanitizer: test command exited {status}")
    print("\n| suite | tests | failed |\n|---|---:|---:|")
    if xctest:
        print(f"| XCTest | {xctest[-1][0]} | {xctest[-1][1]} |")
    if passed:
        print(f"| Swift Testing | {passed.group(1)} | 0 |")
    elif failed:
        print(f"| Swift Testing | {failed.group(1)} | {failed.group(2)} issues |")
    counted = collections.Counter((r["tool"], r["kind"], r["where"]) for r in reports)
    print("\n| tool | report | first frame in the project | count |\n|---|---|---|---:|")
    for (tool, kind, where), count in counted.most_common():
        print(f"| {tool} | {kind} | {where} | {count} |")
    if not reports:
        print("| (none) | 0 reports from any process | | 0 |")
    return 0 if status == 0 and not reports else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
