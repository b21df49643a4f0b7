import Synchronization

/// The workstation's replication to the central database as the replicator last reported it
/// (docs/central.md): for the API, the metrics and the status line.
public struct CentralReplicationStatus: Sendable, Equatable {
    public enum State: String, Sendable, Equatable {
        case connecting
        /// Connected; the backlog is being sent or is empty.
        case up
        /// Not reachable or failing; retried.
        case down
        /// Reachable but refusing to replicate (the site belongs to another store, a newer
        /// schema): retried too, but someone must act.
        case refused
    }

    public var state: State = .connecting
    public var endpoint: String
    public var site: String
    public var lastError: String?
    /// Monotonic time (DaemonClock) of the last state change and of the last committed batch.
    public var since: Duration
    public var lastCommitAt: Duration?
    public var confirmedSeq: Int64 = 0
    /// Log entries not yet committed centrally.
    public var backlog: Int = 0
    public var rowsReplicated: Int = 0
    public var batchesCommitted: Int = 0
    /// Free DIN sequences this workstation holds, per "FACILITY/YY".
    public var dinReserve: [String: Int] = [:]

    public init(endpoint: String, site: String, since: Duration) {
        self.endpoint = endpoint
        self.site = site
        self.since = since
    }
}

public final class CentralReplicationBoard: Sendable {
    private let state = Mutex<CentralReplicationStatus?>(nil)

    public init() {}

    public func publish(_ status: CentralReplicationStatus) { state.withLock { $0 = status } }

    /// nil: no `[central]` configured.
    public var status: CentralReplicationStatus? { state.withLock { $0 } }
}
