import Foundation
import Hummingbird
import LiveState
import RecordStore

/// `GET /api/v1/central`: this workstation's replication to the central database (docs/central.md).
/// 404 when no `[central]` is configured.
struct CentralStatusRoute: Sendable {
    let board: CentralReplicationBoard
    let store: RecordStore
    let monotonicNow: @Sendable () -> Duration

    struct StatusJSON: Encodable {
        var site: String
        var endpoint: String
        /// connecting, up, down, refused.
        var state: String
        var stateAgeSeconds: Double
        var lastError: String?
        /// Log entries committed in the central database, and those still waiting.
        var confirmedLogEntry: Int64
        var backlog: Int
        var lastCommitAgeSeconds: Double?
        var rowsReplicated: Int
        var batchesCommitted: Int
        /// Free DIN sequences in this workstation's central blocks, per "facility/year".
        var dinReserve: [String: Int]
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("api/v1/central") { _, _ in await self.status() }
    }

    func status() async -> Response {
        guard let s = board.status else {
            return Reply.failure(.notFound, code: "central_not_configured", "no [central] database is configured on this workstation (docs/central.md)")
        }
        let now = monotonicNow()
        // The backlog as the store has it now, not as the replicator last saw it (it may be
        // waiting to reconnect while the log grows).
        let backlog: Int
        do { backlog = try await store.replicationState().backlog } catch {
            return InternalFailure.reply(error, status: .serviceUnavailable, what: "the record store could not be read")
        }
        return Reply.json(
            StatusJSON(
                site: s.site, endpoint: s.endpoint, state: s.state.rawValue, stateAgeSeconds: (now - s.since).seconds,
                lastError: s.lastError, confirmedLogEntry: s.confirmedSeq, backlog: backlog,
                lastCommitAgeSeconds: s.lastCommitAt.map { (now - $0).seconds }, rowsReplicated: s.rowsReplicated,
                batchesCommitted: s.batchesCommitted, dinReserve: s.dinReserve))
    }
}
