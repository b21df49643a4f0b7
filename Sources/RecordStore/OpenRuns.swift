import Foundation
import GRDB

// What the daemon reads at start to rebuild the watcher of every open run, by run (through the
// `messages_run` and `alarms_run` indexes) rather than a device's whole history; the link each
// device was last seen on; and closing a run the daemon gave up on.

extension RecordStore {
    /// Runs still open, oldest first: for all devices, or for one.
    public func openRuns(deviceSerial: String? = nil) async throws -> [RunRow] {
        try await pool.read { db in
            let rows =
                if let deviceSerial {
                    try Row.fetchAll(
                        db, sql: "SELECT * FROM runs WHERE state = 'open' AND device_serial = ? ORDER BY id",
                        arguments: [deviceSerial])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE state = 'open' ORDER BY id")
                }
            return rows.map(Reader.run)
        }
    }

    /// A run's messages (live and from its export file) in storage order (id), through the
    /// `messages_run` index: the daemon replays them to rebuild a run's watcher.
    public func messages(runRef: Int64) async throws -> [StoredMessage] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM messages WHERE run_ref = ? ORDER BY id", arguments: [runRef])
                .map(Reader.message)
        }
    }

    /// A run's alarms that are raised or acknowledged (not cleared), oldest first.
    public func activeAlarms(runRef: Int64) async throws -> [AlarmRow] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM alarms WHERE run_ref = ? AND state <> 'cleared' ORDER BY id", arguments: [runRef]
            ).map(Reader.alarm)
        }
    }

    /// When the newest stored message of a run arrived (`received_at_unix_ms`, the daemon's wall clock; the
    /// message with the highest id), nil when the run has none. For judging staleness across a restart.
    public func lastMessageReceivedAt(runRef: Int64) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(
                db, sql: "SELECT received_at_unix_ms FROM messages WHERE run_ref = ? ORDER BY id DESC LIMIT 1",
                arguments: [runRef])
        }
    }

    /// Records that `serial` was seen on the configured link `linkName` (kept in `devices.name`).
    /// Nothing is written when the device is not stored yet (its first message creates the row; pass
    /// `linkName` to `commit` then) or when the link is unchanged. Returns whether it wrote.
    @discardableResult
    public func recordDeviceLink(serial: String, linkName: String) async throws -> Bool {
        try await pool.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT name FROM devices WHERE serial = ?", arguments: [serial]) else {
                return false
            }
            let current: String? = row["name"]
            guard current != linkName else { return false }
            try self.ensureSpace()
            return try Writer.setDeviceLink(db, serial: serial, linkName: linkName)
        }
    }

    /// The serials last seen on a configured link, most recently seen first (a link whose separator was
    /// replaced names more than one).
    public func serials(linkName: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT serial FROM devices WHERE name = ? ORDER BY last_seen_at_unix_ms DESC, serial",
                arguments: [linkName])
        }
    }

    /// Closes a run the daemon gave up on (no RUN_END came in time), in ONE transaction: applies
    /// `alarms` (normally `.cleared` steps for the run's active alarms, as `recordAlarmChanges` would),
    /// sets the run `closed` with `closed_at_unix_ms`, and adds a `run_closed_timeout` event with `reason`.
    ///
    /// A run already closed (its RUN_END or export file came first) stays as it is and gets no event; the
    /// alarm steps are still applied so that none is left active. Returns whether the run was closed
    /// by this call. Messages that arrive later for the run are still stored under it; it stays closed.
    /// Throws `runNotFound`, an inconsistent alarm step's error (nothing written), or `storageFull`.
    @discardableResult
    public func closeRunAbandoned(
        runRef: Int64, reason: String, alarms: [AlarmChange], atUnixMilliseconds at: Int64
    ) async throws -> Bool {
        try await pool.write { db in
            guard
                let run = try Row.fetchOne(
                    db, sql: "SELECT device_serial, run_id, state FROM runs WHERE id = ?", arguments: [runRef])
            else { throw RecordStoreError.runNotFound(runRef: runRef) }
            try self.ensureSpace()
            let serial: String = run["device_serial"]
            let runID: String = run["run_id"]
            _ = try self.reportingAlarmSteps(db) {
                try Writer.applyAlarmChanges(db, alarms, deviceSerial: serial, runID: runID, runRef: runRef, messageRef: nil, at: at)
            }
            try db.execute(
                sql: "UPDATE runs SET state = 'closed', closed_at_unix_ms = ? WHERE id = ? AND state = 'open'",
                arguments: [at, runRef])
            guard db.changesCount > 0 else { return false }
            try Writer.insertEvent(
                db, kind: "run_closed_timeout", deviceSerial: serial, runRef: runRef, messageRef: nil, at: at,
                deviceTimestamp: nil, detail: reason)
            return true
        }
    }
}

extension Writer {
    /// Sets the device's link name unless it already has it. Returns whether it wrote.
    @discardableResult
    static func setDeviceLink(_ db: Database, serial: String, linkName: String) throws -> Bool {
        try db.execute(
            sql: "UPDATE devices SET name = ? WHERE serial = ? AND name IS NOT ?", arguments: [linkName, serial, linkName])
        return db.changesCount > 0
    }
}
