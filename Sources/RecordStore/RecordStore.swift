import Foundation
import GRDB
import SeparatorProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's durable record: every message, sample, alarm step, event, quarantined input and
/// export file, in one SQLite database (WAL). Each write method is one transaction; when it returns
/// the transaction is on disk (synchronous = FULL), so the daemon may ACK. See docs/store.md.
public final class RecordStore: Sendable {
    public let path: String
    /// The WAL bounds and disk reserve this store was opened with.
    public let options: Options
    /// The directory whose volume's free space is checked against `options.reserveBytes`.
    let directory: String
    let pool: DatabasePool
    /// The audit key and anchor (AuditAnchor.swift).
    let audit: AuditSetup
    /// Runs' telemetry completeness, kept until a run's messages change (RunGaps.swift).
    let completenessCache = CompletenessCache()
    /// The hospital interface's destinations (HL7Outbox.swift).
    let hl7Routing = HL7Routing()

    /// The newest schema version this build reads and writes.
    public static var schemaVersion: Int { Schema.version }

    private init(path: String, options: Options, pool: DatabasePool, audit: AuditSetup) {
        self.path = path
        self.options = options
        self.directory = Self.directory(of: path)
        self.pool = pool
        self.audit = audit
    }

    /// Opens (creating directories and file as needed) and migrates forward. Refuses a file written
    /// by a newer schema. Runs off the Swift concurrency pool: opening and migrating do blocking I/O.
    /// `options` bound the WAL and set the disk reserve (docs/store.md, "Disk space"). `audit` says
    /// where the audit key comes from and where the trail is anchored (docs/products.md); a key
    /// that is unusable, or not the one the trail was written with, is refused (`AuditKeyError`).
    public static func open(path: String, options: Options = Options(), audit: AuditOptions = AuditOptions()) async throws
        -> RecordStore
    {
        try await offPool { try openSynchronously(path: path, options: options, audit: audit) }
    }

    private static func openSynchronously(path: String, options: Options, audit: AuditOptions) throws -> RecordStore {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw RecordStoreError.cannotOpen(path: path, reason: "cannot create \(directory): \(error)")
            }
        }
        var configuration = Configuration()
        configuration.label = "RecordStore"
        configuration.foreignKeysEnabled = true
        // Another process (sqlite3, backup) may hold the lock briefly; wait instead of failing a commit.
        configuration.busyMode = .timeout(5)
        let journalSizeLimit = options.journalSizeLimitBytes
        let autocheckpointPages = options.walAutocheckpointPages
        let auditContext = AuditContext()
        configuration.prepareDatabase { db in
            db.add(function: auditContext.macFunction)
            // WAL + NORMAL may lose the last commits on power loss; an ACKed message must survive.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if !db.configuration.readonly {
                // The writer bounds the WAL: checkpoint every `autocheckpointPages` pages (a TICK writes
                // ~5 pages), and cut the file back to `journalSizeLimit` when the WAL starts over,
                // even after a long reader let it grow. docs/store.md, "Disk space".
                try db.execute(sql: "PRAGMA journal_size_limit = \(journalSizeLimit)")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(autocheckpointPages)")
            }
        }
        // Two processes opening a new store at once (the daemon starting, apheresisctl or a reader
        // beside it) would both read "nothing applied" and both run the first migration: "table
        // devices already exists" (found by the AddressSanitizer run, where a slower daemon widened
        // the window); or one would find the other switching the new file to WAL and fail with
        // "database is locked" (SQLite does not wait for that lock). Opening, migrating and the audit
        // setup happen under one exclusive lock beside the store, held until this returns. Unlocked
        // when the lock file cannot be made (a read-only volume: nothing can be migrated there anyway).
        let migrationLock = Glibc.open(path + ".migrate-lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        defer { if migrationLock >= 0 { Glibc.close(migrationLock) } }
        if migrationLock >= 0 {
            while flock(migrationLock, LOCK_EX) != 0 && errno == EINTR {}
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw RecordStoreError.cannotOpen(path: path, reason: "\(error)")
        }
        do {
            // GRDB's DatabasePool sets `synchronous = NORMAL` on its writer AFTER prepareDatabase has run
            // (Database.setUpWALMode, GRDB 7.10), which would leave commits un-fsynced until the next
            // checkpoint. Set FULL again on the writer: the only connection that commits, opened once.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            let migrator = Schema.migrator
            let (applied, fileVersion) = try pool.read { db in
                (try migrator.appliedIdentifiers(db), try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0)
            }
            let unknown = applied.subtracting(migrator.migrations).sorted()
            if !unknown.isEmpty || fileVersion > Schema.version {
                throw RecordStoreError.schemaTooNew(
                    path: path, fileVersion: fileVersion, knownVersion: Schema.version, unknownMigrations: unknown)
            }
            try migrator.migrate(pool)
            // Whether this open applied v5: only then (or with no keyed entry and no anchor file) may
            // the trail be keyed for the first time (AuditSetup.prepare).
            let appliedV5 = !applied.contains(Schema.auditAnchorMigration)
            let auditSetup = try AuditSetup.prepare(
                pool: pool, path: path, options: audit, context: auditContext, appliedV5: appliedV5)
            let store = RecordStore(path: path, options: options, pool: pool, audit: auditSetup)
            try pool.read { db in try store.hl7Routing.load(db) }
            return store
        } catch {
            try? pool.close()
            if error is RecordStoreError || error is AuditKeyError || error is AuditAnchorError { throw error }
            throw RecordStoreError.cannotOpen(path: path, reason: "\(error)")
        }
    }

    /// Copies the WAL into the database file and truncates the WAL (SQLite also checkpoints on its own
    /// every `options.walAutocheckpointPages` pages). Useful at shutdown or before a file-level backup.
    /// Never refused for the reserve: a checkpoint is what the reserve is kept for.
    public func checkpoint() async throws {
        try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
    }

    /// Closes every connection; later calls on this store throw. Waits for running operations.
    public func close() async throws {
        let pool = self.pool
        try await Self.offPool { try pool.close() }
    }

    /// Runs blocking work on a GCD thread so the (2-thread) cooperative pool is never held.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    /// Tests only (via @testable): raw SQL against the file, e.g. to simulate a newer schema.
    func executeForTesting(_ sql: String) async throws {
        try await pool.writeWithoutTransaction { db in try db.execute(sql: sql) }
    }

    /// Tests only: the first column of the first row of `sql`, as text, on the writer connection
    /// (where the pragmas of `prepareDatabase` apply), e.g. `PRAGMA journal_size_limit`.
    func valueForTesting(_ sql: String) async throws -> String? {
        try await pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: sql) }
    }

    /// Tests only: SQLite's query plan for `sql` (the `detail` column of EXPLAIN QUERY PLAN).
    func queryPlanForTesting(_ sql: String) async throws -> [String] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { row in row["detail"] as String }
        }
    }

    /// Tests only: opens a read transaction that stays open (a reader that lags, as a backup or a long
    /// API read would) until `release()`. While it is open, checkpoints cannot reset the WAL.
    func holdReadTransactionForTesting() async throws -> ReadHoldForTesting {
        let pool = self.pool
        // A DatabaseSnapshot begins its read transaction when made and ends it when deallocated.
        return try await Self.offPool { ReadHoldForTesting(try pool.makeSnapshot()) }
    }
}

/// Tests only: a read transaction held open (see `holdReadTransactionForTesting`).
final class ReadHoldForTesting: @unchecked Sendable {
    private let lock = NSLock()
    private var snapshot: DatabaseSnapshot?
    init(_ snapshot: DatabaseSnapshot) { self.snapshot = snapshot }
    /// Ends the read transaction and closes its connection.
    func release() { lock.withLock { snapshot = nil } }
}

// MARK: - Column encodings

enum Encoding {
    /// Device time as ISO-8601 UTC text: sorts like the wire form and reads well in sqlite3.
    static func text(_ t: DeviceTimestamp) -> String {
        let w = Array(t.wire)
        return String(w[0..<4]) + "-" + String(w[4..<6]) + "-" + String(w[6..<8]) + "T" + String(w[8..<10]) + ":"
            + String(w[10..<12]) + ":" + String(w[12..<14]) + "Z"
    }

    static func deviceTimestamp(_ text: String?) -> DeviceTimestamp? {
        guard let text else { return nil }
        return DeviceTimestamp(wire: String(text.filter(\.isNumber)))
    }

    /// Nanoseconds, saturating: a monotonic reading never gets near the limit, but a bad one must not trap.
    static func nanoseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (scaled < 0 ? .min : .max) : sum
    }

    private struct JSONValue: Codable {
        var code: String?
        var number: Double?
        var text: String?
        var unit: String
    }

    private static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        // Non-finite numbers must not make a commit fail (and so block the link); keep them as text.
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    private static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    static func settingsJSON(_ results: [ResultRecord]) throws -> String {
        let values = results.map { r in
            JSONValue(code: r.code.rawValue, number: r.value.number, text: r.value.text, unit: r.unit)
        }
        return String(decoding: try encoder().encode(values), as: UTF8.self)
    }

    static func settings(_ json: String?) -> [RunSetting]? {
        guard let json, let values = try? decoder().decode([JSONValue].self, from: Data(json.utf8)) else { return nil }
        return values.map { v in
            RunSetting(
                code: ParameterCode(v.code ?? ""), value: v.number.map { .number($0) } ?? .text(v.text ?? ""), unit: v.unit)
        }
    }

    /// Extra telemetry keyed by code; a repeated code keeps its first value (as columns do), later ones get a suffix.
    static func extraJSON(_ results: [ResultRecord]) throws -> String? {
        guard !results.isEmpty else { return nil }
        var object: [String: JSONValue] = [:]
        for r in results {
            var key = r.code.rawValue
            var n = 2
            while object[key] != nil {
                key = "\(r.code.rawValue)#\(n)"
                n += 1
            }
            object[key] = JSONValue(code: nil, number: r.value.number, text: r.value.text, unit: r.unit)
        }
        return String(decoding: try encoder().encode(object), as: UTF8.self)
    }

    /// Flags are stored comma-separated; a comma inside a flag would split it, so it becomes ';'.
    static func flags(_ flags: [String]) -> String {
        flags.map { $0.replacingOccurrences(of: ",", with: ";") }.filter { !$0.isEmpty }.joined(separator: ",")
    }
}
