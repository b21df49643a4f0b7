import Foundation
import Logging
import PostgresNIO
import LiveState
import RecordStore

public struct ReplicatorSettings: Sendable {
    public var endpoint: CentralEndpoint
    public var site: String
    public var batchRows: Int
    /// Pause when the log is empty.
    public var idleDelay: Duration
    public var retryDelay: Duration
    /// Link reports and "last contact".
    public var reportInterval: Duration
    /// DIN blocks kept in reserve: a new block when fewer than half of one are free.
    public var dinBlockSize: Int
    public var dinFacilities: [String]
    public var daemonVersion: String
    /// The longest one exchange (a batch, a report, a block) may take before the connection is
    /// dropped and made again.
    public var operationTimeout: Duration

    public init(
        endpoint: CentralEndpoint, site: String, batchRows: Int = 500, idleDelay: Duration = .milliseconds(500),
        retryDelay: Duration = .seconds(5), reportInterval: Duration = .seconds(2), dinBlockSize: Int = 20,
        dinFacilities: [String], daemonVersion: String, operationTimeout: Duration = .seconds(30)
    ) {
        self.operationTimeout = operationTimeout
        self.endpoint = endpoint
        self.site = site
        self.batchRows = batchRows
        self.idleDelay = idleDelay
        self.retryDelay = retryDelay
        self.reportInterval = reportInterval
        self.dinBlockSize = dinBlockSize
        self.dinFacilities = dinFacilities
        self.daemonVersion = daemonVersion
    }
}

/// Copies the workstation's replication log into the central database, in order, one batch per
/// transaction, until cancelled. It only reads the store's snapshot and deletes confirmed log
/// entries: an outage of the central database, of any length, only grows the log; the
/// separator's side (receive, commit, ACK) never waits for it.
public final class CentralReplicator: Sendable {
    let store: RecordStore
    let settings: ReplicatorSettings
    let links: @Sendable () -> [DeviceLinkReport]
    let board: CentralReplicationBoard
    let clock: @Sendable () -> Duration
    let wallMilliseconds: @Sendable () -> Int64
    let logger: Logger

    public init(
        store: RecordStore, settings: ReplicatorSettings, links: @escaping @Sendable () -> [DeviceLinkReport],
        board: CentralReplicationBoard, clock: @escaping @Sendable () -> Duration,
        wallMilliseconds: @escaping @Sendable () -> Int64, logger: Logger
    ) {
        self.store = store
        self.settings = settings
        self.links = links
        self.board = board
        self.clock = clock
        self.wallMilliseconds = wallMilliseconds
        self.logger = logger
    }

    public func run() async {
        var status = CentralReplicationStatus(endpoint: settings.endpoint.description, site: settings.site, since: clock())
        board.publish(status)
        var loggedFailure: String?
        while !Task.isCancelled {
            do {
                try await session(&status)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                let text = CentralErrorText.describe(error)
                let refused = (error as? CentralError).map { if case .cursorMoved = $0 { false } else { true } } ?? false
                let newState: CentralReplicationStatus.State = refused ? .refused : .down
                if status.state != newState { status.since = clock() }
                status.state = newState
                status.lastError = text
                if let state = try? await store.replicationState() {
                    status.backlog = state.backlog
                    status.confirmedSeq = state.confirmedSeq
                }
                board.publish(status)
                // Once per distinct failure, not once per retry.
                if loggedFailure != text {
                    logger.error("central database \(settings.endpoint.description): \(text); retrying every \(settings.retryDelay)")
                    loggedFailure = text
                }
                try? await Task.sleep(for: settings.retryDelay)
            }
        }
    }

    private func session(_ status: inout CentralReplicationStatus) async throws {
        let connection = try await settings.endpoint.connect(logger: logger)
        do {
            try await replicate(over: connection, &status)
        } catch {
            if !connection.isClosed { try? await connection.close() }
            throw error
        }
        if !connection.isClosed { try? await connection.close() }
    }

    private func replicate(over connection: PostgresConnection, _ status: inout CentralReplicationStatus) async throws {
        let limit = settings.operationTimeout
        let logger = self.logger
        let applied = try await CentralDeadline.run("schema migration", limit: limit, connection: connection) {
            try await CentralSchema.migrate(connection, logger: logger)
        }
        if !applied.isEmpty { logger.notice("central database schema migrated: applied version(s) \(applied)") }
        let central = CentralSite(connection: connection, site: settings.site, logger: logger)
        let local = try await store.replicationState()
        let reportMilliseconds = Int64(settings.reportInterval.components.seconds * 1000)
            + settings.reportInterval.components.attoseconds / 1_000_000_000_000_000
        let version = settings.daemonVersion
        var cursor = try await CentralDeadline.run("registering the site", limit: limit, connection: connection) {
            try await central.register(storeID: local.storeID, daemonVersion: version, reportIntervalMilliseconds: reportMilliseconds)
        }
        if cursor < local.confirmedSeq {
            // The central database no longer has what it confirmed (restored from an older backup):
            // everything goes again; the rows it still has are rewritten unchanged.
            let requeued = try await store.requeueEverythingForReplication(centralCursor: cursor)
            logger.warning(
                "the central database's cursor for site \(settings.site) is at entry \(cursor), behind the \(local.confirmedSeq) it confirmed before: it lost rows; sending all \(requeued) rows again")
        } else if cursor > local.confirmedSeq {
            // Past every entry this store ever logged: not a stop between two commits, but a store
            // restored from a backup (its log numbers start again below the central cursor).
            let logged = try await store.replicationLogHighWater()
            guard cursor <= logged else { throw CentralError.centralAheadOfStore(site: settings.site, central: cursor, logged: logged) }
            // Committed centrally, not yet confirmed here (stopped between the two): confirm now.
            try await store.confirmReplication(through: cursor, atUnixMilliseconds: wallMilliseconds())
        }
        let marks = try await store.dinHighWaters()
        try await CentralDeadline.run("reporting DIN high-water marks", limit: limit, connection: connection) {
            try await central.reportDINHighWaters(marks)
        }
        try await topUpDINBlocks(central, &status)
        status.state = .up
        status.since = clock()
        status.lastError = nil
        status.confirmedSeq = cursor
        // What waits now, not the default of a fresh status: "up, backlog 0" must mean caught up.
        status.backlog = try await store.replicationState().backlog
        board.publish(status)
        logger.notice("replicating to the central database \(settings.endpoint.description) as site \(settings.site), from log entry \(cursor)")
        var lastReport: Duration? = nil
        var lastDINCheck = clock()
        while !Task.isCancelled {
            let now = clock()
            if lastReport.map({ now - $0 >= settings.reportInterval }) ?? true {
                let backlog = try await store.replicationState().backlog
                let reports = links()
                try await CentralDeadline.run("reporting the links", limit: limit, connection: connection) {
                    try await central.report(links: reports, backlog: backlog)
                }
                lastReport = now
            }
            if now - lastDINCheck >= .seconds(10) {
                try await topUpDINBlocks(central, &status)
                lastDINCheck = now
            }
            let batch = try await store.replicationBatch(after: cursor, limit: settings.batchRows)
            if batch.throughSeq == cursor {
                status.backlog = 0
                board.publish(status)
                try await Task.sleep(for: settings.idleDelay)
                continue
            }
            let from = cursor
            try await CentralDeadline.run("a batch of \(batch.rows.count) rows", limit: limit, connection: connection) {
                try await central.apply(batch, from: from)
            }
            cursor = batch.throughSeq
            try await store.confirmReplication(through: cursor, atUnixMilliseconds: wallMilliseconds())
            status.confirmedSeq = cursor
            status.backlog = batch.backlogAfter
            status.rowsReplicated += batch.rows.count
            status.batchesCommitted += 1
            status.lastCommitAt = clock()
            board.publish(status)
        }
    }

    /// A DIN's year is its collection's local year: in December the next year's blocks are wanted
    /// too, and in January the last year's (a product made on 2 January of a run on 31 December).
    static func dinYears(atUnixMilliseconds at: Int64) -> [Int] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let date = Date(timeIntervalSince1970: Double(at) / 1000)
        let (year, month) = (calendar.component(.year, from: date), calendar.component(.month, from: date))
        var years = [year % 100]
        if month == 12 { years.append((year + 1) % 100) }
        if month == 1 { years.insert((year + 99) % 100, at: 0) }
        return years
    }

    /// Keeps at least half a block of DIN sequences in reserve for the years products may be made for, so that
    /// products can be made while the central database is away.
    private func topUpDINBlocks(_ central: CentralSite, _ status: inout CentralReplicationStatus) async throws {
        for facility in settings.dinFacilities {
            for dinYear in Self.dinYears(atUnixMilliseconds: wallMilliseconds()) {
                var reserve = try await store.dinSequencesInReserve(facility: facility, dinYear: dinYear)
                while reserve < max(1, settings.dinBlockSize / 2) {
                    let size = settings.dinBlockSize
                    let reserved = try await CentralDeadline.run("reserving a DIN block", limit: settings.operationTimeout, connection: central.connection) {
                        try await central.reserveDINBlock(facility: facility, dinYear: dinYear, size: size)
                    }
                    guard let block = reserved else {
                        // Not a reason to stop replicating: products are refused, with their reason, when the blocks run out.
                        logger.error("\(CentralError.dinAllocationExhausted(facility: facility, year: dinYear))")
                        break
                    }
                    try await store.addDINBlock(
                        facility: facility, dinYear: dinYear, firstSequence: block.first, lastSequence: block.last,
                        centralBlockID: block.id, atUnixMilliseconds: wallMilliseconds())
                    logger.info("DIN block \(block.first)...\(block.last) of \(facility)/\(String(format: "%02d", dinYear)) reserved for this workstation")
                    reserve = try await store.dinSequencesInReserve(facility: facility, dinYear: dinYear)
                }
                status.dinReserve["\(facility)/\(String(format: "%02d", dinYear))"] = reserve
            }
        }
    }
}
