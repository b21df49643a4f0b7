import GRDB

extension RecordStore {
    /// When the newest sample of a run arrived (the daemon's clock), to give its values an age.
    public func latestSampleReceivedAt(runRef: Int64) async throws -> Int64? {
        try await pool.read { db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT messages.received_at_unix_ms FROM samples JOIN messages ON messages.id = samples.message_ref
                    WHERE samples.run_ref = ? ORDER BY samples.id DESC LIMIT 1
                    """, arguments: [runRef])
        }
    }

    /// Every alarm, newest first, up to `limit`.
    public func allAlarms(limit: Int) async throws -> [AlarmRow] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM alarms ORDER BY id DESC LIMIT ?", arguments: [limit]).map(Reader.alarm)
        }
    }

    /// An operator's acknowledgement with its audit entry, in one transaction. Nil when there is no
    /// active alarm with that id.
    public func acknowledgeAlarm(id: Int64, by actor: String, reason: String?, atUnixMilliseconds at: Int64) async throws -> AlarmRow? {
        try await pool.write { db in
            let (alarm, changed) = try self.reportingAlarmSteps(db) { try Writer.acknowledge(db, alarmID: id, by: actor, at: at) }
            if changed, let row = try Row.fetchOne(db, sql: "SELECT * FROM alarms WHERE id = ?", arguments: [id]) {
                try Audit.append(
                    db, at: at, actor: actor, action: "alarm.acknowledge", entity: "alarm", entityID: String(id),
                    old: nil, new: Audit.canonicalJSON(row, excluded: []), reason: reason)
            }
            return alarm
        }
    }
}

extension RecordStore {
    /// How many times each alarm code was raised, over the whole store.
    public func alarmRaiseCounts() async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(
                db,
                sql: "SELECT alarms.code AS code, COUNT(*) AS n FROM alarm_events JOIN alarms ON alarms.id = alarm_events.alarm_ref WHERE alarm_events.kind = 'raised' GROUP BY alarms.code"
            ) {
                counts[row["code"]] = row["n"]
            }
            return counts
        }
    }
}

extension Writer {
    /// The one acknowledgement step: nil for no active alarm, unchanged when already acknowledged.
    static func acknowledge(_ db: Database, alarmID id: Int64, by: String, at: Int64) throws -> (alarm: AlarmRow?, changed: Bool) {
        guard let alarm = try Reader.alarm(db, id: id), alarm.state != .cleared else { return (nil, false) }
        guard alarm.state == .raised else { return (alarm, false) }
        try step(db, alarmRef: id, AlarmChange(kind: .acknowledged, code: alarm.code, level: alarm.level, by: by), messageRef: nil, at: at)
        return (try Reader.alarm(db, id: id), true)
    }
}
