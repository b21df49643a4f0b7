#!/usr/bin/env python3
"""Seed corpora and dictionaries for the fuzz targets (Fuzz/, Sources/FuzzEntries), from what the
repository ships:

  e1381       device bytes of simulator/captures/*.capture, a few sessions per seed, with the
              time gaps of the capture as time events (the FuzzEntries.e1381Receiver encoding),
              and variants where the store waits, the timer fires mid-message or the daemon stops
  e1394       message texts reassembled from the captures' frames, and the spec's example
  export-csv  export files optia-sim writes for every scenario (`run --export-dir`), whole and
              cut to their first rows (still complete files)
  config      docs/configuration.md's TOML blocks, systemd/apheresisd.toml, the TOML texts of
              Tests/DaemonConfigurationTests, and the scenario files (TOML of another shape)
  api-bodies  the JSON bodies of docs/api.md, each behind every endpoint byte

Writes OUT/corpus/<target>/<sha1> (generated, never committed) and OUT/dict/<target>.dict.
Seeds are content-addressed: running it again adds nothing twice. Python 3, standard library only.

Usage: scripts/fuzz/seed_corpora.py [--out .build-fuzz] [--optia-sim PATH] [target ...]
"""

import argparse
import glob
import hashlib
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGETS = ["e1381", "e1394", "export-csv", "config", "api-bodies"]

STX, ETX, EOT, ENQ, ACK, LF, CR, NAK, ETB = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0D, 0x15, 0x17
EVENT = 0xFF  # FuzzEntries.eventByte
# Events of FuzzEntries.e1381Receiver: FF 4k (time +k s), FF 4k+1 (timer), FF 4k+2 (store), FF 03 (stop).
TIMER = bytes([EVENT, 0x01])
STORE_LATER = bytes([EVENT, 4 * 2 + 2])
STORE_NOW = bytes([EVENT, 4 * 0 + 2])
STORE_FAILED = bytes([EVENT, 4 * 1 + 2])
STORE_AT_ONCE = bytes([EVENT, 4 * 3 + 2])
STOP = bytes([EVENT, 0x03])
MAX_SEED = 4096


def time_event(seconds):
    """Time events for a gap of `seconds` (k up to 63 s each)."""
    out = bytearray()
    whole = int(round(seconds))
    while whole > 0:
        k = min(63, whole)
        out += bytes([EVENT, 4 * k])
        whole -= k
    return bytes(out)


def escape(data):
    return data.replace(bytes([EVENT]), bytes([EVENT, EVENT]))


def read_capture(path):
    """(seconds, direction, bytes) per chunk of a capture file (docs/simulator.md, "Captures")."""
    chunks = []
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3 or parts[1] not in "<>":
                continue
            try:
                chunks.append((float(parts[0]), parts[1], bytes.fromhex(parts[2])))
            except ValueError:
                continue
    return chunks


def device_stream(chunks):
    """The device's bytes as one e1381 input, each gap of a second or more as time events."""
    out = bytearray()
    last = None
    for seconds, direction, data in chunks:
        if direction != ">":
            continue
        if last is not None and seconds - last >= 1:
            out += time_event(seconds - last)
        last = seconds
        out += escape(data)
    return bytes(out)


def sessions(stream):
    """The stream cut after every EOT: one device session each (the events stay with their bytes)."""
    out, start, i = [], 0, 0
    while i < len(stream):
        if stream[i] == EVENT and i + 1 < len(stream):
            i += 2
            continue
        i += 1
        if stream[i - 1] == EOT:
            out.append(stream[start:i])
            start = i
    if start < len(stream):
        out.append(stream[start:])
    return out


def e1381_seeds():
    seeds = []
    for path in sorted(glob.glob(os.path.join(ROOT, "simulator", "captures", "*.capture"))):
        parts = sessions(device_stream(read_capture(path)))
        # A few sessions per seed, as long as they fit.
        current = b""
        for part in parts:
            if current and len(current) + len(part) > MAX_SEED:
                seeds.append(current)
                current = b""
            current += part
        if current:
            seeds.append(current[:MAX_SEED])
        # Variants of the first sessions: what happens around the bytes.
        first = b"".join(parts[:2])[:MAX_SEED]
        cut = first.find(bytes([LF]), len(first) // 2)
        if cut > 0:
            seeds.append(STORE_LATER + first + STORE_NOW)
            seeds.append(STORE_LATER + first + STORE_FAILED + TIMER + first)
            seeds.append(first[: cut + 1] + TIMER + first[cut + 1:])
            seeds.append(first[: cut + 1] + time_event(31) + first[cut + 1:])
            seeds.append(first[: cut + 1] + STOP + first[cut + 1:])
            seeds.append(STORE_LATER + first[: cut + 1] + bytes([ENQ]) + STORE_AT_ONCE + first)
    return seeds


def frames(stream):
    """(frame number, text, final) of every well-formed device frame with a right checksum; None at ENQ."""
    i = 0
    while i < len(stream):
        if stream[i] == ENQ:
            yield None
        if stream[i] != STX:
            i += 1
            continue
        end = stream.find(bytes([LF]), i)
        if end < 0:
            return
        body = stream[i + 1:end]
        i = end + 1
        if len(body) < 5 or body[-1] != CR or body[-4] not in (ETX, ETB):
            continue
        if b"\x02" in body or b"\x04" in body or b"\x05" in body:
            continue
        try:
            checksum = int(body[-3:-1].decode("ascii"), 16)
        except ValueError:
            continue
        if sum(body[:-3]) % 256 != checksum:
            continue
        yield body[0] - 0x30, body[1:-4], body[-4] == ETX


def messages_of(path):
    """Message texts (H to L) a host would assemble from a capture's device bytes."""
    stream = b"".join(data for _, direction, data in read_capture(path) if direction == ">")
    messages, text, expected = [], b"", 1
    for frame in frames(stream):
        if frame is None:
            text, expected = b"", 1
            continue
        number, body, final = frame
        if number != expected:
            continue  # a frame sent again after a NAK or a lost ACK
        expected = (expected + 1) % 8
        if body.startswith(b"H|"):
            text = b""
        text += body
        if final and text.endswith(b"\r") and re.search(rb"(^|\r)L\|[^\r]*\r$", text):
            messages.append(text)
            text = b""
    return messages


def spec_messages():
    """The example message of separator-interface.md, section 4, with its elisions left out."""
    path = os.path.join(ROOT, "..", "shared", "spec", "separator-interface.md")
    if not os.path.exists(path):
        return []
    records = [line.strip() for line in open(path, encoding="utf-8") if re.match(r"^\s*[HMPORCL]\|", line)]
    messages, current = [], []
    for record in records:
        if record.startswith("H|") and current:
            messages.append(current)
            current = []
        current.append(record)
        if record.startswith("L|"):
            messages.append(current)
            current = []
    return [("\r".join(m) + "\r").encode() for m in messages if m and m[0].startswith("H|")]


def e1394_seeds():
    seeds, seen_kinds = [], {}
    for path in sorted(glob.glob(os.path.join(ROOT, "simulator", "captures", "*.capture"))):
        for message in messages_of(path):
            kind = re.search(rb"\rM\|1\|OSTI\|([A-Z_]+)", message)
            key = kind.group(1) if kind else b"?"
            # Every kind, a handful of each: ticks are much alike.
            if seen_kinds.get(key, 0) < 12:
                seen_kinds[key] = seen_kinds.get(key, 0) + 1
                seeds.append(message)
    return seeds + spec_messages()


def shortened(csv_text, rows):
    """An export file cut to its first `rows` data rows, still complete (#END counts them)."""
    out, data_rows, header_seen = [], 0, False
    for line in csv_text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if stripped.startswith("#END="):
            break
        if not header_seen:
            out.append(line)
            header_seen = stripped.startswith("TIMESTAMP")
            continue
        if stripped.startswith("#"):
            out.append(line)
            continue
        if data_rows == rows:
            continue
        data_rows += 1
        out.append(line)
    return "".join(out) + "#END=%d\r\n" % data_rows


def export_seeds(optia_sim):
    if not optia_sim or not os.access(optia_sim, os.X_OK):
        print("seed_corpora: no optia-sim (--optia-sim): export-csv gets no scenario files", file=sys.stderr)
        return []
    seeds = []
    with tempfile.TemporaryDirectory(prefix="fuzz-export-") as directory:
        for scenario in sorted(glob.glob(os.path.join(ROOT, "simulator", "scenarios", "*.toml"))):
            name = os.path.splitext(os.path.basename(scenario))[0]
            out = os.path.join(directory, name)
            os.mkdir(out)
            state = os.path.join(directory, name + ".state")
            result = subprocess.run(
                [optia_sim, "run", scenario, "--export-dir", out, "--speed", "10000", "--state", state],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
            if result.returncode != 0:
                print("seed_corpora: optia-sim run %s: %s" % (name, result.stderr.decode(errors="replace").strip()[-300:]),
                      file=sys.stderr)
            for path in sorted(glob.glob(os.path.join(out, "*.csv"))):
                text = open(path, encoding="utf-8").read()
                seeds.append(text.encode())
                for rows in (0, 3, 12):
                    seeds.append(shortened(text, rows).encode())
    return seeds


def swift_toml_strings(path):
    """The multi-line string literals of a Swift test file that look like a configuration."""
    text = open(path, encoding="utf-8").read()
    out = []
    for match in re.finditer(r'"""\n(.*?)\n([ \t]*)"""', text, re.S):
        body, indent = match.group(1), match.group(2)
        lines = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in body.split("\n")]
        literal = "\n".join(lines) + "\n"
        if "\\(" in literal or "=" not in literal:
            continue  # interpolated, or not TOML
        out.append(literal.replace('\\"', '"').replace("\\\\", "\\"))
    return out


def toml_blocks(path):
    text = open(path, encoding="utf-8").read()
    return [m.group(1) for m in re.finditer(r"```toml\n(.*?)```", text, re.S)]


def config_seeds():
    seeds = []
    for block in toml_blocks(os.path.join(ROOT, "docs", "configuration.md")):
        seeds.append(block)
        if "format" not in block:
            seeds.append("format = 1\n" + block)  # a fragment, as part of a whole file
    seeds.append(open(os.path.join(ROOT, "systemd", "apheresisd.toml"), encoding="utf-8").read())
    for path in sorted(glob.glob(os.path.join(ROOT, "Tests", "DaemonConfigurationTests", "*.swift"))):
        seeds += swift_toml_strings(path)
    for path in sorted(glob.glob(os.path.join(ROOT, "simulator", "scenarios", "*.toml")))[:4]:
        seeds.append(open(path, encoding="utf-8").read())
    return [s.encode() for s in seeds]


def api_seeds():
    text = open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8").read()
    bodies = set(re.findall(r"-d '([^']*)'", text))
    bodies |= {b.replace('\\"', '"') for b in re.findall(r'-d "((?:[^"\\]|\\.)*)"', text)}
    bodies |= {m.strip() for m in re.findall(r"```json\n(.*?)```", text, re.S)}
    bodies |= {"", "{}", "[]", "null"}
    seeds = []
    for body in sorted(bodies):
        for kind in range(6):  # APIRequestBody.allCases.count
            seeds.append(bytes([kind]) + body.encode())
    return seeds


def dict_entry(value):
    if isinstance(value, str):
        value = value.encode()
    out = "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else "\\x%02X" % b for b in value)
    return '"%s"' % out


def parameter_codes():
    source = open(os.path.join(ROOT, "Sources", "SeparatorProtocol", "Model", "ParameterCode.swift"), encoding="utf-8").read()
    return re.findall(r'ParameterCode = "([A-Z_]+)"', source)


def config_keys():
    keys = set()
    text = open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8").read()
    for block in toml_blocks(os.path.join(ROOT, "docs", "configuration.md")):
        keys |= set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", block, re.M))
    keys |= set(re.findall(r"\|\s*`([a-z_][a-z0-9_]*)`", text))
    return sorted(keys)


def dictionaries():
    codes = parameter_codes()
    control = [bytes([b]) for b in (STX, ETX, EOT, ENQ, ACK, LF, CR, NAK, ETB)]
    e1381 = control + [b"\r\n", b"\x021", b"\x03", TIMER, STORE_LATER, STORE_NOW, STORE_FAILED, STORE_AT_ONCE, STOP,
                       time_event(30), time_event(15), b"H|\\^&|", b"L|1|N\r", b"\rL|1|N\r\x03"]
    e1394 = [b"H|\\^&|", b"M|1|OSTI|", b"P|1|", b"O|1|", b"R|1|^^^", b"C|1|", b"L|1|N\r", b"\r", b"|", b"^", b"&",
             b"&F&", b"&S&", b"&R&", b"&E&", b"&X0D&", b"&X0a0b&", b"^^^CMNC", b"OPTIA-SIM^1.0^1OPT00417",
             b"20261124101500", b"19700517", b"^cm", b"^kg", b"INFO", b"WARNING", b"ALARM", b"1e308", b"-0.0"]
    e1394 += [k.encode() for k in ("RUN_START", "TICK", "ALARM", "EVENT", "RUN_END")]
    e1394 += [c.encode() for c in codes] + [u.encode() for u in ("mL", "min", "mL/min", "%", "{ratio}", "mL/min/L",
                                                                "{TBV}", "{rpm}", "mm[Hg]", "10*9/L")]
    export = [b"#FORMAT=OPTIA-EXPORT/1", b"#END=", b"#ALARM=", b"TIMESTAMP,RUN_TIME", b"\r\n", b"\"", b"\"\"", b","]
    export += [("#%s=" % k).encode() for k in ("MODEL", "SOFTWARE_VERSION", "SERIAL", "RUN_ID", "PROCEDURE", "RUN_START",
                                               "PATIENT_ID", "PATIENT_FAMILY", "PATIENT_GIVEN", "BIRTH_DATE", "SEX",
                                               "HEIGHT_CM", "WEIGHT_KG")]
    export += [c.encode() for c in codes] + [b"^ALARM", b"^INFO", b"PAUSE", b"RESUME", b"OPERATOR_NOTE", b"20261124101500"]
    config = ["[daemon]", "[[device]]", "[[profile]]", "[product]", "[labels]", "[api]", "[audit]", "format = 1",
              "\"\"\"", "'''", "true", "false", "inf", "nan", "1979-05-27T07:32:00Z", "0x7f", "1_000", "= ", "{", "}",
              "[", "]", ",", ".", "\"\\u0000\"", "\n"] + config_keys()
    api = ["{", "}", "[", "]", ":", ",", "null", "true", "false", "1e309", "-0", "\"\\u0000\"", "\"\\ud800\"",
           "released", "wbc_giga_per_litre", "cd3_percent", "cd3_per_microlitre", "viability_percent",
           "qc_millilitres", "recovery_percent", "reduced_millilitres", "reason", "meaning", "release_summary_sha256",
           "acknowledge_incomplete_run", "printer", "reprint_reason", "user", "password", "changes",
           "ratio_warn_deviation", "ratio_alarm_deviation", "ac_infusion_rate_warn_ml_per_min_per_l",
           "ac_infusion_rate_alarm_ml_per_min_per_l", "citrate_load_warn_mg_per_kg_per_min",
           "citrate_load_alarm_mg_per_kg_per_min", "collect_target_ml", "collect_max_ml"]
    return {"e1381": e1381, "e1394": e1394, "export-csv": export, "config": config, "api-bodies": api}


def write(directory, seeds):
    os.makedirs(directory, exist_ok=True)
    added = 0
    for seed in seeds:
        path = os.path.join(directory, hashlib.sha1(seed).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(seed)
            added += 1
    return added


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="of %s (default: all)" % ", ".join(TARGETS))
    parser.add_argument("--out", default=os.path.join(ROOT, ".build-fuzz"), help="corpus/ and dict/ go here")
    parser.add_argument("--optia-sim", help="the optia-sim executable, for the export files of the scenarios")
    args = parser.parse_args()
    targets = args.targets or TARGETS
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error("unknown target %s; the targets are %s" % (", ".join(unknown), ", ".join(TARGETS)))
    makers = {"e1381": e1381_seeds, "e1394": e1394_seeds, "export-csv": lambda: export_seeds(args.optia_sim),
              "config": config_seeds, "api-bodies": api_seeds}
    dicts = dictionaries()
    os.makedirs(os.path.join(args.out, "dict"), exist_ok=True)
    for target in targets:
        seeds = makers[target]()
        added = write(os.path.join(args.out, "corpus", target), seeds)
        with open(os.path.join(args.out, "dict", target + ".dict"), "w", encoding="ascii") as f:
            f.write("# %s: generated by scripts/fuzz/seed_corpora.py\n" % target)
            for i, value in enumerate(dict.fromkeys(dicts[target])):
                f.write("kw%d=%s\n" % (i, dict_entry(value)))
        print("%-11s %4d seeds (%d new), dictionary of %d" % (target, len(set(seeds)), added, len(set(dicts[target]))))


if __name__ == "__main__":
    main()
