import Logging
import Testing

@testable import SystemdSupport

@Suite struct JournalFieldNames {
    @Test(arguments: [
        ("device_serial", "DEVICE_SERIAL"),
        ("run_id", "RUN_ID"),
        ("alarm_code", "ALARM_CODE"),
        ("device.serial", "DEVICE_SERIAL"),
        ("Alarm-Code", "ALARM_CODE"),
        ("_PID", "PID"),
        ("__cursor", "CURSOR"),
        ("2nd_try", "F_2ND_TRY"),
        ("tbv ml", "TBV_ML"),
        ("débit", "D_BIT"),
        ("message", "META_MESSAGE"),
        ("priority", "META_PRIORITY"),
    ])
    func sanitised(key: String, field: String) {
        #expect(JournalField.name(forMetadataKey: key) == field)
    }

    @Test func nothingUsableIsDropped() {
        #expect(JournalField.name(forMetadataKey: "") == nil)
        #expect(JournalField.name(forMetadataKey: "___") == nil)
    }

    @Test func everyNameIsValid() {
        for key in ["x", "_9", "9", "a-b-c", String(repeating: "k", count: 100), "ü", "a b\nc"] {
            guard let name = JournalField.name(forMetadataKey: key) else { continue }
            #expect(name.utf8.count <= 64)
            #expect(name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 })
            #expect(name.first != "_")
            #expect(!(name.first?.isNumber ?? true))
        }
    }

    @Test func recordFields() {
        let fields = JournalLogHandler.fields(
            level: .warning, message: "ratio out of range", identifier: "apheresisd", label: "apheresisd.watch",
            file: "Sources/X.swift", function: "check()", line: 42,
            metadata: ["device_serial": "1OPT00417", "run_id": .stringConvertible(17)])
        #expect(fields.map(\.0) == [
            "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER",
            "DEVICE_SERIAL", "RUN_ID",
        ])
        #expect(fields.map(\.1) == [
            "ratio out of range", "4", "apheresisd", "Sources/X.swift", "42", "check()", "apheresisd.watch",
            "1OPT00417", "17",
        ])
    }

    @Test func priorities() {
        #expect(Logger.Level.allCases.map(JournalLogHandler.priority) == [7, 7, 6, 5, 4, 3, 2])
    }
}

@Suite struct LogDestination {
    let stderr = LogSetup.FileIdentity(device: 64769, inode: 123456)

    @Test func journalStreamMatchingStderr() {
        #expect(LogSetup.destination(environment: ["JOURNAL_STREAM": "64769:123456"], stderrIdentity: stderr, journalSocketExists: false) == .journal)
    }

    @Test func journalStreamOfAnotherFile() {
        // Inherited by a child whose stderr was redirected: not ours.
        #expect(LogSetup.destination(environment: ["JOURNAL_STREAM": "64769:999"], stderrIdentity: stderr, journalSocketExists: false) == .stderr)
        #expect(LogSetup.destination(environment: ["JOURNAL_STREAM": "64769:123456"], stderrIdentity: nil, journalSocketExists: false) == .stderr)
        #expect(LogSetup.destination(environment: ["JOURNAL_STREAM": "garbage"], stderrIdentity: stderr, journalSocketExists: false) == .stderr)
    }

    @Test func invocationIDNeedsJournalSocket() {
        let env = ["INVOCATION_ID": "0d5a6c7e1b2f4c3d9e8f7a6b5c4d3e2f"]
        #expect(LogSetup.destination(environment: env, stderrIdentity: stderr, journalSocketExists: true) == .journal)
        #expect(LogSetup.destination(environment: env, stderrIdentity: stderr, journalSocketExists: false) == .stderr)
        #expect(LogSetup.destination(environment: ["INVOCATION_ID": ""], stderrIdentity: stderr, journalSocketExists: true) == .stderr)
    }

    @Test func byHand() {
        #expect(LogSetup.destination(environment: ["HOME": "/root"], stderrIdentity: stderr, journalSocketExists: true) == .stderr)
    }

    @Test func parsesJournalStream() {
        #expect(LogSetup.parseJournalStream("8:17") == LogSetup.FileIdentity(device: 8, inode: 17))
        #expect(LogSetup.parseJournalStream("8:") == nil)
        #expect(LogSetup.parseJournalStream("8:17:1") == nil)
    }

    @Test func stderrHasAnIdentity() {
        #expect(LogSetup.stderrIdentity() != nil)
    }
}

@Suite struct StderrLines {
    let time = WallClock.Instant(seconds: 1_795_601_700, nanoseconds: 123_456_789)  // 2026-11-25T10:15:00.123Z

    @Test func format() {
        let line = StderrLogHandler.line(
            time: time, level: .warning, identifier: "apheresisd", message: "ratio out of range",
            metadata: ["run_id": "17", "device_serial": "1OPT00417"])
        #expect(line == "2026-11-25T10:15:00.123Z warning apheresisd: ratio out of range device_serial=1OPT00417 run_id=17")
    }

    @Test func oneLineWithQuotedValues() {
        let line = StderrLogHandler.line(
            time: time, level: .info, identifier: "apheresisd", message: "first\nsecond",
            metadata: ["status": "link up", "empty": ""])
        #expect(line == "2026-11-25T10:15:00.123Z info apheresisd: first\\nsecond empty=\"\" status=\"link up\"")
    }

    @Test func timestampPadding() {
        #expect(WallClock.Instant(seconds: 0, nanoseconds: 5_000_000).iso8601 == "1970-01-01T00:00:00.005Z")
    }

    @Test func statusIsOneLine() {
        #expect(SystemdNotifier.message("READY=1", status: "a\nb\r\nc") == "READY=1\nSTATUS=a b c")
        #expect(SystemdNotifier.message(nil, status: "x") == "STATUS=x")
    }
}

@Suite struct JournalSending {
    /// Without journald's socket sd_journal_sendv still returns 0 ("fail
    /// silently"): the handler must not take that as delivered, or the record
    /// would be lost instead of going to stderr.
    @Test func notDeliveredWithoutJournald() {
        #expect(JournalLogHandler.send([("MESSAGE", "x"), ("PRIORITY", "6")]) == 0 || !LogSetup.journalSocketExists())
        #expect(!JournalLogHandler.deliver([("MESSAGE", "x")], journalSocketExists: false))
    }
}
