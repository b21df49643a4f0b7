import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

/// A fresh directory per test, removed afterwards; real SQLite files, no mocks.
struct TempDirectory: ~Copyable {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("recordstore-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String = "store.sqlite") -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixture {
    static let device = DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "1.0", serialNumber: "1OPT00417")
    static let otherDevice = DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "1.0", serialNumber: "1OPT00999")
    static let start = DeviceTimestamp(year: 2026, month: 11, day: 24, hour: 9, minute: 15, second: 0)!
    static let patient = Patient(
        id: "P-1", familyName: "Doe", givenName: "Jane", birthDate: CalendarDate(year: 1980, month: 2, day: 29), sex: .female,
        heightCentimetres: 165, weightKilograms: 60.5)
    static let now: Int64 = 1_795_000_000_000

    static func order(_ runID: String) -> Order { Order(runID: runID, procedure: .cmnc, runStart: start) }

    static func runStart(_ sequence: UInt64, runID: String = "RUN-1", device: DeviceIdentity = device) -> SeparatorMessage {
        SeparatorMessage(
            sequenceNumber: sequence, device: device, timestamp: start, kind: .runStart, patient: patient, order: order(runID),
            results: [
                ResultRecord(sequence: 1, code: .totalBloodVolume, value: .number(4200), unit: "mL", timestamp: start),
                ResultRecord(sequence: 2, code: .acRatioSet, value: .number(12), unit: "{ratio}", timestamp: start),
                ResultRecord(sequence: 3, code: .acdaLot, value: .text("LOT-42"), unit: "", timestamp: start),
            ])
    }

    /// Telemetry at `minutes` of run time; includes an unknown code to check it is kept.
    static func telemetry(
        _ sequence: UInt64, minutes: Double, kind: MessageKind = .tick, runID: String = "RUN-1",
        device: DeviceIdentity = device
    ) -> SeparatorMessage {
        let t = start.adding(seconds: Int64(minutes * 60))
        let wb = minutes * 60
        return SeparatorMessage(
            sequenceNumber: sequence, device: device, timestamp: t, kind: kind, patient: kind == .runEnd ? patient : nil,
            order: order(runID),
            results: [
                ResultRecord(sequence: 1, code: .runTime, value: .number(minutes), unit: "min", timestamp: t),
                ResultRecord(sequence: 2, code: .inletVolume, value: .number(wb * 13 / 12), unit: "mL", timestamp: t),
                ResultRecord(sequence: 3, code: .wholeBloodVolume, value: .number(wb), unit: "mL", timestamp: t),
                ResultRecord(sequence: 4, code: .acInfusionRate, value: .number(0.9), unit: "mL/min/L", timestamp: t),
                ResultRecord(sequence: 5, code: .accessPressure, value: .number(-45.5), unit: "mm[Hg]", timestamp: t),
                ResultRecord(sequence: 6, code: "HCT_LINE", value: .number(31.5), unit: "%", timestamp: t),
            ])
    }

    static func note(
        _ sequence: UInt64, kind: MessageKind, code: String, minutes: Double, runID: String = "RUN-1"
    ) -> SeparatorMessage {
        SeparatorMessage(
            sequenceNumber: sequence, device: device, timestamp: start.adding(seconds: Int64(minutes * 60)), kind: kind,
            order: order(runID),
            comments: [CommentRecord(sequence: 1, code: code, text: "\(code) text", severity: kind == .alarm ? .alarm : .info)])
    }

    /// RUN_START, TICK 5, ALARM, TICK 10, EVENT, TICK 15, RUN_END 20 with sequence numbers from `first`.
    static func wholeRun(first: UInt64 = 1, runID: String = "RUN-1") -> [SeparatorMessage] {
        [
            runStart(first, runID: runID),
            telemetry(first + 1, minutes: 5, runID: runID),
            note(first + 2, kind: .alarm, code: "AIR_DETECTED", minutes: 7, runID: runID),
            telemetry(first + 3, minutes: 10, runID: runID),
            note(first + 4, kind: .event, code: "PAUSE", minutes: 12, runID: runID),
            telemetry(first + 5, minutes: 15, runID: runID),
            telemetry(first + 6, minutes: 20, kind: .runEnd, runID: runID),
        ]
    }
}

extension RecordStore {
    /// Commits with the message's own encoding as raw bytes, as the daemon does.
    @discardableResult
    func commit(_ m: SeparatorMessage, at: Int64 = Fixture.now, alarms: [AlarmChange] = [], quality: [String] = [])
        async throws -> CommitOutcome
    {
        try await commit(m, raw: E1394Encoder.encode(m), receivedAtUnixMilliseconds: at, sampleQuality: quality, alarms: alarms)
    }

    /// Row counts of every table, to prove that something wrote nothing.
    func tableCounts() async throws -> [String: Int] {
        let c = try await counts()
        return [
            "messages": c.messages, "samples": c.samples, "runs": c.runs, "openRuns": c.openRuns,
            "activeAlarms": c.activeAlarms, "quarantined": c.quarantined,
            "events": try await events().count, "devices": try await devices().count,
            "alarms": try await activeAlarms().count, "exportFiles": try await exportFiles().count,
        ]
    }
}

func storedRef(_ outcome: CommitOutcome) -> (message: Int64, run: Int64?)? {
    if case .stored(let m, let r, _) = outcome { (m, r) } else { nil }
}
