#!/usr/bin/env python3
"""The anchor of the decode figures: PyPI `astm` (0.5.0, the E1381/E1394 codec of
python-astm) decoding the same byte stream as the ProtocolDecode benchmarks.

    astm_anchor.py [--stream FILE] [--seconds S] [--json OUT]

Installs astm into a venv under .build-bench on first use (pip, PyPI). astm 0.5.0 dates
from 2013: its setup.py and codec import `collections.Iterable`, gone since Python 3.10,
so the install and this script put the old names back first (`_restore_collections_abcs`).

What is timed, per pass over the stream, is what astm's own server does with a frame
(astm.server.RequestHandler.handle_message): ETB frames are collected and joined with
`astm.codec.join`, and each complete frame or joined message goes through
`astm.codec.decode_message`, which checks the checksum and splits records, fields and
components into text. Finding STX..LF in the stream is done with bytes.find (C), so the
anchor is the codec, not a Python byte loop.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(ROOT, ".build-bench", "astm-venv")
ASTM_VERSION = "0.5.0"

SHIM = """
import collections, collections.abc
for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "Callable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
"""


def _restore_collections_abcs():
    exec(SHIM, {})


def venv_python():
    return os.path.join(VENV, "bin", "python")


def ensure_astm():
    """Re-runs this script inside the venv, creating it and installing astm when needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    python = venv_python()
    probe = [python, "-c", SHIM + "\nimport astm.codec"]
    if not os.path.exists(python) or subprocess.run(probe, capture_output=True).returncode != 0:
        print(f"astm anchor: installing astm {ASTM_VERSION} into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "setuptools", "wheel"], check=True)
        # The shim must be live while pip runs astm's setup.py: a sitecustomize on PYTHONPATH,
        # and no build isolation (which would start a clean interpreter without it).
        shim_dir = os.path.join(VENV, "astm-install-shim")
        os.makedirs(shim_dir, exist_ok=True)
        with open(os.path.join(shim_dir, "sitecustomize.py"), "w") as f:
            f.write(SHIM)
        env = dict(os.environ, PYTHONPATH=shim_dir)
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-build-isolation", f"astm=={ASTM_VERSION}"],
            check=True, env=env)
    os.execv(python, [python] + sys.argv)


def frames_of(stream):
    """The frames (STX through LF) of the stream; ENQ and EOT between them are skipped."""
    frames = []
    find = stream.find
    start = find(b"\x02")
    while start >= 0:
        end = find(b"\n", start)
        if end < 0:
            break
        frames.append(stream[start:end + 1])
        start = find(b"\x02", end)
    return frames


def decode_pass(stream, codec):
    """One pass as astm's server would see the stream; returns the records decoded."""
    decode_message, join, is_chunked = codec.decode_message, codec.join, codec.is_chunked_message
    records = 0
    chunks = []
    for frame in frames_of(stream):
        if is_chunked(frame):
            chunks.append(frame)
            continue
        if chunks:
            chunks.append(frame)
            frame = join(chunks)
            chunks = []
        _, decoded, _ = decode_message(frame, "latin-1")
        records += len(decoded)
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream", default=os.path.join(ROOT, ".build-bench", "decode-stream.bin"))
    parser.add_argument("--seconds", type=float, default=5.0, help="time to spend measuring (default 5)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    ensure_astm()
    _restore_collections_abcs()
    import astm
    import astm.codec as codec

    with open(args.stream, "rb") as f:
        stream = f.read()
    records = decode_pass(stream, codec)  # warm-up, and a check that every frame decodes
    times = []
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline or len(times) < 3:
        start = time.perf_counter()
        decode_pass(stream, codec)
        times.append(time.perf_counter() - start)
    times.sort()
    p50 = times[len(times) // 2]
    best = times[0]
    result = {
        "anchor": f"PyPI astm {getattr(astm, '__version__', ASTM_VERSION)}, Python {sys.version.split()[0]}",
        "bytes": len(stream),
        "records": records,
        "passes": len(times),
        "p50_seconds": p50,
        "best_seconds": best,
        "p50_mb_per_s": len(stream) / p50 / 1e6,
        "best_mb_per_s": len(stream) / best / 1e6,
    }
    print(f"astm anchor: {len(stream)} bytes, {records} records per pass, {len(times)} passes: "
          f"{result['p50_mb_per_s']:.2f} MB/s (p50), {result['best_mb_per_s']:.2f} MB/s (best)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
