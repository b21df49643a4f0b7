import Foundation
import GRDB

/// One change of presets for one run (schema v3): the keys and values as the client sent them, in
/// each key's unit, with who changed them and why.
public struct RunPresetChangeRow: Hashable, Sendable {
    public var id: Int64
    public var runRef: Int64
    public var changedAtUnixMilliseconds: Int64
    public var changedBy: String
    public var reason: String
    public var changes: [String: Double]
}

/// A change refused by the store itself: the run is not there or no longer open.
public struct RunNotOpen: Error, Sendable, CustomStringConvertible {
    public var runRef: Int64
    public var description: String { "run \(runRef) is not open: presets change only while a run is watched" }
}

extension RecordStore {
    /// Records a preset change and its audit entry in one transaction. Refused unless the run is open.
    public func recordPresetChange(
        runRef: Int64, changes: [String: Double], reason: String, by actor: String, atUnixMilliseconds at: Int64
    ) async throws -> RunPresetChangeRow {
        let json = try Self.changesJSON(changes)
        return try await pool.write { db in
            guard let state = try String.fetchOne(db, sql: "SELECT state FROM runs WHERE id = ?", arguments: [runRef]),
                state == RunRow.State.open.rawValue
            else { throw RunNotOpen(runRef: runRef) }
            try db.execute(
                sql: """
                    INSERT INTO run_preset_changes (run_ref, changed_at_unix_ms, changed_by, reason, changes_json)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [runRef, at, actor, reason, json])
            let id = db.lastInsertedRowID
            try Audit.record(db, table: "run_preset_changes", id: id, action: "run.presets.change", actor: actor, at: at, reason: reason)
            return RunPresetChangeRow(
                id: id, runRef: runRef, changedAtUnixMilliseconds: at, changedBy: actor, reason: reason, changes: changes)
        }
    }

    /// A run's preset changes, oldest first.
    public func presetChanges(runRef: Int64) async throws -> [RunPresetChangeRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_preset_changes WHERE run_ref = ? ORDER BY id", arguments: [runRef]).map { row in
                let json: String = row["changes_json"]
                let id: Int64 = row["id"]
                let changes: [String: Double]
                do {
                    changes = try JSONDecoder().decode([String: Double].self, from: Data(json.utf8))
                } catch {
                    throw RecordStoreError.corrupt("run_preset_changes row \(id): changes_json is not an object of numbers (\(error))")
                }
                return RunPresetChangeRow(
                    id: row["id"], runRef: row["run_ref"], changedAtUnixMilliseconds: row["changed_at_unix_ms"],
                    changedBy: row["changed_by"], reason: row["reason"], changes: changes)
            }
        }
    }

    static func changesJSON(_ changes: [String: Double]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(changes), as: UTF8.self)
    }
}
