import Foundation
import GRDB
import SeparatorProtocol

extension RecordStore {
    /// The highest live sequence number stored for a device (nil if none).
    public func lastSequence(deviceSerial: String) async throws -> UInt64? {
        try await pool.read { db in
            try Int64.fetchOne(
                db, sql: "SELECT MAX(sequence) FROM messages WHERE device_serial = ?", arguments: [deviceSerial]
            ).map { UInt64($0) }
        }
    }

    /// Messages in storage order (id), for one device or all.
    public func messages(deviceSerial: String? = nil) async throws -> [StoredMessage] {
        try await pool.read { db in
            let rows =
                if let deviceSerial {
                    try Row.fetchAll(db, sql: "SELECT * FROM messages WHERE device_serial = ? ORDER BY id", arguments: [deviceSerial])
                } else {
                    try Row.fetchAll(db, sql: "SELECT * FROM messages ORDER BY id")
                }
            return rows.map(Reader.message)
        }
    }

    public func devices() async throws -> [DeviceRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM devices ORDER BY serial").map { row in
                DeviceRow(
                    serial: row["serial"], model: row["model"], softwareVersion: row["software_version"], name: row["name"],
                    firstSeenAtUnixMilliseconds: row["first_seen_at_unix_ms"],
                    lastSeenAtUnixMilliseconds: row["last_seen_at_unix_ms"])
            }
        }
    }

    public func runs() async throws -> [RunRow] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map(Reader.run) }
    }

    public func run(deviceSerial: String, runID: String) async throws -> RunRow? {
        try await pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM runs WHERE device_serial = ? AND run_id = ?", arguments: [deviceSerial, runID]
            ).map(Reader.run)
        }
    }

    public func run(id: Int64) async throws -> RunRow? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map(Reader.run) }
    }

    /// A run's samples in run order (run time, then device time; rows without RUN_TIME last).
    public func samples(runRef: Int64) async throws -> [SampleRow] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM samples WHERE run_ref = ?
                    ORDER BY run_time_min IS NULL, run_time_min, device_ts, id
                    """,
                arguments: [runRef]
            ).map(Reader.sample)
        }
    }

    public func alarms(runRef: Int64) async throws -> [AlarmRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM alarms WHERE run_ref = ? ORDER BY id", arguments: [runRef]).map(Reader.alarm)
        }
    }

    public func alarm(id: Int64) async throws -> AlarmRow? {
        try await pool.read { db in try Reader.alarm(db, id: id) }
    }

    /// Alarms raised or acknowledged, not cleared (all devices, all runs, and those without a run).
    public func activeAlarms() async throws -> [AlarmRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM alarms WHERE state <> 'cleared' ORDER BY id").map(Reader.alarm)
        }
    }

    public func alarmEvents(alarmRef: Int64) async throws -> [AlarmEventRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM alarm_events WHERE alarm_ref = ? ORDER BY id", arguments: [alarmRef]).map { row in
                AlarmEventRow(
                    id: row["id"], alarmRef: row["alarm_ref"],
                    kind: AlarmChange.Kind(rawValue: row["kind"]) ?? .raised, level: row["level"], value: row["value"],
                    limit: row["limit_value"], runTimeMinutes: row["run_time_min"], actor: row["actor"],
                    detail: row["detail"], messageRef: row["message_ref"], atUnixMilliseconds: row["at_unix_ms"])
            }
        }
    }

    /// Events in id order, optionally for one device and/or one run; `limit` keeps the newest N.
    public func events(deviceSerial: String? = nil, runRef: Int64? = nil, limit: Int? = nil) async throws -> [EventRow] {
        try await pool.read { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let deviceSerial {
                conditions.append("device_serial = ?")
                arguments += [deviceSerial]
            }
            if let runRef {
                conditions.append("run_ref = ?")
                arguments += [runRef]
            }
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            var sql = "SELECT * FROM events \(whereClause) ORDER BY id DESC"
            if let limit {
                sql += " LIMIT ?"
                arguments += [limit]
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM (\(sql)) ORDER BY id", arguments: arguments).map { row in
                EventRow(
                    id: row["id"], deviceSerial: row["device_serial"], runRef: row["run_ref"], messageRef: row["message_ref"],
                    kind: row["kind"], atUnixMilliseconds: row["at_unix_ms"],
                    deviceTimestamp: Encoding.deviceTimestamp(row["device_ts"]), detail: row["detail"])
            }
        }
    }

    public func quarantined() async throws -> [QuarantineRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM quarantine ORDER BY id").map { row in
                QuarantineRow(
                    id: row["id"], deviceSerial: row["device_serial"], receivedAtUnixMilliseconds: row["received_at_unix_ms"],
                    source: MessageSource(rawValue: row["source"]) ?? .live, reason: row["reason"],
                    raw: Reader.bytes(row["raw"]))
            }
        }
    }

    public func exportFiles() async throws -> [ExportFileRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM export_files ORDER BY id").map { row in
                ExportFileRow(
                    id: row["id"], path: row["path"], contentSHA256: row["content_sha256"], deviceSerial: row["device_serial"],
                    runID: row["run_id"], ingestedAtUnixMilliseconds: row["ingested_at_unix_ms"],
                    outcome: ExportFileRow.Outcome(rawValue: row["outcome"]) ?? .malformed, detail: row["detail"])
            }
        }
    }

    /// A small write transaction proving the writer can commit. Returns what
    /// the daemon's status line shows (open runs, active alarms): cheap
    /// queries, unlike whole-table counts.
    ///
    /// Refused with `RecordStoreError.storageFull` while the disk is below the reserve (so an idle store
    /// also reports a full disk); `usingReserve: true` skips that check (the row is rewritten in place:
    /// it grows only the WAL, by a page, until the next checkpoint).
    public func heartbeat(atUnixMilliseconds: Int64, usingReserve: Bool = false) async throws -> (openRuns: Int, activeAlarms: Int) {
        try await pool.write { db in
            try self.ensureSpace(usingReserve: usingReserve)
            try db.execute(
                sql: "INSERT INTO heartbeat (id, at_unix_ms) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at_unix_ms = excluded.at_unix_ms",
                arguments: [atUnixMilliseconds])
            let openRuns = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM runs WHERE state = 'open'") ?? 0
            let activeAlarms = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM alarms WHERE state <> 'cleared'") ?? 0
            return (openRuns, activeAlarms)
        }
    }

    public func counts() async throws -> StoreCounts {
        try await pool.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT COUNT(*) FROM messages) AS messages, (SELECT COUNT(*) FROM samples) AS samples,
                        (SELECT COUNT(*) FROM runs) AS runs, (SELECT COUNT(*) FROM runs WHERE state = 'open') AS open_runs,
                        (SELECT COUNT(*) FROM alarms WHERE state <> 'cleared') AS active_alarms,
                        (SELECT COUNT(*) FROM quarantine) AS quarantined
                    """)!
            return StoreCounts(
                messages: row["messages"], samples: row["samples"], runs: row["runs"], openRuns: row["open_runs"],
                activeAlarms: row["active_alarms"], quarantined: row["quarantined"])
        }
    }
}

/// Row-to-value mapping shared by reads and writes.
enum Reader {
    static func bytes(_ data: Data?) -> [UInt8] { data.map { [UInt8]($0) } ?? [] }

    static func message(_ row: Row) -> StoredMessage {
        let sequence: Int64? = row["sequence"]
        return StoredMessage(
            id: row["id"], deviceSerial: row["device_serial"], sequence: sequence.map { UInt64($0) }, kind: row["kind"],
            runRef: row["run_ref"], deviceTimestamp: Encoding.deviceTimestamp(row["device_ts"]),
            receivedAtUnixMilliseconds: row["received_at_unix_ms"], receivedMonotonicNanoseconds: row["received_monotonic_ns"],
            source: MessageSource(rawValue: row["source"]) ?? .live, exportFileRef: row["export_file_ref"],
            raw: bytes(row["raw"]))
    }

    static func run(_ row: Row) -> RunRow {
        RunRow(
            id: row["id"], deviceSerial: row["device_serial"], runID: row["run_id"], procedure: row["procedure"],
            patientID: row["patient_id"], patientFamilyName: row["patient_family"], patientGivenName: row["patient_given"],
            birthDate: row["birth_date"], sex: row["sex"], heightCentimetres: row["height_cm"], weightKilograms: row["weight_kg"],
            startDeviceTimestamp: Encoding.deviceTimestamp(row["start_device_ts"]),
            endDeviceTimestamp: Encoding.deviceTimestamp(row["end_device_ts"]),
            openedAtUnixMilliseconds: row["opened_at_unix_ms"], closedAtUnixMilliseconds: row["closed_at_unix_ms"],
            state: RunRow.State(rawValue: row["state"]) ?? .open, profileName: row["profile_name"],
            settings: Encoding.settings(row["settings"]))
    }

    static func sample(_ row: Row) -> SampleRow {
        var values: [ParameterCode: Double] = [:]
        for (code, column) in TelemetryColumns.all {
            if let v: Double = row[column] { values[code] = v }
        }
        let flags: String = row["quality_flags"] ?? ""
        var s = SampleRow(
            id: row["id"], runRef: row["run_ref"], messageRef: row["message_ref"],
            deviceTimestamp: Encoding.deviceTimestamp(row["device_ts"]),
            extraJSON: row["extra"], qualityFlags: flags.isEmpty ? [] : flags.split(separator: ",").map(String.init))
        s.values = values
        s.runTimeMinutes = values[.runTime]
        s.inletVolumeMillilitres = values[.inletVolume]
        s.wholeBloodVolumeMillilitres = values[.wholeBloodVolume]
        s.acVolumeMillilitres = values[.acVolume]
        s.acToPatientMillilitres = values[.acToPatient]
        s.collectVolumeMillilitres = values[.collectVolume]
        s.plasmaVolumeMillilitres = values[.plasmaVolume]
        s.inletFlowMillilitresPerMinute = values[.inletFlow]
        s.acFlowMillilitresPerMinute = values[.acFlow]
        s.returnFlowMillilitresPerMinute = values[.returnFlow]
        s.collectFlowMillilitresPerMinute = values[.collectFlow]
        s.acRatio = values[.acRatio]
        s.acInfusionRateMillilitresPerMinutePerLitre = values[.acInfusionRate]
        s.bloodVolumesProcessed = values[.bloodVolumesProcessed]
        s.centrifugeRPM = values[.centrifugeSpeed]
        s.accessPressureMillimetresOfMercury = values[.accessPressure]
        s.returnPressureMillimetresOfMercury = values[.returnPressure]
        return s
    }

    static func alarm(_ row: Row) -> AlarmRow {
        AlarmRow(
            id: row["id"], deviceSerial: row["device_serial"], runRef: row["run_ref"], code: row["code"], level: row["level"],
            state: AlarmRow.State(rawValue: row["state"]) ?? .raised, value: row["value"], limit: row["limit_value"],
            unit: row["unit"], message: row["message"], raisedAtUnixMilliseconds: row["raised_at_unix_ms"],
            raisedRunTimeMinutes: row["raised_run_time_min"], acknowledgedBy: row["acknowledged_by"],
            acknowledgedAtUnixMilliseconds: row["acknowledged_at_unix_ms"], clearedAtUnixMilliseconds: row["cleared_at_unix_ms"],
            clearReason: row["clear_reason"])
    }

    static func alarm(_ db: Database, id: Int64) throws -> AlarmRow? {
        try Row.fetchOne(db, sql: "SELECT * FROM alarms WHERE id = ?", arguments: [id]).map(alarm)
    }
}
