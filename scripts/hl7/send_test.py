#!/usr/bin/env python3
"""Self-test for receiver.py.

Starts receiver.py as a child process on port 0, sends messages with the
python-hl7 MLLP client (hl7.mllp.open_hl7_connection) and checks the ACK codes
and the JSON-lines log.  Exit status 0 on success.

    /tmp/hl7venv/bin/python scripts/hl7/send_test.py
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import shutil
import tempfile
import time

import hl7
from hl7.mllp import open_hl7_connection

HERE = os.path.dirname(os.path.abspath(__file__))

TS = "20261206101500+0000"
MSH_TMPL = ("MSH|^~\\&|APHERESISD^0123456789ABCDEF^EUI-64|BLOODCENTER|RECEIVER|HOSPITAL|"
            + TS + "||{type}|{cid}|P|2.6|||AL|NE||UNICODE UTF-8|||{profile}")
PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
PCD04_PROFILE = "IHE_PCD_ACM_001^IHE PCD^1.3.6.1.4.1.19376.1.6.4.4^ISO"
PID = "PID|||12345^^^Hospital^PI||Doe^John^^^^^L"
PV1 = "PV1||I|ICU^1^3"


def pcd01(cid):
    return "\r".join([
        MSH_TMPL.format(type="ORU^R01^ORU_R01", cid=cid, profile=PCD01_PROFILE),
        PID,
        PV1,
        "OBR|1|" + cid + "^APHERESISD^0123456789ABCDEF^EUI-64|" + cid
        + "^APHERESISD^0123456789ABCDEF^EUI-64|182777000^monitoring of patient^SNOMED-CT|||" + TS,
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|98|262688^MDC_DIM_PERCENT^MDC|||||R|||"
        + TS + "||||SN123^^^^",
        "OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R|||"
        + TS + "||||SN123^^^^",
    ]) + "\r"


def pcd04(cid):
    return "\r".join([
        MSH_TMPL.format(type="ORU^R40^ORU_R01", cid=cid, profile=PCD04_PROFILE),
        PID,
        PV1,
        "OBR|1|" + cid + "^APHERESISD^0123456789ABCDEF^EUI-64|" + cid
        + "^APHERESISD^0123456789ABCDEF^EUI-64|196616^MDC_EVT_ALARM^MDC|||" + TS,
        "OBX|1|ST|196670^MDC_EVT_LO^MDC|1.1.1.150456.1|SpO2 low|||L~PM~SP|||F|||"
        + TS + "||||SN123^^^^",
        "OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.150456.2|85|262688^MDC_DIM_PERCENT^MDC|90-100"
        "||||F|||" + TS + "||||SN123^^^^",
        "OBX|3|ST|68481^MDC_ATTR_EVENT_PHASE^MDC|1.1.1.150456.3|start||||||F",
        "OBX|4|ST|68482^MDC_ATTR_ALARM_STATE^MDC|1.1.1.150456.4|active||||||F",
        "OBX|5|ST|68483^MDC_ATTR_ALARM_INACTIVATION_STATE^MDC|1.1.1.150456.5|enabled||||||F",
    ]) + "\r"


def missing_pid(cid):
    # PV1 present without PID: ORU_R01_PATIENT requires PID -> invalid
    segs = pcd01(cid).split("\r")
    return "\r".join(s for s in segs if not s.startswith("PID"))


def obx_before_obr(cid):
    segs = [s for s in pcd01(cid).split("\r") if s]
    obr = segs.pop(3)
    segs.insert(4, obr)  # MSH PID PV1 OBX OBR OBX
    return "\r".join(segs) + "\r"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


async def send(reader, writer, text, timeout=5.0):
    writer.writemessage(hl7.parse(text))
    await writer.drain()
    ack = await asyncio.wait_for(reader.readmessage(), timeout)
    return ack


def msa(ack):
    seg = ack.segment("MSA")
    return str(seg(1)), str(seg(2)), (str(seg(3)) if len(seg) > 3 else "")


async def run(port, policy_path):
    results = {}
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    cases = [
        ("a", "PCD01-0001", pcd01("PCD01-0001"), "AA"),
        ("b", "PCD04-0001", pcd04("PCD04-0001"), "AA"),
        ("c", "REJECT-0001", pcd01("REJECT-0001"), "AR"),
        ("d", "BAD-0001", missing_pid("BAD-0001"), "AE"),
        ("e", "BAD-0002", obx_before_obr("BAD-0002"), "AE"),
    ]
    for name, cid, text, want in cases:
        ack = await send(reader, writer, text)
        code, ctl, txt = msa(ack)
        print("case %s %-12s -> %s %s %s" % (name, cid, code, ctl, txt))
        if code != want or ctl != cid:
            fail("case %s: got MSA %s/%s, want %s/%s (%s)" % (name, code, ctl, want, cid, txt))
        if code == "AR" and "not today" not in txt:
            fail("case %s: reason missing from MSA-3: %r" % (name, txt))
        results[cid] = (text, code)

    # the policy file is re-read for every message
    with open(policy_path, "w") as f:
        json.dump({"error_containing": {"MDC_PULS_OXIM_PULS_RATE": "pulse rate refused"},
                   "silent": ["SILENT-0001"]}, f)
    ack = await send(reader, writer, pcd01("PCD01-0002"))
    code, ctl, txt = msa(ack)
    print("case f %-12s -> %s %s %s" % ("PCD01-0002", code, ctl, txt))
    if code != "AE" or "pulse rate refused" not in txt:
        fail("policy change not honoured: %s %s" % (code, txt))
    results["PCD01-0002"] = (pcd01("PCD01-0002"), "AE")
    writer.close()

    # silent: logged, never answered (second connection)
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        await send(reader, writer, pcd04("SILENT-0001"), timeout=1.0)
        fail("silent message was answered")
    except asyncio.TimeoutError:
        print("case g %-12s -> (no answer, as configured)" % "SILENT-0001")
    writer.close()
    results["SILENT-0001"] = (pcd04("SILENT-0001"), None)

    # garbage without MSH: logged, connection closed, receiver survives
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    writer.writeblock(b"this is not HL7")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    if data:
        fail("garbage got an answer: %r" % data)
    print("case h %-12s -> connection closed" % "(no MSH)")
    writer.close()
    return results


def main():
    tmp = tempfile.mkdtemp(prefix="hl7recv-")
    log_path = os.path.join(tmp, "log.jsonl")
    policy_path = os.path.join(tmp, "policy.json")
    with open(policy_path, "w") as f:
        json.dump({"reject": {"REJECT-0001": "not today"}}, f)

    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "receiver.py"), "--port", "0",
         "--log", log_path, "--policy", policy_path, "--version", "2.6"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            fail("unexpected first line %r" % line)
        port = int(line.split()[-1])
        if port <= 0:
            fail("bad port %r" % line)
        results = asyncio.run(run(port, policy_path))

        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fail("receiver did not exit on SIGTERM")
        if rc != 0:
            fail("receiver exit status %s" % rc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    with open(log_path) as f:
        records = [json.loads(l) for l in f if l.strip()]
    by_cid = {r["control_id"]: r for r in records}
    want_valid = {"PCD01-0001": True, "PCD04-0001": True, "REJECT-0001": True,
                  "BAD-0001": False, "BAD-0002": False, "PCD01-0002": True,
                  "SILENT-0001": True}
    want_type = {"PCD04-0001": "ORU^R40^ORU_R01", "SILENT-0001": "ORU^R40^ORU_R01"}
    for cid, (text, code) in results.items():
        r = by_cid.get(cid)
        if r is None:
            fail("no log line for %s" % cid)
        for key in ("control_id", "message_type", "valid", "errors", "ack",
                    "received_at", "peer", "raw"):
            if key not in r:
                fail("log line for %s lacks %s" % (cid, key))
        if r["ack"] != code:
            fail("log ack for %s is %r, want %r" % (cid, r["ack"], code))
        if r["valid"] != want_valid[cid]:
            fail("log valid for %s is %r (errors %r)" % (cid, r["valid"], r["errors"]))
        if r["valid"] and r["errors"]:
            fail("valid message %s has errors %r" % (cid, r["errors"]))
        if not r["valid"] and not r["errors"]:
            fail("invalid message %s has no errors" % cid)
        if r["raw"] != text:
            fail("raw text for %s differs" % cid)
        if r["message_type"] != want_type.get(cid, "ORU^R01^ORU_R01"):
            fail("message_type for %s is %r" % (cid, r["message_type"]))
        if not isinstance(r["received_at"], float) or abs(r["received_at"] - time.time()) > 120:
            fail("received_at for %s is %r" % (cid, r["received_at"]))
        if not r["peer"].startswith("127.0.0.1:"):
            fail("peer for %s is %r" % (cid, r["peer"]))
        print("log %-12s valid=%-5s ack=%-4s errors=%s" % (cid, r["valid"], r["ack"], r["errors"]))
    if by_cid["PCD04-0001"].get("validated_as") != "ORU_R01":
        fail("PCD-04 not validated as ORU_R01")
    garbage = [r for r in records if r["control_id"] is None]
    if len(garbage) != 1 or garbage[0]["valid"] or garbage[0]["ack"] is not None:
        fail("garbage message not logged as expected: %r" % garbage)
    if len(records) != len(results) + 1:
        fail("expected %d log lines, got %d" % (len(results) + 1, len(records)))
    print("OK (%d messages logged)" % len(records))
    shutil.rmtree(tmp, ignore_errors=True)  # kept for inspection when a check fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
