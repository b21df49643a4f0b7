import Benchmark
import BenchSupport
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

// The anchor of the ingest figure (issue 12): what raw SQLite does on this disk when every
// message is its own durable commit, as the store's are (docs/store.md: WAL, synchronous =
// FULL, one transaction per message). One iteration is one single-row INSERT in its own
// transaction, so the throughput metric is commits per second. The ingest benchmark is
// compared against this figure measured in the same run.
//
// The database goes where the store's tests put theirs: $TMPDIR (else /tmp), or
// APHERESISD_BENCH_DIR to measure another disk.
let benchmarks: @Sendable () -> Void = {
    let anchor = AnchorHolder()
    Benchmark(
        "SQLite-commit-WAL-FULL",
        configuration: .init(
            metrics: [.wallClock, .throughput],
            timeUnits: .microseconds,
            warmupIterations: 50,
            maxDuration: .seconds(3),
            maxIterations: 20_000
        )
    ) { benchmark in
        guard let store = anchor.store else { fatalError("no anchor store") }
        for _ in benchmark.scaledIterations {
            store.commitOneRow()
        }
    } setup: {
        anchor.store = try AnchorStore()
    } teardown: {
        anchor.store?.close()
        anchor.store = nil
    }
}

/// Holds the store from setup to teardown (teardown gets no setup state).
final class AnchorHolder: @unchecked Sendable {  // setup, iterations and teardown run one after another
    var store: AnchorStore?
}

/// A database file with a table shaped like the store's `messages` (its row is a TICK).
final class AnchorStore: @unchecked Sendable {  // used by one benchmark thread at a time
    private var db: OpaquePointer?
    private var begin: OpaquePointer?
    private var insert: OpaquePointer?
    private var commit: OpaquePointer?
    private let directory: String
    private let raw: [UInt8]
    private var sequence: Int64 = 0

    init() throws {
        let base = getenv("APHERESISD_BENCH_DIR").map { String(cString: $0) }
            ?? getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/store-anchor-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("cannot create a directory in \(base)") }
        directory = String(cString: made)
        // A real TICK as the row's raw message, so the row is the size the store writes.
        let stream = try DecodeStream.build(targetSize: 1)
        raw = DecodeStream.firstMessage(ofKind: "TICK", in: stream) ?? Array(repeating: 0x41, count: 1000)

        try check(sqlite3_open("\(directory)/anchor.sqlite", &db), "open")
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = FULL")
        try execute(
            """
            CREATE TABLE messages (
                id INTEGER PRIMARY KEY,
                device_serial TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                kind TEXT NOT NULL,
                device_ts TEXT NOT NULL,
                received_at_unix_ms INTEGER NOT NULL,
                raw BLOB NOT NULL,
                UNIQUE (device_serial, sequence)
            ) STRICT
            """)
        begin = try prepare("BEGIN IMMEDIATE")
        insert = try prepare(
            "INSERT INTO messages (device_serial, sequence, kind, device_ts, received_at_unix_ms, raw) VALUES (?, ?, ?, ?, ?, ?)")
        commit = try prepare("COMMIT")
    }

    /// BEGIN, one INSERT, COMMIT: one fsynced transaction.
    func commitOneRow() {
        sequence += 1
        step(begin)
        sqlite3_bind_text(insert, 1, "1OPT00417", -1, nil)
        sqlite3_bind_int64(insert, 2, sequence)
        sqlite3_bind_text(insert, 3, "TICK", -1, nil)
        sqlite3_bind_text(insert, 4, "20261201110030", -1, nil)
        sqlite3_bind_int64(insert, 5, 1_796_000_000_000 + sequence)
        raw.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 6, $0.baseAddress, Int32($0.count), nil) }
        step(insert)
        step(commit)
    }

    func close() {
        for statement in [begin, insert, commit] { sqlite3_finalize(statement) }
        sqlite3_close(db)
        for name in ["anchor.sqlite", "anchor.sqlite-wal", "anchor.sqlite-shm"] { unlink("\(directory)/\(name)") }
        rmdir(directory)
    }

    private func step(_ statement: OpaquePointer?) {
        let result = sqlite3_step(statement)
        guard result == SQLITE_DONE else { fatalError("sqlite3_step: \(String(cString: sqlite3_errmsg(db)))") }
        sqlite3_reset(statement)
    }

    private func prepare(_ sql: String) throws -> OpaquePointer? {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v2(db, sql, -1, &statement, nil), sql)
        return statement
    }

    private func execute(_ sql: String) throws {
        try check(sqlite3_exec(db, sql, nil, nil, nil), sql)
    }

    private func check(_ result: Int32, _ what: String) throws {
        guard result == SQLITE_OK else { throw BenchError("\(what): \(String(cString: sqlite3_errmsg(db)))") }
    }
}
