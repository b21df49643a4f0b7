import Foundation
import Logging
import NIOCore
import PostgresNIO
import RecordStore

/// A value of a central query's result, typed by its PostgreSQL column type, for JSON replies.
public enum CentralCell: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case bool(Bool)
}

/// A result row: column names in the query's order with their values.
public struct CentralRow: Sendable, Equatable {
    public var columns: [String]
    public var cells: [CentralCell]

    public subscript(_ name: String) -> CentralCell {
        columns.firstIndex(of: name).map { cells[$0] } ?? .null
    }
}

/// Reads of the central database over one connection, reopened after a failure. The central
/// dashboard and `apheresisctl audit verify --central` use it; it never writes.
public actor CentralReader {
    let endpoint: CentralEndpoint
    let logger: Logger
    let queryTimeout: Duration
    private var connection: PostgresConnection?
    private var connecting: Task<PostgresConnection, any Error>?

    public init(endpoint: CentralEndpoint, logger: Logger, queryTimeout: Duration = .seconds(30)) {
        self.endpoint = endpoint
        self.logger = logger
        self.queryTimeout = queryTimeout
    }

    public func close() async {
        if let connection, !connection.isClosed { try? await connection.close() }
        connection = nil
    }

    private func open() async throws -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        // Requests arriving while a connection is being made wait for that one (the actor is
        // reentrant at the await: without this, each would open its own and drop the others open).
        if let connecting { return try await connecting.value }
        let (endpoint, logger) = (self.endpoint, self.logger)
        let task = Task { try await endpoint.connect(logger: logger) }
        connecting = task
        defer { connecting = nil }
        let opened = try await task.value
        connection = opened
        return opened
    }

    /// Runs a read; a failed connection is dropped so that the next read opens a new one.
    public func rows(_ query: PostgresQuery) async throws -> [CentralRow] {
        let c = try await open()
        let logger = self.logger
        do {
            return try await CentralDeadline.run("a query", limit: queryTimeout, connection: c) {
                try await Self.collect(c.query(query, logger: logger))
            }
        } catch {
            if c.isClosed { connection = nil }
            throw error
        }
    }

    static func collect(_ sequence: PostgresRowSequence) async throws -> [CentralRow] {
        var result: [CentralRow] = []
        for try await row in sequence {
            var columns: [String] = []
            var cells: [CentralCell] = []
            for cell in row {
                columns.append(cell.columnName)
                cells.append(try Self.cell(cell))
            }
            result.append(CentralRow(columns: columns, cells: cells))
        }
        return result
    }

    static func cell(_ cell: PostgresCell) throws -> CentralCell {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .bool: return .bool(try cell.decode(Bool.self))
        default: return .text(try cell.decode(String.self))
        }
    }

    // MARK: The central view

    /// Every workstation, how long since it last spoke (server clock) and where its copy stands.
    public func workstations() async throws -> [CentralRow] {
        try await rows(
            """
            SELECT site, store_id, daemon_version,
                EXTRACT(EPOCH FROM now() - last_contact_at)::float8 AS contact_age_s,
                report_interval_ms, replicated_through,
                EXTRACT(EPOCH FROM now() - replicated_at)::float8 AS replicated_age_s, backlog
            FROM central_sites ORDER BY site
            """)
    }

    /// Every workstation's separator links, each with its latest run, that run's latest sample
    /// and its active alarms.
    public func separators() async throws -> [CentralRow] {
        try await rows(
            """
            SELECT l.site, l.name, l.link, l.state AS link_state, l.device_serial, l.activity_age_ms, l.last_error,
                EXTRACT(EPOCH FROM now() - l.reported_at)::float8 AS report_age_s,
                EXTRACT(EPOCH FROM now() - w.last_contact_at)::float8 AS workstation_contact_age_s, w.report_interval_ms,
                d.model, d.name AS device_name,
                r.local_id AS run_ref, r.run_id, r.procedure, r.state AS run_state, r.patient_id, r.weight_kg,
                s.run_time_min, s.ac_ratio, s.ac_inf_rate_ml_min_l, s.inlet_flow_ml_min, s.ac_flow_ml_min,
                s.collect_vol_ml, s.inlet_vol_ml, s.tbv_processed,
                (SELECT count(*) FROM alarms a WHERE a.site = l.site AND a.device_serial = l.device_serial
                    AND a.state <> 'cleared') AS active_alarms
            FROM central_links l
            JOIN central_sites w ON w.site = l.site
            LEFT JOIN devices d ON d.site = l.site AND d.serial = l.device_serial
            LEFT JOIN LATERAL (SELECT * FROM runs r WHERE r.site = l.site AND r.device_serial = l.device_serial
                ORDER BY r.local_id DESC LIMIT 1) r ON true
            LEFT JOIN LATERAL (SELECT * FROM samples s WHERE s.site = l.site AND s.run_ref = r.local_id
                ORDER BY s.local_id DESC LIMIT 1) s ON true
            ORDER BY l.site, l.name
            """)
    }

    public func runs(site: String?, limit: Int) async throws -> [CentralRow] {
        try await rows(
            """
            SELECT site, local_id AS run_ref, device_serial, run_id, procedure, state, patient_id, weight_kg,
                opened_at_unix_ms, closed_at_unix_ms
            FROM runs WHERE (\(site)::text IS NULL OR site = \(site)) ORDER BY opened_at_unix_ms DESC, site, local_id DESC LIMIT \(limit)
            """)
    }

    public func samples(site: String, runRef: Int64, limit: Int) async throws -> [CentralRow] {
        try await rows(
            """
            SELECT local_id AS sample_ref, device_ts, run_time_min, inlet_vol_ml, ac_vol_ml, ac_to_patient_ml, collect_vol_ml,
                inlet_flow_ml_min, ac_flow_ml_min, ac_ratio, ac_inf_rate_ml_min_l, tbv_processed
            FROM samples WHERE site = \(site) AND run_ref = \(runRef) ORDER BY local_id LIMIT \(limit)
            """)
    }

    public func alarms(activeOnly: Bool, limit: Int) async throws -> [CentralRow] {
        try await rows(
            """
            SELECT site, local_id AS alarm_ref, device_serial, run_ref, code, level, state, value, limit_value, unit, message,
                raised_at_unix_ms, acknowledged_by, acknowledged_at_unix_ms, cleared_at_unix_ms
            FROM alarms WHERE (NOT \(activeOnly) OR state <> 'cleared') ORDER BY raised_at_unix_ms DESC, site LIMIT \(limit)
            """)
    }

    public func products(limit: Int) async throws -> [CentralRow] {
        try await rows(
            """
            SELECT site, local_id AS product_ref, din, facility, din_year, din_sequence, product_name, collected_volume_m3,
                collected_at_unix_ms, created_at_unix_ms, created_by
            FROM products ORDER BY created_at_unix_ms DESC, site LIMIT \(limit)
            """)
    }

    /// A site's copy of `tables`, in one snapshot, as the workstation's rows (for checking the
    /// audit trail with the workstation's own verifier), and the log entry it is complete through.
    public func siteCopy(site: String, tables: [String]) async throws -> (rows: [ReplicatedRow], replicatedThrough: Int64?) {
        let c = try await open()
        let logger = self.logger
        do {
            // A whole site's trail: more time than one query.
            return try await CentralDeadline.run("reading site \(site)'s copy", limit: queryTimeout * 10, connection: c) {
                try await Self.readCopy(c, site: site, tables: tables, logger: logger)
            }
        } catch {
            if c.isClosed { connection = nil }
            throw error
        }
    }

    private static func readCopy(_ c: PostgresConnection, site: String, tables: [String], logger: Logger) async throws
        -> (rows: [ReplicatedRow], replicatedThrough: Int64?)
    {
        try await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
        do {
            var result: [ReplicatedRow] = []
            var through: Int64?
            for try await value in try await c.query(
                "SELECT replicated_through FROM central_sites WHERE site = \(site)", logger: logger
            ).decode(Int64.self) {
                through = value
            }
            for table in tables {
                let sequence = try await c.query(
                    PostgresQuery(unsafeSQL: "SELECT * FROM \(table) WHERE site = $1 ORDER BY local_id", binds: Self.binds([site])),
                    logger: logger)
                for try await row in sequence {
                    var columns: [String] = []
                    var values: [ReplicatedValue] = []
                    var rowID: Int64 = 0
                    for cell in row {
                        switch cell.columnName {
                        case "site": continue
                        case "local_id": rowID = try cell.decode(Int64.self)
                        default:
                            columns.append(cell.columnName)
                            values.append(try Self.replicated(cell))
                        }
                    }
                    result.append(ReplicatedRow(table: table, rowID: rowID, columns: columns, values: values))
                }
            }
            try await c.query("COMMIT", logger: logger)
            return (result, through)
        } catch {
            if !c.isClosed { _ = try? await c.query("ROLLBACK", logger: logger) }
            throw error
        }
    }

    static func binds(_ texts: [String]) -> PostgresBindings {
        var binds = PostgresBindings()
        for text in texts { binds.append(text) }
        return binds
    }

    static func replicated(_ cell: PostgresCell) throws -> ReplicatedValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .bytea:
            let buffer = try cell.decode(ByteBuffer.self)
            return .blob(Array(buffer.readableBytesView))
        default: return .text(try cell.decode(String.self))
        }
    }
}
