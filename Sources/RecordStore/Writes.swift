import ApheresisCore
import Foundation
import GRDB
import SeparatorProtocol

extension RecordStore {
    /// Stores one live message and everything derived from it in ONE transaction, and returns only once
    /// it is durable: the daemon ACKs the message's last frame after this returns, never before.
    /// A crash at any point leaves either nothing of the message or all of it.
    ///
    /// - `raw`: the exact message text (records H to L) as received.
    /// - `sampleQuality`: flags for the TICK/RUN_END sample (ignored for other kinds).
    /// - `alarms`: the daemon's alarm steps caused by this message; an inconsistent step
    ///   (see `RecordStoreError`) rolls the whole commit back, so the caller should retry without it.
    /// - `events`: daemon-side events to keep with the message.
    /// - `linkName`: the configured link the message came in on; kept as the device's `name` (in the same
    ///   transaction, written only when it changed), so that `serials(linkName:)` finds the device after a restart.
    ///
    /// Throws `RecordStoreError.storageFull` (nothing written) when less than `options.reserveBytes` is free
    /// on the store's volume; a duplicate is still recognised then (it needs no space).
    public func commit(
        _ message: SeparatorMessage, raw: [UInt8], receivedAtUnixMilliseconds: Int64, monotonic: Duration? = nil,
        profileName: String? = nil, sampleQuality: [String] = [], alarms: [AlarmChange] = [], events: [EventNote] = [],
        gaps: [TelemetryGap] = [], linkName: String? = nil, observation: ObservationFigures? = nil
    ) async throws -> CommitOutcome {
        guard let sequence = Int64(exactly: message.sequenceNumber) else {
            throw RecordStoreError.sequenceOutOfRange(message.sequenceNumber)
        }
        let at = receivedAtUnixMilliseconds
        return try await pool.write { db in
            let serial = message.device.serialNumber
            if let existing = try Row.fetchOne(
                db, sql: "SELECT id, raw FROM messages WHERE device_serial = ? AND sequence = ?", arguments: [serial, sequence])
            {
                let storedRaw: Data = existing["raw"] ?? Data()
                if storedRaw.elementsEqual(raw) { return .duplicate }
                try self.ensureSpace()
                let id: Int64 = existing["id"]
                let ref = try Writer.quarantine(
                    db, raw: raw,
                    reason: "sequence \(sequence) of \(serial) is already stored as message \(id) with different content",
                    deviceSerial: serial, source: .live, at: at)
                return .conflict(quarantineRef: ref)
            }
            try self.ensureSpace()
            try Writer.upsertDevice(db, message.device, at: at)
            if let linkName { try Writer.setDeviceLink(db, serial: serial, linkName: linkName) }
            var newSamples = 0
            let (messageRef, runRef) = try Writer.apply(
                db, message, raw: raw, sequence: sequence, source: .live, exportFileRef: nil, at: at,
                monotonicNanoseconds: monotonic.map(Encoding.nanoseconds), profileName: profileName,
                sampleQuality: sampleQuality, newSamples: &newSamples)
            let alarmRefs = try self.reportingAlarmSteps(db) {
                try Writer.applyAlarmChanges(
                    db, alarms, deviceSerial: serial, runID: message.order.runID, runRef: runRef, messageRef: messageRef, at: at)
            }
            if message.kind == .tick || message.kind == .runEnd {
                try self.queueObservation(
                    db, runRef: runRef, messageRef: messageRef, figures: observation, runEnded: message.kind == .runEnd, at: at)
            }
            try GapWriter.insert(db, gaps, runRef: runRef, messageRef: messageRef, at: at)
            for event in events {
                try Writer.insertEvent(
                    db, kind: event.kind, deviceSerial: serial, runRef: runRef, messageRef: messageRef, at: at,
                    deviceTimestamp: nil, detail: event.detail)
            }
            return .stored(messageRef: messageRef, runRef: runRef, alarmRefs: alarmRefs)
        }
    }

    /// Alarm steps outside a message commit (stale data, link lost). `runID` names the run when
    /// known; a run the store has never seen is recorded as "no run". Returns each change's alarm id, in order.
    @discardableResult
    public func recordAlarmChanges(
        deviceSerial: String, runID: String?, changes: [AlarmChange], atUnixMilliseconds: Int64
    ) async throws -> [Int64] {
        try await pool.write { db in
            try self.ensureSpace()
            let runRef = try runID.flatMap { try Writer.findRun(db, deviceSerial: deviceSerial, runID: $0) }
            return try self.reportingAlarmSteps(db) {
                try Writer.applyAlarmChanges(
                    db, changes, deviceSerial: deviceSerial, runID: runID, runRef: runRef, messageRef: nil,
                    at: atUnixMilliseconds)
            }
        }
    }

    /// Acknowledges an active alarm by id (operator action). Returns the alarm after the change; nil when
    /// there is no such alarm or it is cleared. Acknowledging an acknowledged alarm changes nothing.
    public func acknowledgeAlarm(id: Int64, by: String, atUnixMilliseconds: Int64) async throws -> AlarmRow? {
        try await pool.write { db in
            try self.reportingAlarmSteps(db) { try Writer.acknowledge(db, alarmID: id, by: by, at: atUnixMilliseconds).alarm }
        }
    }

    /// Keeps input whose frames were intact but whose records did not parse, byte for byte, with the reason.
    @discardableResult
    public func quarantine(
        raw: [UInt8], reason: String, deviceSerial: String?, source: MessageSource = .live, atUnixMilliseconds: Int64
    ) async throws -> Int64 {
        try await pool.write { db in
            try self.ensureSpace()
            return try Writer.quarantine(db, raw: raw, reason: reason, deviceSerial: deviceSerial, source: source, at: atUnixMilliseconds)
        }
    }

    /// A daemon or link event: link_up, link_down, stale, reconnect, daemon_start, daemon_stop, ...
    /// `runID` is resolved to a run when the store knows it (with `deviceSerial`); an unknown run is
    /// recorded as "no run".
    ///
    /// `usingReserve: true` skips the disk-reserve check: only for the few rows that tell of a store
    /// failure and its recovery ("store_failed", "store_recovered"), which must be kept precisely when the
    /// disk is nearly full. One event row is a few hundred bytes of the reserve.
    @discardableResult
    public func recordEvent(
        kind: String, deviceSerial: String?, runID: String? = nil, detail: String? = nil, atUnixMilliseconds: Int64,
        usingReserve: Bool = false
    ) async throws -> Int64 {
        try await pool.write { db in
            try self.ensureSpace(usingReserve: usingReserve)
            var runRef: Int64?
            if let deviceSerial, let runID { runRef = try Writer.findRun(db, deviceSerial: deviceSerial, runID: runID) }
            return try Writer.insertEvent(
                db, kind: kind, deviceSerial: deviceSerial, runRef: runRef, messageRef: nil, at: atUnixMilliseconds,
                deviceTimestamp: nil, detail: detail)
        }
    }

    /// Ingests a decoded export file in ONE transaction, through the same path as live messages: the file's
    /// messages are stored (sequence NULL, source 'export'), the run is the live run's row when it was seen
    /// live, samples already known are skipped by their unique key, and the run ends closed.
    /// `contentSHA256` is the file's hex SHA-256, computed by the caller.
    public func ingestExport(
        _ export: ExportRun, path: String, contentSHA256: String, atUnixMilliseconds: Int64
    ) async throws -> ExportOutcome {
        let at = atUnixMilliseconds
        let serial = export.device.serialNumber
        let messages = export.messages()
        return try await pool.write { db in
            try self.ensureSpace()
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM export_files WHERE content_sha256 = ? AND outcome = 'ingested'",
                arguments: [contentSHA256]) == true
            {
                try Writer.insertExportFile(
                    db, path: path, sha: contentSHA256, serial: serial, runID: export.runID, at: at, outcome: "duplicate",
                    detail: "content already ingested")
                return .duplicateFile
            }
            let fileRef = try Writer.insertExportFile(
                db, path: path, sha: contentSHA256, serial: serial, runID: export.runID, at: at, outcome: "ingested",
                detail: "\(export.rows.count) rows, \(export.notes.count) notes")
            try Writer.upsertDevice(db, export.device, at: at)
            var newSamples = 0
            var runRef: Int64?
            for message in messages {
                let (_, ref) = try Writer.apply(
                    db, message, raw: E1394Encoder.encode(message), sequence: nil, source: .export, exportFileRef: fileRef,
                    at: at, monotonicNanoseconds: nil, profileName: nil, sampleQuality: [], newSamples: &newSamples)
                runRef = ref
            }
            // A file always yields at least its RUN_START, so the run exists; close it even if RUN_END was absent.
            let run = try runRef ?? Writer.resolveRun(db, messages[0], at: at, profileName: nil, source: .export)
            try Writer.closeRun(db, runRef: run, deviceSerial: serial, endTimestamp: nil, messageRef: nil, at: at)
            return .ingested(runRef: run, newSamples: newSamples)
        }
    }

    /// Logs an export file that could not be decoded. When `raw` is given the file's bytes are also
    /// quarantined, so the input is kept even if the file itself is later lost.
    public func recordMalformedExport(
        path: String, contentSHA256: String, reason: String, raw: [UInt8]? = nil, deviceSerial: String? = nil,
        atUnixMilliseconds: Int64
    ) async throws {
        try await pool.write { db in
            try self.ensureSpace()
            try Writer.insertExportFile(
                db, path: path, sha: contentSHA256, serial: deviceSerial, runID: nil, at: atUnixMilliseconds,
                outcome: "malformed", detail: reason)
            if let raw {
                try Writer.quarantine(
                    db, raw: raw, reason: "export file \(path): \(reason)", deviceSerial: deviceSerial, source: .export,
                    at: atUnixMilliseconds)
            }
        }
    }
}

/// The SQL of the writes; every function runs inside the caller's transaction.
enum Writer {
    static func upsertDevice(_ db: Database, _ device: DeviceIdentity, at: Int64) throws {
        let old = try Row.fetchOne(
            db, sql: "SELECT model, software_version FROM devices WHERE serial = ?", arguments: [device.serialNumber])
        if let old {
            let model: String = old["model"]
            let software: String = old["software_version"]
            if model != device.model || software != device.softwareVersion {
                // Software updates matter for the record; keep the change as an event.
                try insertEvent(
                    db, kind: "device_changed", deviceSerial: device.serialNumber, runRef: nil, messageRef: nil, at: at,
                    deviceTimestamp: nil,
                    detail: "\(model) \(software) -> \(device.model) \(device.softwareVersion)")
            }
        }
        try db.execute(
            sql: """
                INSERT INTO devices (serial, model, software_version, first_seen_at_unix_ms, last_seen_at_unix_ms)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (serial) DO UPDATE SET
                    model = excluded.model, software_version = excluded.software_version,
                    last_seen_at_unix_ms = MAX(last_seen_at_unix_ms, excluded.last_seen_at_unix_ms)
                """,
            arguments: [device.serialNumber, device.model, device.softwareVersion, at, at])
    }

    static func findRun(_ db: Database, deviceSerial: String, runID: String) throws -> Int64? {
        try Int64.fetchOne(
            db, sql: "SELECT id FROM runs WHERE device_serial = ? AND run_id = ?", arguments: [deviceSerial, runID])
    }

    /// The run a message belongs to, created with what the message tells when unknown (e.g. the daemon
    /// started mid-run and sees a TICK first).
    static func resolveRun(
        _ db: Database, _ message: SeparatorMessage, at: Int64, profileName: String?, source: MessageSource
    ) throws -> Int64 {
        let serial = message.device.serialNumber
        if let id = try findRun(db, deviceSerial: serial, runID: message.order.runID) { return id }
        try db.execute(
            sql: """
                INSERT INTO runs (device_serial, run_id, procedure, start_device_ts, opened_at_unix_ms, state, profile_name)
                VALUES (?, ?, ?, ?, ?, 'open', ?)
                """,
            arguments: [
                serial, message.order.runID, message.order.procedure.rawValue, message.order.runStart.map(Encoding.text), at,
                profileName,
            ])
        let id = db.lastInsertedRowID
        // The run's facts go into the audit trail with the row; a RUN_START records them after filling them in.
        if message.kind != .runStart { try Audit.recordRunFacts(db, runRef: id, at: at) }
        if message.kind != .runStart {
            try insertEvent(
                db, kind: "run_opened_mid_run", deviceSerial: serial, runRef: id, messageRef: nil, at: at,
                deviceTimestamp: message.timestamp,
                detail: "first message seen: \(message.kind.rawValue) (\(source.rawValue)); RUN_START not seen")
        }
        return id
    }

    /// Stores one message (live or from a file) and what it implies. Returns (message id, run id).
    /// `newSamples` counts samples actually inserted (export ingest).
    static func apply(
        _ db: Database, _ message: SeparatorMessage, raw: [UInt8], sequence: Int64?, source: MessageSource,
        exportFileRef: Int64?, at: Int64, monotonicNanoseconds: Int64?, profileName: String?, sampleQuality: [String],
        newSamples: inout Int
    ) throws -> (Int64, Int64) {
        let serial = message.device.serialNumber
        let runRef = try resolveRun(db, message, at: at, profileName: profileName, source: source)
        try db.execute(
            sql: """
                INSERT INTO messages (device_serial, sequence, kind, run_ref, device_ts, received_at_unix_ms,
                    received_monotonic_ns, source, export_file_ref, raw)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                serial, sequence, message.kind.rawValue, runRef, Encoding.text(message.timestamp), at, monotonicNanoseconds,
                source.rawValue, exportFileRef, Data(raw),
            ])
        let messageRef = db.lastInsertedRowID

        switch message.kind {
        case .runStart:
            try fillRun(db, runRef: runRef, message, profileName: profileName)
            let hadSettings = try Bool.fetchOne(db, sql: "SELECT settings IS NOT NULL FROM runs WHERE id = ?", arguments: [runRef]) ?? false
            if !hadSettings {
                try db.execute(
                    sql: "UPDATE runs SET settings = ? WHERE id = ?",
                    arguments: [try Encoding.settingsJSON(message.results), runRef])
                try insertEvent(
                    db, kind: "run_start", deviceSerial: serial, runRef: runRef, messageRef: messageRef, at: at,
                    deviceTimestamp: message.timestamp, detail: source.rawValue)
            }
            try Audit.recordRunFacts(db, runRef: runRef, at: at)
        case .tick:
            newSamples += try insertSample(db, message, runRef: runRef, messageRef: messageRef, quality: sampleQuality)
        case .runEnd:
            newSamples += try insertSample(db, message, runRef: runRef, messageRef: messageRef, quality: sampleQuality)
            try fillRun(db, runRef: runRef, message, profileName: profileName)
            try Audit.recordRunFacts(db, runRef: runRef, at: at)
            try closeRun(
                db, runRef: runRef, deviceSerial: serial, endTimestamp: message.timestamp, messageRef: messageRef, at: at)
        case .alarm, .event:
            let kind = message.kind == .alarm ? "device_alarm" : "device_event"
            for comment in message.comments {
                let detail = "\(comment.code)^\(comment.text)^\(comment.severity.rawValue)"
                // A file repeats what the live link already brought: keep one event per device note.
                if source == .export,
                    try Bool.fetchOne(
                        db, sql: "SELECT 1 FROM events WHERE run_ref = ? AND kind = ? AND device_ts = ? AND detail = ?",
                        arguments: [runRef, kind, Encoding.text(message.timestamp), detail]) == true
                {
                    continue
                }
                try insertEvent(
                    db, kind: kind, deviceSerial: serial, runRef: runRef, messageRef: messageRef, at: at,
                    deviceTimestamp: message.timestamp, detail: detail)
            }
        }
        return (messageRef, runRef)
    }

    /// Fills run fields still unknown (a run first seen through a TICK, or live data completed by its file);
    /// never overwrites what is already recorded.
    static func fillRun(_ db: Database, runRef: Int64, _ message: SeparatorMessage, profileName: String?) throws {
        let p = message.patient
        try db.execute(
            sql: """
                UPDATE runs SET
                    patient_id = COALESCE(patient_id, ?), patient_family = COALESCE(patient_family, ?),
                    patient_given = COALESCE(patient_given, ?), birth_date = COALESCE(birth_date, ?),
                    sex = COALESCE(sex, ?), height_cm = COALESCE(height_cm, ?), weight_kg = COALESCE(weight_kg, ?),
                    start_device_ts = COALESCE(start_device_ts, ?), profile_name = COALESCE(profile_name, ?)
                WHERE id = ?
                """,
            arguments: [
                p?.id, p?.familyName, p?.givenName, p?.birthDate?.wire, p?.sex.rawValue, p?.heightCentimetres,
                p?.weightKilograms, message.order.runStart.map(Encoding.text), profileName, runRef,
            ])
    }

    static func closeRun(
        _ db: Database, runRef: Int64, deviceSerial: String, endTimestamp: DeviceTimestamp?, messageRef: Int64?, at: Int64
    ) throws {
        try db.execute(
            sql: "UPDATE runs SET end_device_ts = COALESCE(end_device_ts, ?) WHERE id = ?",
            arguments: [endTimestamp.map(Encoding.text), runRef])
        try db.execute(
            sql: "UPDATE runs SET state = 'closed', closed_at_unix_ms = ? WHERE id = ? AND state = 'open'",
            arguments: [at, runRef])
        if db.changesCount > 0 {
            try insertEvent(
                db, kind: "run_end", deviceSerial: deviceSerial, runRef: runRef, messageRef: messageRef, at: at,
                deviceTimestamp: endTimestamp, detail: nil)
        }
    }

    /// INSERT OR IGNORE on (run, run time, device time): a row the run already has is skipped. Returns 1 or 0.
    static func insertSample(
        _ db: Database, _ message: SeparatorMessage, runRef: Int64, messageRef: Int64, quality: [String]
    ) throws -> Int {
        var columns: [String: Double] = [:]
        var extra: [ResultRecord] = []
        for result in message.results {
            if let column = TelemetryColumns.byCode[result.code], let number = result.value.number,
                result.unit == result.code.definition?.unit, columns[column] == nil
            {
                columns[column] = number
            } else {
                // Unknown code, text value, a repeated code or an unexpected unit: kept, not forced into a column.
                extra.append(result)
            }
        }
        let names = TelemetryColumns.all.map(\.column)
        var arguments: StatementArguments = [runRef, messageRef, Encoding.text(message.timestamp)]
        for name in names { arguments += [columns[name]] }
        arguments += [try Encoding.extraJSON(extra), Encoding.flags(quality)]
        let placeholders = Array(repeating: "?", count: names.count + 5).joined(separator: ", ")
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO samples (run_ref, message_ref, device_ts, \(names.joined(separator: ", ")), extra, quality_flags)
                VALUES (\(placeholders))
                """,
            arguments: arguments)
        return db.changesCount
    }

    @discardableResult
    static func insertEvent(
        _ db: Database, kind: String, deviceSerial: String?, runRef: Int64?, messageRef: Int64?, at: Int64,
        deviceTimestamp: DeviceTimestamp?, detail: String?
    ) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO events (device_serial, run_ref, message_ref, kind, at_unix_ms, device_ts, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [deviceSerial, runRef, messageRef, kind, at, deviceTimestamp.map(Encoding.text), detail])
        return db.lastInsertedRowID
    }

    @discardableResult
    static func quarantine(
        _ db: Database, raw: [UInt8], reason: String, deviceSerial: String?, source: MessageSource, at: Int64
    ) throws -> Int64 {
        try db.execute(
            sql: "INSERT INTO quarantine (device_serial, received_at_unix_ms, source, reason, raw) VALUES (?, ?, ?, ?, ?)",
            arguments: [deviceSerial, at, source.rawValue, reason, Data(raw)])
        return db.lastInsertedRowID
    }

    @discardableResult
    static func insertExportFile(
        _ db: Database, path: String, sha: String, serial: String?, runID: String?, at: Int64, outcome: String,
        detail: String?
    ) throws -> Int64 {
        try db.execute(
            sql: """
                INSERT INTO export_files (path, content_sha256, device_serial, run_id, ingested_at_unix_ms, outcome, detail)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [path, sha, serial, runID, at, outcome, detail])
        return db.lastInsertedRowID
    }

    static func applyAlarmChanges(
        _ db: Database, _ changes: [AlarmChange], deviceSerial: String, runID: String?, runRef: Int64?,
        messageRef: Int64?, at: Int64
    ) throws -> [Int64] {
        // Each change's alarm row, in order: the caller names alarms by id without reading them back.
        var alarmRefs: [Int64] = []
        alarmRefs.reserveCapacity(changes.count)
        for change in changes {
            let active = try Int64.fetchOne(
                db,
                sql: "SELECT id FROM alarms WHERE device_serial = ? AND run_ref IS ? AND code = ? AND state <> 'cleared'",
                arguments: [deviceSerial, runRef, change.code])
            if change.kind == .raised {
                guard active == nil else {
                    throw RecordStoreError.alarmAlreadyActive(deviceSerial: deviceSerial, runID: runID, code: change.code)
                }
                try db.execute(
                    sql: """
                        INSERT INTO alarms (device_serial, run_ref, code, level, state, value, limit_value, unit, message,
                            raised_at_unix_ms, raised_run_time_min)
                        VALUES (?, ?, ?, ?, 'raised', ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        deviceSerial, runRef, change.code, change.level, change.value, change.limit, change.unit,
                        change.message, at, change.runTimeMinutes,
                    ])
                let alarmRef = db.lastInsertedRowID
                try insertAlarmEvent(db, alarmRef: alarmRef, change, messageRef: messageRef, at: at)
                alarmRefs.append(alarmRef)
            } else {
                guard let active else {
                    throw RecordStoreError.noActiveAlarm(
                        deviceSerial: deviceSerial, runID: runID, code: change.code, kind: change.kind)
                }
                try step(db, alarmRef: active, change, messageRef: messageRef, at: at)
                alarmRefs.append(active)
            }
        }
        return alarmRefs
    }

    /// Applies a non-raise step to an alarm row, always together with its history row.
    static func step(_ db: Database, alarmRef: Int64, _ change: AlarmChange, messageRef: Int64?, at: Int64) throws {
        switch change.kind {
        case .raised:
            preconditionFailure("raise inserts, it does not step")
        case .escalated:
            // A worse level must be seen again: an acknowledged alarm goes back to 'raised'.
            try db.execute(
                sql: """
                    UPDATE alarms SET level = ?, state = 'raised', value = COALESCE(?, value),
                        limit_value = COALESCE(?, limit_value), unit = COALESCE(?, unit), message = COALESCE(?, message)
                    WHERE id = ?
                    """,
                arguments: [change.level, change.value, change.limit, change.unit, change.message, alarmRef])
        case .deescalated:
            try db.execute(
                sql: """
                    UPDATE alarms SET level = ?, value = COALESCE(?, value), limit_value = COALESCE(?, limit_value),
                        unit = COALESCE(?, unit), message = COALESCE(?, message)
                    WHERE id = ?
                    """,
                arguments: [change.level, change.value, change.limit, change.unit, change.message, alarmRef])
        case .acknowledged:
            try db.execute(
                sql: """
                    UPDATE alarms SET state = 'acknowledged', acknowledged_by = ?, acknowledged_at_unix_ms = ?
                    WHERE id = ?
                    """,
                arguments: [change.by, at, alarmRef])
        case .cleared:
            try db.execute(
                sql: "UPDATE alarms SET state = 'cleared', cleared_at_unix_ms = ?, clear_reason = ? WHERE id = ?",
                arguments: [at, change.reason, alarmRef])
        }
        try insertAlarmEvent(db, alarmRef: alarmRef, change, messageRef: messageRef, at: at)
    }

    static func insertAlarmEvent(_ db: Database, alarmRef: Int64, _ change: AlarmChange, messageRef: Int64?, at: Int64) throws {
        let detail = [change.message, change.reason].compactMap { $0 }.joined(separator: "; ")
        try db.execute(
            sql: """
                INSERT INTO alarm_events (alarm_ref, kind, level, value, limit_value, run_time_min, actor, detail,
                    message_ref, at_unix_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                alarmRef, change.kind.rawValue, change.level, change.value, change.limit, change.runTimeMinutes, change.by,
                detail.isEmpty ? nil : detail, messageRef, at,
            ])
    }
}
