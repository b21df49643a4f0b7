import Foundation
import Logging
import NIOCore
import PostgresNIO
import RecordStore

/// A workstation's writes into the central database: its registration and cursor, its batches of
/// rows, its link reports and its DIN blocks.
public struct CentralSite: Sendable {
    public let connection: PostgresConnection
    public let site: String
    public let logger: Logger

    public init(connection: PostgresConnection, site: String, logger: Logger) {
        self.connection = connection
        self.site = site
        self.logger = logger
    }

    /// Registers the site for `storeID` (or finds it registered for it) and returns its cursor:
    /// the last log entry of this workstation PostgreSQL has committed.
    public func register(storeID: String, daemonVersion: String, reportIntervalMilliseconds: Int64) async throws -> Int64 {
        try await connection.query(
            """
            INSERT INTO central_sites (site, store_id, daemon_version, report_interval_ms) VALUES (\(site), \(storeID), \(daemonVersion), \(reportIntervalMilliseconds))
            ON CONFLICT (site) DO NOTHING
            """, logger: logger)
        let rows = try await connection.query(
            "SELECT store_id, replicated_through FROM central_sites WHERE site = \(site)", logger: logger)
        for try await (registered, through) in rows.decode((String, Int64).self) {
            guard registered == storeID else {
                throw CentralError.siteOwnedByAnotherStore(site: site, registered: registered, this: storeID)
            }
            try await connection.query(
                """
                UPDATE central_sites SET last_contact_at = now(), daemon_version = \(daemonVersion),
                    report_interval_ms = \(reportIntervalMilliseconds) WHERE site = \(site)
                """, logger: logger)
            return through
        }
        throw CentralError.siteOwnedByAnotherStore(site: site, registered: "(none)", this: storeID)
    }

    /// Writes a batch and moves the cursor from `cursor` to its end, in one transaction: a crash
    /// anywhere leaves either both or neither, and replaying a batch rewrites the same rows.
    public func apply(_ batch: ReplicationBatch, from cursor: Int64) async throws {
        let site = self.site
        let logger = self.logger
        try await connection.withTransaction(logger: logger) { c in
            var byTable: [String: [ReplicatedRow]] = [:]
            for row in batch.rows { byTable[row.table, default: []].append(row) }
            for table in RecordStore.replicatedTables {
                guard let rows = byTable[table], let columns = rows.first?.columns else { continue }
                // Every row of a table has its columns in one order (SELECT *); a chunk stays under the 65535 binds.
                let perRow = columns.count + 2
                let chunkSize = max(1, 60_000 / perRow)
                for start in stride(from: 0, to: rows.count, by: chunkSize) {
                    let chunk = rows[start..<min(start + chunkSize, rows.count)]
                    let query = try Self.upsert(table: table, columns: columns, rows: chunk, site: site)
                    try await c.query(query, logger: logger)
                }
            }
            let moved = try await c.query(
                """
                UPDATE central_sites SET replicated_through = \(batch.throughSeq), replicated_at = now(), last_contact_at = now(),
                    backlog = \(Int64(batch.backlogAfter))
                WHERE site = \(site) AND replicated_through = \(cursor) RETURNING site
                """, logger: logger)
            var found = false
            for try await _ in moved { found = true }
            if !found { throw CentralError.cursorMoved(site: site, expected: cursor) }
        }
    }

    static func upsert(table: String, columns: [String], rows: ArraySlice<ReplicatedRow>, site: String) throws -> PostgresQuery {
        var binds = PostgresBindings(capacity: rows.count * (columns.count + 2))
        var tuples: [String] = []
        var n = 0
        for row in rows {
            guard row.columns == columns else { throw CentralReplicationError.columnsDiffer(table: table) }
            var marks: [String] = []
            binds.append(site)
            binds.append(row.rowID)
            for value in row.values {
                switch value {
                case .null: binds.appendNull()
                case .integer(let v): binds.append(v)
                case .real(let v): binds.append(v)
                case .text(let v): binds.append(v)
                case .blob(let v): binds.append(ByteBuffer(bytes: v))
                }
            }
            for _ in 0..<(columns.count + 2) {
                n += 1
                marks.append("$\(n)")
            }
            tuples.append("(" + marks.joined(separator: ",") + ")")
        }
        let names = (["site", "local_id"] + columns).map { "\"\($0)\"" }.joined(separator: ",")
        let conflict: String
        if CentralSchema.appendOnlyTables.contains(table) {
            conflict = "DO NOTHING"
        } else {
            conflict = "DO UPDATE SET " + columns.map { "\"\($0)\" = EXCLUDED.\"\($0)\"" }.joined(separator: ",")
        }
        return PostgresQuery(
            unsafeSQL: "INSERT INTO \(table) (\(names)) VALUES \(tuples.joined(separator: ",")) ON CONFLICT (site, local_id) \(conflict)",
            binds: binds)
    }

    /// The workstation's separators as it sees them now, and its backlog: the central dashboard's
    /// link ages and the workstation's own "last heard".
    public func report(links: [DeviceLinkReport], backlog: Int) async throws {
        let site = self.site
        let logger = self.logger
        try await connection.withTransaction(logger: logger) { c in
            try await c.query(
                "UPDATE central_sites SET last_contact_at = now(), backlog = \(Int64(backlog)) WHERE site = \(site)", logger: logger)
            // Links no longer configured on the workstation are no longer shown.
            try await c.query(
                "DELETE FROM central_links WHERE site = \(site) AND NOT (name = ANY(\(links.map(\.name))))", logger: logger)
            for link in links {
                try await c.query(
                    """
                    INSERT INTO central_links (site, name, link, state, device_serial, activity_age_ms, last_error, reported_at)
                    VALUES (\(site), \(link.name), \(link.link), \(link.state), \(link.deviceSerial), \(link.activityAgeMilliseconds), \(link.lastError), now())
                    ON CONFLICT (site, name) DO UPDATE SET link = EXCLUDED.link, state = EXCLUDED.state,
                        device_serial = COALESCE(EXCLUDED.device_serial, central_links.device_serial),
                        activity_age_ms = EXCLUDED.activity_age_ms, last_error = EXCLUDED.last_error, reported_at = now()
                    """, logger: logger)
            }
        }
    }

    /// Raises the facility's next sequence above every number this workstation issued or holds,
    /// so that a block never repeats one (a store that issued DINs before it replicated, or a
    /// central database restored from an older backup).
    public func reportDINHighWaters(_ marks: [DINHighWater]) async throws {
        for mark in marks {
            try await connection.query(
                """
                INSERT INTO din_allocations (facility, din_year, next_sequence) VALUES (\(mark.facility), \(mark.dinYear), \(mark.lastSequence + 1))
                ON CONFLICT (facility, din_year) DO UPDATE SET next_sequence = GREATEST(din_allocations.next_sequence, EXCLUDED.next_sequence)
                """, logger: logger)
        }
    }

    /// Reserves the next `size` sequences of (facility, year) for this site; nil when fewer remain.
    public func reserveDINBlock(facility: String, dinYear: Int, size: Int) async throws -> (id: Int64, first: Int, last: Int)? {
        let site = self.site
        let logger = self.logger
        return try await connection.withTransaction(logger: logger) { c -> (id: Int64, first: Int, last: Int)? in
            try await c.query(
                """
                INSERT INTO din_allocations (facility, din_year, next_sequence) VALUES (\(facility), \(dinYear), 1)
                ON CONFLICT (facility, din_year) DO NOTHING
                """, logger: logger)
            // FOR UPDATE locks the row: workstations reserving for one facility and year take turns.
            let next = try await c.query(
                """
                SELECT next_sequence FROM din_allocations WHERE facility = \(facility) AND din_year = \(dinYear) FOR UPDATE
                """, logger: logger)
            var first = 0
            for try await value in next.decode(Int.self) { first = value }
            let available = 1_000_000 - first
            guard available > 0 else { return nil }
            let last = first + min(size, available) - 1
            try await c.query(
                "UPDATE din_allocations SET next_sequence = \(last + 1) WHERE facility = \(facility) AND din_year = \(dinYear)",
                logger: logger)
            let inserted = try await c.query(
                """
                INSERT INTO din_blocks (facility, din_year, site, first_sequence, last_sequence)
                VALUES (\(facility), \(dinYear), \(site), \(first), \(last)) RETURNING id
                """, logger: logger)
            var id: Int64 = 0
            for try await value in inserted.decode(Int64.self) { id = value }
            return (id, first, last)
        }
    }
}

public enum CentralReplicationError: Error, CustomStringConvertible {
    case columnsDiffer(table: String)
    public var description: String {
        switch self {
        case .columnsDiffer(let table): "rows of table \(table) in one batch have different columns"
        }
    }
}

/// One separator link as the workstation reports it.
public struct DeviceLinkReport: Sendable, Equatable {
    public var name: String
    public var link: String
    public var state: String
    public var deviceSerial: String?
    /// Milliseconds since the last byte from the separator, on the workstation's monotonic clock; nil before the first.
    public var activityAgeMilliseconds: Int64?
    public var lastError: String?

    public init(name: String, link: String, state: String, deviceSerial: String?, activityAgeMilliseconds: Int64?, lastError: String?) {
        self.name = name
        self.link = link
        self.state = state
        self.deviceSerial = deviceSerial
        self.activityAgeMilliseconds = activityAgeMilliseconds
        self.lastError = lastError
    }
}
