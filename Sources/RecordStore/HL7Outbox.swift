import Foundation
import GRDB
import HL7
import Synchronization

// The hospital interface's outbox (schema v7, docs/hl7.md). Messages are composed inside the
// transaction of what they report, by the store itself, so that no writer (the daemon's ingest,
// an operator's acknowledgement, apheresisctl's release) can store a fact without queueing its
// report, and none can queue a report of a fact that was rolled back.

/// One configured destination, as the store keeps it.
public struct HL7Route: Hashable, Sendable {
    public enum Feed: String, Hashable, Sendable, CaseIterable {
        case observations, alarms, products
    }

    public var name: String
    /// host:port, as configured (shown in status; the daemon's sender connects to it).
    public var address: String
    public var feeds: Set<Feed>
    /// Run time between two observations of a run (PCD-01); the run's end is always reported.
    public var observationIntervalMinutes: Double
    public var endpoints: HL7Endpoints
    /// The zone MSH-7 and the store's own times are written in (always with their offset).
    public var timeZoneIdentifier: String

    public init(
        name: String, address: String, feeds: Set<Feed>, observationIntervalMinutes: Double, endpoints: HL7Endpoints,
        timeZoneIdentifier: String
    ) {
        self.name = name
        self.address = address
        self.feeds = feeds
        self.observationIntervalMinutes = observationIntervalMinutes
        self.endpoints = endpoints
        self.timeZoneIdentifier = timeZoneIdentifier
    }

    var timeZone: TimeZone { TimeZone(identifier: timeZoneIdentifier) ?? TimeZone(identifier: "UTC")! }
}

/// The recomputed figures of a run at one sample, as the daemon's watcher has them, each in the
/// unit its name gives (converted from the core's SI types by the caller). The device's own figures
/// come from the stored sample.
public struct ObservationFigures: Hashable, Sendable {
    public var totalBloodVolumeMillilitres: Double?
    public var windowRatio: Double?
    public var runRatio: Double?
    public var acInfusionRateMillilitresPerMinutePerLitre: Double?
    public var citrateLoadRateMilligramsPerKilogramPerMinute: Double?
    public var citrateLoadTotalMilligramsPerKilogram: Double?

    public init(
        totalBloodVolumeMillilitres: Double? = nil, windowRatio: Double? = nil, runRatio: Double? = nil,
        acInfusionRateMillilitresPerMinutePerLitre: Double? = nil, citrateLoadRateMilligramsPerKilogramPerMinute: Double? = nil,
        citrateLoadTotalMilligramsPerKilogram: Double? = nil
    ) {
        self.totalBloodVolumeMillilitres = totalBloodVolumeMillilitres
        self.windowRatio = windowRatio
        self.runRatio = runRatio
        self.acInfusionRateMillilitresPerMinutePerLitre = acInfusionRateMillilitresPerMinutePerLitre
        self.citrateLoadRateMilligramsPerKilogramPerMinute = citrateLoadRateMilligramsPerKilogramPerMinute
        self.citrateLoadTotalMilligramsPerKilogram = citrateLoadTotalMilligramsPerKilogram
    }
}

/// The active destinations and the store's tag, read at open and replaced by `registerHL7Routes`:
/// a store with no destination does no outbox work at all.
final class HL7Routing: Sendable {
    private let state = Mutex<(tag: String, routes: [HL7Route])>((tag: "", routes: []))

    func load(_ db: Database) throws {
        let tag = try String.fetchOne(db, sql: "SELECT store_tag FROM hl7_identity WHERE id = 1") ?? ""
        let routes = try Row.fetchAll(db, sql: "SELECT * FROM hl7_destinations WHERE active = 1 ORDER BY name").map(OutboxReader.route)
        state.withLock { $0 = (tag, routes) }
    }

    func routes(for feed: HL7Route.Feed) -> (tag: String, routes: [HL7Route]) {
        state.withLock { s in (s.tag, s.routes.filter { $0.feeds.contains(feed) }) }
    }
}

/// A queued message, as the sender reads it.
public struct HL7OutboxEntry: Hashable, Sendable {
    public enum State: String, Hashable, Sendable { case pending, delivered, setAside = "set_aside" }
    public var id: Int64
    public var destination: String
    public var feed: String
    public var messageType: String
    public var controlID: String
    public var subject: String
    public var createdAtUnixMilliseconds: Int64
    public var message: [UInt8]
    public var state: State
    public var attempts: Int
    /// Of the attempts, those answered AE or CE.
    public var errorAnswers: Int
    public var lastError: String?
    public var ackCode: String?
    public var ackText: String?
    public var finishedAtUnixMilliseconds: Int64?
}

/// One destination's queue, for status pages, metrics and apheresisctl.
public struct HL7DestinationStatus: Hashable, Sendable {
    public var name: String
    public var address: String
    public var active: Bool
    public var feeds: [String]
    public var pending: Int
    public var oldestPendingAtUnixMilliseconds: Int64?
    public var delivered: Int
    public var setAside: Int
    public var lastDeliveredAtUnixMilliseconds: Int64?
    public var lastError: String?
}

extension RecordStore {
    /// Makes `routes` the destinations messages are queued for from now on (the daemon calls this
    /// at start with its configuration). A destination no longer configured is kept as inactive:
    /// what it still has pending stays in the store, shown in the status, and is not sent.
    public func registerHL7Routes(_ routes: [HL7Route], atUnixMilliseconds at: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE hl7_destinations SET active = 0, updated_at_unix_ms = ? WHERE active = 1", arguments: [at])
            for route in routes {
                try db.execute(
                    sql: """
                        INSERT INTO hl7_destinations (name, address, feeds, observation_interval_min, sending_application,
                            sending_facility, receiving_application, receiving_facility, time_zone, active, updated_at_unix_ms)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
                        ON CONFLICT (name) DO UPDATE SET address = excluded.address, feeds = excluded.feeds,
                            observation_interval_min = excluded.observation_interval_min,
                            sending_application = excluded.sending_application, sending_facility = excluded.sending_facility,
                            receiving_application = excluded.receiving_application,
                            receiving_facility = excluded.receiving_facility, time_zone = excluded.time_zone, active = 1,
                            updated_at_unix_ms = excluded.updated_at_unix_ms
                        """,
                    arguments: [
                        route.name, route.address, HL7Route.Feed.allCases.filter(route.feeds.contains).map(\.rawValue).joined(separator: " "),
                        route.observationIntervalMinutes, route.endpoints.sendingApplication, route.endpoints.sendingFacility,
                        route.endpoints.receivingApplication, route.endpoints.receivingFacility, route.timeZoneIdentifier, at,
                    ])
            }
            try self.hl7Routing.load(db)
        }
    }

    /// The destinations as the store has them (active and retired).
    public func hl7Routes() async throws -> [(route: HL7Route, active: Bool)] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM hl7_destinations ORDER BY name").map { (OutboxReader.route($0), ($0["active"] as Int64) == 1) }
        }
    }

    /// The next messages to send to `destination`, oldest first, from after `afterID`.
    public func pendingHL7(destination: String, afterID: Int64 = 0, limit: Int = 32) async throws -> [HL7OutboxEntry] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM hl7_outbox WHERE destination = ? AND state = 'pending' AND id > ? ORDER BY id LIMIT ?",
                arguments: [destination, afterID, limit]
            ).map(OutboxReader.entry)
        }
    }

    public func hl7Entry(id: Int64) async throws -> HL7OutboxEntry? {
        try await pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM hl7_outbox WHERE id = ?", arguments: [id]).map(OutboxReader.entry) }
    }

    /// Every message queued for `destination`, whatever its state, oldest first.
    public func hl7Outbox(destination: String) async throws -> [HL7OutboxEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM hl7_outbox WHERE destination = ? ORDER BY id", arguments: [destination])
                .map(OutboxReader.entry)
        }
    }

    /// Messages of `destination` (all when nil) in `state`, newest first.
    public func hl7Entries(state: HL7OutboxEntry.State, destination: String? = nil, limit: Int = 100) async throws -> [HL7OutboxEntry] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM hl7_outbox WHERE state = ? AND (? IS NULL OR destination = ?) ORDER BY id DESC LIMIT ?",
                arguments: [state.rawValue, destination, destination, limit]
            ).map(OutboxReader.entry)
        }
    }

    /// A send that got no usable answer (timeout, connection lost, an answer for another message):
    /// counted, with the reason; the message stays pending and is sent again with the same control id.
    /// Kept out of the disk reserve's way: a few bytes of an existing row.
    /// `errorAnswer`: the receiver answered AE or CE (counted apart, for `error_attempts`).
    public func recordHL7Attempt(id: Int64, error: String, errorAnswer: Bool = false, atUnixMilliseconds at: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE hl7_outbox SET attempts = attempts + 1, error_answers = error_answers + ?, last_attempt_at_unix_ms = ?,
                        last_error = ?
                    WHERE id = ? AND state = 'pending'
                    """,
                arguments: [errorAnswer ? 1 : 0, at, error, id])
        }
    }

    /// The receiver accepted the message (AA/CA).
    public func recordHL7Delivered(id: Int64, ackCode: String, ackText: String, atUnixMilliseconds at: Int64) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE hl7_outbox SET state = 'delivered', attempts = attempts + 1, last_attempt_at_unix_ms = ?, ack_code = ?,
                        ack_text = ?, finished_at_unix_ms = ?
                    WHERE id = ? AND state = 'pending'
                    """,
                arguments: [at, ackCode, ackText.isEmpty ? nil : ackText, at, id])
        }
    }

    /// The receiver refused the message (AR, or AE after the retries): moved aside with the reason,
    /// so the messages after it go on. An event row says so in the same transaction.
    public func recordHL7SetAside(id: Int64, ackCode: String, reason: String, atUnixMilliseconds at: Int64) async throws {
        try await pool.write { db in
            guard let entry = try Row.fetchOne(db, sql: "SELECT * FROM hl7_outbox WHERE id = ? AND state = 'pending'", arguments: [id])
                .map(OutboxReader.entry)
            else { return }
            try db.execute(
                sql: """
                    UPDATE hl7_outbox SET state = 'set_aside', attempts = attempts + 1,
                        error_answers = error_answers + (? IN ('AE', 'CE')), last_attempt_at_unix_ms = ?, ack_code = ?,
                        ack_text = ?, last_error = ?, finished_at_unix_ms = ?
                    WHERE id = ?
                    """,
                arguments: [ackCode, at, ackCode, reason, "\(ackCode): \(reason)", at, id])
            _ = try Writer.insertEvent(
                db, kind: "hl7_set_aside", deviceSerial: nil, runRef: nil, messageRef: nil, at: at, deviceTimestamp: nil,
                detail: "\(entry.destination): \(entry.messageType) \(entry.controlID) (\(entry.subject)) answered \(ackCode): \(reason)")
        }
    }

    /// Puts a set-aside message back in its destination's queue (after the receiving side was fixed).
    /// It is sent again with its control id; the requeue is an event with who and why.
    @discardableResult
    public func requeueHL7(id: Int64, by actor: String, reason: String, atUnixMilliseconds at: Int64) async throws -> HL7OutboxEntry? {
        try await pool.write { db in
            guard let entry = try Row.fetchOne(db, sql: "SELECT * FROM hl7_outbox WHERE id = ? AND state = 'set_aside'", arguments: [id])
                .map(OutboxReader.entry)
            else { return nil }
            // Its AE count starts again: the receiver was changed.
            try db.execute(
                sql: "UPDATE hl7_outbox SET state = 'pending', error_answers = 0, finished_at_unix_ms = NULL WHERE id = ?", arguments: [id])
            _ = try Writer.insertEvent(
                db, kind: "hl7_requeued", deviceSerial: nil, runRef: nil, messageRef: nil, at: at, deviceTimestamp: nil,
                detail: "\(entry.destination): \(entry.controlID) requeued by \(actor): \(reason)")
            return try Row.fetchOne(db, sql: "SELECT * FROM hl7_outbox WHERE id = ?", arguments: [id]).map(OutboxReader.entry)
        }
    }

    /// Every destination's queue: what waits, since when, what was delivered or set aside.
    public func hl7Status() async throws -> [HL7DestinationStatus] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.name, d.address, d.active, d.feeds,
                        (SELECT COUNT(*) FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'pending') AS pending,
                        (SELECT MIN(created_at_unix_ms) FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'pending') AS oldest,
                        (SELECT COUNT(*) FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'delivered') AS delivered,
                        (SELECT COUNT(*) FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'set_aside') AS set_aside,
                        (SELECT MAX(finished_at_unix_ms) FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'delivered') AS last_delivered,
                        (SELECT last_error FROM hl7_outbox o WHERE o.destination = d.name AND o.state = 'pending'
                            AND last_error IS NOT NULL ORDER BY id LIMIT 1) AS last_error
                    FROM hl7_destinations d ORDER BY d.name
                    """
            ).map { row in
                HL7DestinationStatus(
                    name: row["name"], address: row["address"], active: (row["active"] as Int64) == 1,
                    feeds: (row["feeds"] as String).split(separator: " ").map(String.init), pending: row["pending"],
                    oldestPendingAtUnixMilliseconds: row["oldest"], delivered: row["delivered"], setAside: row["set_aside"],
                    lastDeliveredAtUnixMilliseconds: row["last_delivered"], lastError: row["last_error"])
            }
        }
    }
}

enum OutboxReader {
    static func route(_ row: Row) -> HL7Route {
        HL7Route(
            name: row["name"], address: row["address"],
            feeds: Set((row["feeds"] as String).split(separator: " ").compactMap { HL7Route.Feed(rawValue: String($0)) }),
            observationIntervalMinutes: row["observation_interval_min"],
            endpoints: HL7Endpoints(
                sendingApplication: row["sending_application"], sendingFacility: row["sending_facility"],
                receivingApplication: row["receiving_application"], receivingFacility: row["receiving_facility"]),
            timeZoneIdentifier: row["time_zone"])
    }

    static func entry(_ row: Row) -> HL7OutboxEntry {
        let message: Data = row["message"]
        return HL7OutboxEntry(
            id: row["id"], destination: row["destination"], feed: row["feed"], messageType: row["message_type"],
            controlID: row["control_id"], subject: row["subject"], createdAtUnixMilliseconds: row["created_at_unix_ms"],
            message: Array(message), state: HL7OutboxEntry.State(rawValue: row["state"]) ?? .pending, attempts: row["attempts"],
            errorAnswers: row["error_answers"],
            lastError: row["last_error"], ackCode: row["ack_code"], ackText: row["ack_text"],
            finishedAtUnixMilliseconds: row["finished_at_unix_ms"])
    }
}
