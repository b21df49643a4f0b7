#!/usr/bin/env python3
"""HL7 v2 MLLP test receiver for apheresisd's integration tests.

Why this exists
---------------
apheresisd builds and sends HL7 v2 messages (IHE PCD-01 observations,
ORU^R01^ORU_R01, and IHE PCD-04 alarms, ORU^R40^ORU_R01) over MLLP.  Testing
that sender only against a receiver written by the same project would let the
same misunderstanding sit on both sides of the wire.  This script is "a
receiver the project did not write": the MLLP framing/listener comes from the
PyPI package ``hl7`` (``hl7.mllp``), the structural validation of each message
comes from the PyPI package ``hl7apy`` (STRICT validation against the official
v2.6 message structures) and the acknowledgement is built with ``hl7``.  Only
the glue (policy, logging, process control) is ours.

What it does
------------
* listens for MLLP connections (any number of clients, any number of messages
  per connection, answered in order on the same connection);
* prints exactly one line ``listening on <port>`` on stdout once listening;
* for every message: validates it, appends one JSON line to ``--log`` (written,
  flushed and fsync'ed BEFORE any acknowledgement is sent), then answers
  according to the policy file (re-read for every message):

    {"default": "AA",
     "reject":  {"<MSH-10>": "reason", ...},        -> AR
     "error":   {"<MSH-10>": "reason", ...},        -> AE
     "reject_containing": {"<substring>": "reason"}, -> AR (substring of raw text)
     "error_containing":  {"<substring>": "reason"}, -> AE
     "silent": ["<MSH-10>", ...],                   -> log, never answer
     "silent_containing": ["<substring>", ...],     -> log, never answer
     "delay_seconds": 0,                            -> sleep before answering
     "close_after_answer": false}                   -> close the connection after each answer

  Precedence: silent, reject, error, invalid message (AE with the validation
  errors), default (AA).  Missing file / missing keys mean "AA for everything".

Log line keys: control_id, message_type, valid, errors, warnings, validated_as,
ack, ack_text, received_at, peer, raw.

Run ``receiver.py --help`` for the command line.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time

import hl7
from hl7.mllp import InvalidBlockError, start_hl7_server
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message as ApyMessage
from hl7apy.exceptions import InvalidName
from hl7apy.parser import get_message_info, parse_segments
from hl7apy.validation import Validator

# IHE PCD trigger events whose message structure is not named after the
# trigger.  Only consulted when MSH-9.3 (message structure) is empty; a
# missing MSH-9.3 is still reported as an error by hl7apy itself because
# MSG.3 is required in v2.6.
STRUCTURE_FALLBACK = {
    "ORU_R40": "ORU_R01",  # IHE PCD-04 alarm report
    "ORU_R41": "ORU_R01",  # IHE PCD alarm acknowledgement (ACM)
}

MAX_MSA3 = 400  # keep the AE/AR text in MSA-3 / ERR-8 readable


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def segments_of(text):
    """Split on the HL7 segment terminator (CR) only; drop empty ones."""
    return [s for s in text.split("\r") if s.strip()]


def find_msh(text):
    """Return (msh_segment_text, field_list) of the first MSH segment, or (None, None)."""
    for seg in segments_of(text):
        # tolerate junk before MSH (e.g. a stray byte ahead of the message):
        # the message is still reported invalid by hl7apy, but can be AE'd.
        idx = seg.find("MSH")
        if idx < 0:
            continue
        seg = seg[idx:]
        if len(seg) >= 8 and not seg[3].isalnum():
            sep = seg[3]
            # MSH-1 is the separator itself: fields[n] == MSH-(n+1) after the
            # adjustment below (fields[0] = "MSH", fields[1] = MSH-2 ...).
            parts = seg.split(sep)
            fields = [parts[0], sep] + parts[1:]  # fields[i] == MSH-i
            return seg, fields
    return None, None


def msh_field(fields, index):
    if fields is None or index >= len(fields):
        return ""
    return fields[index]


def load_policy(path, last_good):
    """Re-read the policy file; on a half-written/invalid file keep the last good one."""
    if not path:
        return {}, None
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = f.read()
    except FileNotFoundError:
        return {}, None
    except OSError as e:
        return last_good, "cannot read policy: %s" % e
    try:
        policy = json.loads(data) if data.strip() else {}
        if not isinstance(policy, dict):
            raise ValueError("policy must be a JSON object")
        return policy, None
    except ValueError as e:
        return last_good, "invalid policy JSON (%s); using previous policy" % e


def _read_report(path):
    errors, warnings = [], []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("Error: "):
                errors.append(line[len("Error: "):])
            elif line.startswith("Warning: "):
                warnings.append(line[len("Warning: "):])
    return errors, warnings


def validate(text, version):
    """Validate ``text`` with hl7apy (STRICT) against the ``version`` structures.

    Returns (errors, warnings, validated_as).

    How the structure is chosen: this is what hl7apy.parser.parse_message()
    does internally (get_message_info -> Message(name=structure) ->
    parse_segments(find_groups=True) -> Validator.validate), with two pins:

    * the structure is MSH-9.3 (hl7apy reads it from there too, so
      ``ORU^R40^ORU_R01`` is validated as ORU_R01).  Only if MSH-9.3 is empty
      do we derive it (STRUCTURE_FALLBACK, else "<MSH-9.1>_<MSH-9.2>"),
      because hl7apy has no ORU_R40 structure and would otherwise refuse to
      parse the message at all;
    * the version is the receiver's --version, not MSH-12, so a message
      claiming another version is still judged against v2.6 (and the
      mismatch is reported as an error).

    hl7apy's validator reports all errors/warnings only through a report
    file, so we hand it a temporary one.  Warnings (value not in an HL7
    table, length) do not make a message invalid: hl7apy's v2.6 tables are
    incomplete (e.g. it warns about OBX-2 = CWE).

    hl7apy does not check segment ORDER inside a group and silently drops
    segments it cannot place (unknown or Z segments).  To catch those, the
    segment sequence hl7apy re-serialises (which follows the structure
    definition) is compared with the received one.
    """
    errors, warnings = [], []
    encoding_chars, structure, msg_version = get_message_info(text)

    msh_seg, fields = find_msh(text)
    msg_type = msh_field(fields, 9).split(encoding_chars["COMPONENT"])
    if not structure or len(msg_type) < 3 or not msg_type[2]:
        key = "_".join(msg_type[:2])
        structure = STRUCTURE_FALLBACK.get(key, key)
    if msg_version != version:
        errors.append("MSH-12 version %r does not match the expected %r" % (msg_version, version))

    try:
        m = ApyMessage(name=structure, version=version,
                       validation_level=VALIDATION_LEVEL.STRICT,
                       encoding_chars=encoding_chars)
    except InvalidName:
        errors.append("unknown message structure %r for HL7 v%s" % (structure, version))
        return errors, warnings, None

    try:
        m.children = parse_segments(text, version, encoding_chars,
                                    VALIDATION_LEVEL.STRICT, m.reference, True)
    except Exception as e:  # hl7apy raises on bad datatypes/structure while parsing
        errors.append("%s: %s" % (type(e).__name__, e))
        return errors, warnings, structure

    fd, report = tempfile.mkstemp(prefix="hl7apy-report-")
    os.close(fd)
    try:
        try:
            Validator.validate(m, reference=m.reference, report_file=report)
        except Exception as e:
            first = "%s" % e
        else:
            first = None
        rep_errors, rep_warnings = _read_report(report)
        if first is not None and not rep_errors:
            rep_errors = [first]
        errors.extend(rep_errors)
        warnings.extend(rep_warnings)
    finally:
        try:
            os.unlink(report)
        except OSError:
            pass

    # segment order / dropped segments (see docstring)
    received = [s.lstrip()[:3] for s in segments_of(text)]
    z_segments = [s for s in received if s.startswith("Z")]
    if z_segments:
        warnings.append("Z segments ignored by the validator: %s" % ", ".join(z_segments))
    received = [s for s in received if not s.startswith("Z")]
    try:
        placed = [s[:3] for s in segments_of(m.to_er7())]
    except Exception as e:
        errors.append("cannot re-serialise parsed message: %s: %s" % (type(e).__name__, e))
        placed = received
    if placed != received:
        dropped = sorted(set(received) - set(placed))
        if dropped:
            errors.append("segments not allowed in %s v%s: %s" % (structure, version, ", ".join(dropped)))
        else:
            errors.append("segment order does not follow %s v%s: received %s, structure order %s"
                          % (structure, version, "-".join(received), "-".join(placed)))
    return errors, warnings, structure


def build_ack(msh_segment, code, text):
    """ACK built with python-hl7 from the received MSH; MSA-3 + ERR for AE/AR."""
    src = hl7.parse(msh_segment)
    fs, cs = src.separators[1], src.separators[3]  # "\r|~^&": segment, field, rep, comp, sub
    try:
        ack_segs = [s for s in str(src.create_ack(code)).split("\r") if s]
    except Exception:
        # python-hl7's create_ack needs MSH-9.1 and MSH-9.2; fall back to a
        # hand-made ACK for a message whose MSH-9 is empty or truncated.
        msh = src.segment("MSH")

        def f(n):
            try:
                return str(msh(n)) if n < len(msh) else ""
            except Exception:
                return ""
        ack_segs = [fs.join(["MSH", f(2), f(5), f(6), f(3), f(4),
                             time.strftime("%Y%m%d%H%M%S", time.gmtime()), "", "ACK",
                             hl7.generate_message_control_id(), f(11) or "P", f(12)]),
                    fs.join(["MSA", code, f(10)])]
    if code != "AA" and text:
        text = text.replace("\r", " ").replace("\n", " ")[:MAX_MSA3]
        esc = src.escape(text)
        ack_segs[1] = ack_segs[1] + fs + esc  # MSA-3 text message
        # ERR-3 (CWE, table 0357) and ERR-4 (severity) are required in v2.6;
        # ERR-8 (user message) repeats the reason.
        ack_segs.append(fs.join(["ERR", "", "",
                                 cs.join(["207", "Application internal error", "HL70357"]),
                                 "E", "", "", "", esc]))
    return hl7.parse("\r".join(ack_segs))


# --------------------------------------------------------------------------
# receiver
# --------------------------------------------------------------------------

class Receiver:
    def __init__(self, args):
        self.args = args
        self.policy = {}
        self.log_fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.writers = set()

    def write_log(self, record):
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            n = os.write(self.log_fd, view)
            view = view[n:]
        os.fsync(self.log_fd)

    def decide(self, control_id, raw, valid, errors):
        policy, perr = load_policy(self.args.policy, self.policy)
        self.policy = policy
        if perr:
            print("receiver: %s" % perr, file=sys.stderr, flush=True)

        def lookup(key):
            table = policy.get(key) or {}
            return table.get(control_id) if isinstance(table, dict) else None

        def containing(key):
            table = policy.get(key) or {}
            if isinstance(table, dict):
                for sub, reason in table.items():
                    if sub and sub in raw:
                        return reason
            return None

        silent = policy.get("silent") or []
        silent_c = policy.get("silent_containing") or []
        if control_id in silent or any(s and s in raw for s in silent_c):
            return None, None
        reason = lookup("reject")
        if reason is None:
            reason = containing("reject_containing")
        if reason is not None:
            return "AR", str(reason) or "rejected by test policy"
        reason = lookup("error")
        if reason is None:
            reason = containing("error_containing")
        if reason is not None:
            return "AE", str(reason) or "error by test policy"
        if not valid:
            return "AE", "; ".join(errors) or "invalid message"
        code = str(policy.get("default") or "AA")
        return code, (None if code == "AA" else "test policy default %s" % code)

    def delay(self):
        try:
            return max(0.0, float(self.policy.get("delay_seconds") or 0))
        except (TypeError, ValueError):
            return 0.0

    def process(self, block, peer):
        """Validate + log one MLLP block. Returns (msh_segment_or_None, ack_code, ack_text)."""
        received_at = time.time()
        errors, warnings = [], []
        try:
            raw = block.decode("utf-8")
        except UnicodeDecodeError as e:
            raw = block.decode("utf-8", errors="replace")
            errors.append("message is not valid UTF-8: %s" % e)

        msh_seg, fields = find_msh(raw)
        control_id = msh_field(fields, 10) or None
        message_type = msh_field(fields, 9) or None
        validated_as = None
        if msh_seg is None:
            errors.append("no MSH segment found")
        else:
            try:
                verrs, vwarns, validated_as = validate(raw, self.args.version)
                errors.extend(verrs)
                warnings.extend(vwarns)
            except Exception as e:  # never let a malformed message kill us
                errors.append("%s: %s" % (type(e).__name__, e))
        valid = not errors

        if control_id is None:
            code, text = None, None  # nothing to acknowledge: close the connection
            if msh_seg is not None:
                errors.append("MSH-10 (message control id) is empty")
                valid = False
        else:
            try:
                code, text = self.decide(control_id, raw, valid, errors)
            except Exception as e:
                code, text = "AE", "receiver policy failure: %s" % e

        self.write_log({
            "control_id": control_id,
            "message_type": message_type,
            "validated_as": validated_as,
            "valid": valid,
            "errors": errors,
            "warnings": warnings,
            "ack": code,
            "ack_text": text,
            "received_at": received_at,
            "peer": peer,
            "raw": raw,
        })
        return msh_seg, control_id, code, text

    def log_framing_error(self, peer, what, partial=b""):
        self.write_log({
            "control_id": None, "message_type": None, "validated_as": None,
            "valid": False, "errors": [what], "warnings": [], "ack": None,
            "ack_text": None, "received_at": time.time(), "peer": peer,
            "raw": partial.decode("utf-8", errors="replace"),
        })

    async def handle(self, reader, writer):
        self.writers.add(writer)
        pn = writer.get_extra_info("peername") or ("?", 0)
        peer = "%s:%s" % (pn[0], pn[1])
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError as e:
                    if e.partial.strip():
                        self.log_framing_error(peer, "connection closed inside an MLLP block", e.partial)
                    break
                except InvalidBlockError as e:
                    self.log_framing_error(peer, "MLLP framing error: %s" % e)
                    break
                except ValueError as e:  # block larger than the stream limit
                    self.log_framing_error(peer, "MLLP block too large: %s" % e)
                    break
                msh_seg, control_id, code, text = self.process(block, peer)
                if msh_seg is None or control_id is None:
                    break  # nothing we could acknowledge: close the connection
                if code is None:
                    continue  # silent: logged, never answered
                delay = self.delay()
                if delay:
                    await asyncio.sleep(delay)
                try:
                    ack = build_ack(msh_seg, code, text)
                except Exception as e:
                    print("receiver: cannot build ACK for %s: %s" % (control_id, e),
                          file=sys.stderr, flush=True)
                    break
                writer.writemessage(ack)
                await writer.drain()
                if self.policy.get("close_after_answer"):
                    # An engine that closes connections after each exchange (or when idle).
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception as e:
            print("receiver: connection %s failed: %s: %s" % (peer, type(e).__name__, e),
                  file=sys.stderr, flush=True)
        finally:
            self.writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass


async def amain(args):
    receiver = Receiver(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # TLS, when asked: asyncio's own server side (the `ssl` argument start_hl7_server passes on to
    # loop.create_server), with a client certificate required when --tls-client-ca is given.
    tls = None
    if args.tls_cert:
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.tls_client_ca)
    server = await start_hl7_server(receiver.handle, args.host, args.port,
                                    encoding="utf-8", limit=16 * 1024 * 1024, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("listening on %d\n" % port)
    sys.stdout.flush()

    await stop.wait()
    server.close()
    for w in list(receiver.writers):
        try:
            w.close()
        except Exception:
            pass
    try:
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    except (asyncio.TimeoutError, Exception):
        pass
    os.close(receiver.log_fd)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="HL7 v2 MLLP test receiver (hl7 + hl7apy).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port, 0 = pick a free one (default 0)")
    p.add_argument("--log", required=True, help="JSON-lines log file (appended)")
    p.add_argument("--policy", help="JSON policy file, re-read for every message")
    p.add_argument("--version", default="2.6", help="HL7 version to validate against (default 2.6)")
    p.add_argument("--tls-cert", help="PEM certificate (chain): listen with TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", help="PEM CA: require a client certificate it signed")
    args = p.parse_args(argv)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
