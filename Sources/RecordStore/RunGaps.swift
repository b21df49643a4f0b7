import ApheresisCore
import Foundation
import GRDB
import Quantities
import SeparatorProtocol
import Synchronization

/// A telemetry gap as stored with its run.
public struct RunGapRow: Hashable, Sendable {
    public var id: Int64
    public var runRef: Int64
    public var gap: TelemetryGap
    public var description: String
    public var detectedAtUnixMilliseconds: Int64
    public var messageRef: Int64?
}

extension RecordStore {
    /// A run's gaps, in the order they were found.
    public func gaps(runRef: Int64) async throws -> [RunGapRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_gaps WHERE run_ref = ? ORDER BY id", arguments: [runRef]).map(GapWriter.row)
        }
    }

    /// How much of a run's telemetry is in the record: its stored messages, in the order they were
    /// stored, replayed through the live watcher's own count (so a run's watch, its record and its
    /// product agree). Nil when the run has no messages.
    ///
    /// A stored message that no longer decodes is left out, so its TICK counts as missing: the
    /// figure errs towards "incomplete". The result is cached per run until its messages change
    /// (a product list asks for every run's).
    public func telemetryCompleteness(runRef: Int64) async throws -> TelemetryCompleteness? {
        let version = try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT count(*) AS n, max(id) AS last FROM messages WHERE run_ref = ?", arguments: [runRef])
                .map { CompletenessCache.Version(count: $0["n"] ?? 0, lastMessageID: $0["last"]) }
        } ?? CompletenessCache.Version(count: 0, lastMessageID: nil)
        if let cached = completenessCache.value(runRef: runRef, version: version) { return cached }
        let stored = try await messages(runRef: runRef)
        let value = TelemetryCompleteness.replaying(stored.compactMap { try? E1394Decoder.decode($0.raw) })
        completenessCache.store(value, runRef: runRef, version: version)
        return value
    }

    /// Gaps found outside a message commit (an export file's run, replayed after ingest).
    public func recordGaps(deviceSerial: String, runID: String, gaps: [TelemetryGap], atUnixMilliseconds: Int64) async throws {
        guard !gaps.isEmpty else { return }
        try await pool.write { db in
            try self.ensureSpace()
            guard let runRef = try Writer.findRun(db, deviceSerial: deviceSerial, runID: runID) else {
                throw RecordStoreError.runNotKnown(deviceSerial: deviceSerial, runID: runID)
            }
            try GapWriter.insert(db, gaps, runRef: runRef, messageRef: nil, at: atUnixMilliseconds)
        }
    }
}

enum GapWriter {
    static func insert(_ db: Database, _ gaps: [TelemetryGap], runRef: Int64, messageRef: Int64?, at: Int64) throws {
        for gap in gaps {
            try db.execute(
                sql: """
                    INSERT INTO run_gaps (run_ref, kind, missing_count, first_missing_sequence, last_missing_sequence,
                                          run_time_before_s, run_time_after_s, tick_interval_s, description,
                                          detected_at_unix_ms, message_ref)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    runRef, gap.kind.rawValue, gap.missingCount, gap.firstMissingSequence.flatMap { Int64(exactly: $0) },
                    gap.lastMissingSequence.flatMap { Int64(exactly: $0) }, gap.runTimeBefore?.value, gap.runTimeAfter?.value,
                    gap.tickInterval?.value, gap.sentence, at, messageRef,
                ])
        }
    }

    static func row(_ row: Row) -> RunGapRow {
        let first: Int64? = row["first_missing_sequence"]
        let last: Int64? = row["last_missing_sequence"]
        let before: Double? = row["run_time_before_s"]
        let after: Double? = row["run_time_after_s"]
        let interval: Double? = row["tick_interval_s"]
        let gap = TelemetryGap(
            kind: TelemetryGap.Kind(rawValue: row["kind"]) ?? .sequence, missingCount: row["missing_count"],
            firstMissingSequence: first.map { UInt64($0) }, lastMissingSequence: last.map { UInt64($0) },
            runTimeBefore: before.map(Seconds.init), runTimeAfter: after.map(Seconds.init), tickInterval: interval.map(Seconds.init))
        return RunGapRow(
            id: row["id"], runRef: row["run_ref"], gap: gap, description: row["description"],
            detectedAtUnixMilliseconds: row["detected_at_unix_ms"], messageRef: row["message_ref"])
    }
}

/// Completeness per run, valid while the run's messages are the same (count and newest id).
final class CompletenessCache: Sendable {
    struct Version: Hashable, Sendable {
        var count: Int
        var lastMessageID: Int64?
    }

    private let entries = Mutex<[Int64: (version: Version, value: TelemetryCompleteness?)]>([:])

    func value(runRef: Int64, version: Version) -> TelemetryCompleteness?? {
        entries.withLock { all in
            guard let entry = all[runRef], entry.version == version else { return nil }
            return .some(entry.value)
        }
    }

    func store(_ value: TelemetryCompleteness?, runRef: Int64, version: Version) {
        entries.withLock { $0[runRef] = (version, value) }
    }
}
