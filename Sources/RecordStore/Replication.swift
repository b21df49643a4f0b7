import Foundation
import GRDB

/// One column value as SQLite holds it, for the replicator to bind in PostgreSQL unchanged.
public enum ReplicatedValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A replicated table's row as it is now, named by the table and its rowid (the central key is
/// (site, table, local id): ids never collide across workstations).
public struct ReplicatedRow: Sendable, Hashable {
    public var table: String
    public var rowID: Int64
    public var columns: [String]
    public var values: [ReplicatedValue]

    public init(table: String, rowID: Int64, columns: [String], values: [ReplicatedValue]) {
        self.table = table
        self.rowID = rowID
        self.columns = columns
        self.values = values
    }
}

/// Log entries after a cursor, up to `throughSeq`, with the rows they name read from the same
/// snapshot. A row logged several times in the batch appears once, as it is now.
public struct ReplicationBatch: Sendable {
    public var rows: [ReplicatedRow]
    /// The last log entry the batch covers: the cursor to commit with it. Equal to the cursor
    /// asked from when the log has nothing after it.
    public var throughSeq: Int64
    /// Entries still waiting after this batch.
    public var backlogAfter: Int
}

public struct ReplicationState: Sendable, Hashable {
    public var logging: Bool
    public var dinFromCentral: Bool
    public var site: String?
    public var loggingSinceUnixMilliseconds: Int64?
    public var confirmedSeq: Int64
    public var confirmedAtUnixMilliseconds: Int64?
    /// Entries logged and not yet confirmed by the central database.
    public var backlog: Int
    /// The store's audit identity (audit_chain.store_id): the central database names the site's store by it.
    public var storeID: String
}

/// A DIN high-water mark this store knows: the last sequence issued, or reserved in a block.
public struct DINHighWater: Sendable, Hashable {
    public var facility: String
    public var dinYear: Int
    public var lastSequence: Int

    public init(facility: String, dinYear: Int, lastSequence: Int) {
        self.facility = facility
        self.dinYear = dinYear
        self.lastSequence = lastSequence
    }
}

public enum ReplicationSetupError: Error, CustomStringConvertible, Equatable {
    case siteChanged(recorded: String, configured: String)

    public var description: String {
        switch self {
        case .siteChanged(let recorded, let configured):
            "central.site is \"\(configured)\", but this store replicates as site \"\(recorded)\": its rows in the central database are keyed by that name, so it cannot change (set central.site = \"\(recorded)\" again, or start a new store for a new site)"
        }
    }
}

extension RecordStore {
    /// The tables a workstation replicates, parents before children (Schema.replicatedTables).
    public static var replicatedTables: [String] { Schema.replicatedTables }

    /// Turns the replication log on (once; it stays on) and, the first time, logs every row the
    /// store already holds, parents first, so that the central copy starts complete. Returns the
    /// number of rows logged now (0 when logging was already on).
    @discardableResult
    public func enableReplicationLog(site: String, atUnixMilliseconds at: Int64) async throws -> Int {
        try await pool.write { db in
            let state = try Row.fetchOne(db, sql: "SELECT logging, site FROM replication_state WHERE id = 1")!
            if (state["logging"] as Int64) == 1 {
                let recorded: String? = state["site"]
                if let recorded, recorded != site { throw ReplicationSetupError.siteChanged(recorded: recorded, configured: site) }
                return 0
            }
            try db.execute(
                sql: "UPDATE replication_state SET logging = 1, din_from_central = 1, site = ?, logging_since_unix_ms = ? WHERE id = 1",
                arguments: [site, at])
            return try Self.logEveryRow(db)
        }
    }

    /// Logs every row again (the central database lost what it had confirmed: restored from an
    /// older backup), and takes its cursor `centralCursor` as the confirmation, so that a later
    /// connection does not find it behind again and log everything once more. The upserts are
    /// idempotent: rows the central database still has are rewritten unchanged.
    @discardableResult
    public func requeueEverythingForReplication(centralCursor: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "UPDATE replication_state SET confirmed_seq = ? WHERE id = 1", arguments: [centralCursor])
            return try Self.logEveryRow(db)
        }
    }

    private static func logEveryRow(_ db: Database) throws -> Int {
        var logged = 0
        for table in Schema.replicatedTables {
            try db.execute(
                sql: "INSERT INTO replication_log (table_name, row_id) SELECT ?, rowid FROM \(table) ORDER BY rowid",
                arguments: [table])
            logged += db.changesCount
        }
        return logged
    }

    public func replicationState() async throws -> ReplicationState {
        try await pool.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT * FROM replication_state WHERE id = 1")!
            let confirmed: Int64 = row["confirmed_seq"]
            let backlog = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM replication_log WHERE seq > ?", arguments: [confirmed]) ?? 0
            let storeID = try String.fetchOne(db, sql: "SELECT store_id FROM audit_chain WHERE id = 1") ?? ""
            return ReplicationState(
                logging: (row["logging"] as Int64) == 1, dinFromCentral: (row["din_from_central"] as Int64) == 1,
                site: row["site"], loggingSinceUnixMilliseconds: row["logging_since_unix_ms"], confirmedSeq: confirmed,
                confirmedAtUnixMilliseconds: row["confirmed_at_unix_ms"], backlog: backlog, storeID: storeID)
        }
    }

    /// Up to `limit` log entries after `cursor`, with their rows, from one snapshot.
    public func replicationBatch(after cursor: Int64, limit: Int) async throws -> ReplicationBatch {
        try await pool.read { db in
            let entries = try Row.fetchAll(
                db, sql: "SELECT seq, table_name, row_id FROM replication_log WHERE seq > ? ORDER BY seq LIMIT ?",
                arguments: [cursor, limit])
            guard let last = entries.last else { return ReplicationBatch(rows: [], throughSeq: cursor, backlogAfter: 0) }
            let through: Int64 = last["seq"]
            var wanted: [String: [Int64]] = [:]
            var seen = Set<String>()
            for entry in entries {
                let table: String = entry["table_name"]
                let id: Int64 = entry["row_id"]
                if seen.insert("\(table)#\(id)").inserted { wanted[table, default: []].append(id) }
            }
            var rows: [ReplicatedRow] = []
            // Parents first, as the backfill logged them; within a table in rowid order.
            for table in Schema.replicatedTables {
                guard let ids = wanted[table] else { continue }
                for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                    let marks = chunk.map { _ in "?" }.joined(separator: ",")
                    let fetched = try Row.fetchAll(
                        db, sql: "SELECT rowid AS replication_rowid, * FROM \(table) WHERE rowid IN (\(marks)) ORDER BY rowid",
                        arguments: StatementArguments(chunk))
                    for row in fetched {
                        var columns: [String] = []
                        var values: [ReplicatedValue] = []
                        var rowID: Int64 = 0
                        for (column, value) in row {
                            if column == "replication_rowid" {
                                rowID = Int64.fromDatabaseValue(value) ?? 0
                                continue
                            }
                            columns.append(column)
                            values.append(Self.replicated(value))
                        }
                        rows.append(ReplicatedRow(table: table, rowID: rowID, columns: columns, values: values))
                    }
                }
            }
            let after = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM replication_log WHERE seq > ?", arguments: [through]) ?? 0
            return ReplicationBatch(rows: rows, throughSeq: through, backlogAfter: after)
        }
    }

    /// The central database committed everything through `seq`: those log entries go.
    public func confirmReplication(through seq: Int64, atUnixMilliseconds at: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM replication_log WHERE seq <= ?", arguments: [seq])
            try db.execute(
                sql: "UPDATE replication_state SET confirmed_seq = MAX(confirmed_seq, ?), confirmed_at_unix_ms = ? WHERE id = 1",
                arguments: [seq, at])
        }
    }

    /// The highest log entry ever written (0: none), for comparing with the central cursor.
    public func replicationLogHighWater() async throws -> Int64 {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'replication_log'") ?? 0
        }
    }

    static func replicated(_ value: DatabaseValue) -> ReplicatedValue {
        switch value.storage {
        case .null: .null
        case .int64(let v): .integer(v)
        case .double(let v): .real(v)
        case .string(let v): .text(v)
        case .blob(let v): .blob([UInt8](v))
        }
    }

    // MARK: DIN blocks

    /// Sequences still free in this store's central blocks for (facility, year).
    public func dinSequencesInReserve(facility: String, dinYear: Int) async throws -> Int {
        try await pool.read { db in try DINBlocks.reserve(db, facility: facility, dinYear: dinYear) }
    }

    /// Records a block the central database reserved for this store (idempotent by its central id).
    public func addDINBlock(
        facility: String, dinYear: Int, firstSequence: Int, lastSequence: Int, centralBlockID: Int64, atUnixMilliseconds at: Int64
    ) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO din_blocks (facility, din_year, first_sequence, last_sequence, central_block_id, reserved_at_unix_ms)
                    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (central_block_id) DO NOTHING
                    """,
                arguments: [facility, dinYear, firstSequence, lastSequence, centralBlockID, at])
        }
    }

    /// Every (facility, year) this store issued or holds sequences of, with the highest: the central
    /// allocator never hands out a number at or below them.
    public func dinHighWaters() async throws -> [DINHighWater] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT facility, din_year, MAX(last_sequence) AS last FROM (
                        SELECT facility, din_year, last_sequence FROM din_sequences
                        UNION ALL SELECT facility, din_year, last_sequence FROM din_blocks)
                    GROUP BY facility, din_year ORDER BY facility, din_year
                    """
            ).map { DINHighWater(facility: $0["facility"], dinYear: $0["din_year"], lastSequence: $0["last"]) }
        }
    }
}

/// Where a new product's DIN sequence comes from (docs/central.md): the local counter until the
/// store replicates, then only the blocks the central database reserved for it.
enum DINBlocks {
    static func nextSequence(_ db: Database, facility: String, dinYear: Int, lastIssued: Int) throws -> Int {
        let central = try Int64.fetchOne(db, sql: "SELECT din_from_central FROM replication_state WHERE id = 1") == 1
        guard central else { return lastIssued + 1 }
        guard
            let block = try Row.fetchOne(
                db,
                sql: """
                    SELECT first_sequence FROM din_blocks WHERE facility = ? AND din_year = ? AND last_sequence > ?
                    ORDER BY first_sequence LIMIT 1
                    """,
                arguments: [facility, dinYear, lastIssued])
        else {
            throw ProductStoreError.noDINBlock(facility: facility, year: dinYear, lastIssued: lastIssued)
        }
        return max(block["first_sequence"] as Int, lastIssued + 1)
    }

    static func reserve(_ db: Database, facility: String, dinYear: Int) throws -> Int {
        let last = try Int.fetchOne(
            db, sql: "SELECT last_sequence FROM din_sequences WHERE facility = ? AND din_year = ?", arguments: [facility, dinYear]) ?? 0
        return try Int.fetchOne(
            db,
            sql: """
                SELECT IFNULL(SUM(last_sequence - MAX(first_sequence, ? + 1) + 1), 0) FROM din_blocks
                WHERE facility = ? AND din_year = ? AND last_sequence > ?
                """,
            arguments: [last, facility, dinYear, last]) ?? 0
    }
}

extension RecordStore {
    /// The tables the audit check reads: the trail, its chain row, and the records it covers.
    public static let auditCopyTables: [String] = ["audit_chain", "audit_log", "runs"] + Audit.audited.map(\.table)

    /// Verifies a copy of a trail held elsewhere (the central database's rows of one site) with
    /// this store's audit key: the rows go into a scratch in-memory database of this schema and the
    /// same check as `verifyAudit` runs on it, without anchor file or journal (they belong to the
    /// workstation, not to the copy).
    public func verifyAuditCopy(_ rows: [ReplicatedRow]) async throws -> AuditVerification {
        let key = audit.context.key?.bytes
        return try await Self.offPool {
            // Only the audited tables are copied, not the devices and messages they refer to.
            var configuration = Configuration()
            configuration.foreignKeysEnabled = false
            let scratch = try DatabaseQueue(configuration: configuration)
            try Schema.migrator.migrate(scratch)
            return try scratch.write { db in
                // The copy is loaded as it is: the scratch schema's own guards would refuse a bare insert.
                for name in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger'") {
                    try db.execute(sql: "DROP TRIGGER \(name)")
                }
                try db.execute(sql: "DELETE FROM audit_chain")
                for row in rows {
                    let columns = row.columns.map { "\"\($0)\"" }.joined(separator: ", ")
                    let marks = row.columns.map { _ in "?" }.joined(separator: ", ")
                    let values: [DatabaseValueConvertible?] = row.values.map { value -> DatabaseValueConvertible? in
                        switch value {
                        case .null: nil
                        case .integer(let v): v
                        case .real(let v): v
                        case .text(let v): v
                        case .blob(let v): Data(v)
                        }
                    }
                    try db.execute(
                        sql: "INSERT INTO \(row.table) (rowid, \(columns)) VALUES (?, \(marks))",
                        arguments: StatementArguments([row.rowID] + values))
                }
                return try Audit.verify(db, key: key)
            }
        }
    }

    /// This store's audit entries through `seq`, for comparing a copy's head with the original.
    public func auditHash(seq: Int64) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE seq = ?", arguments: [seq]) }
    }
}
