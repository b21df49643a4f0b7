import Synchronization

/// What the daemon's senders to the hospital's interface engine know now and the store does not:
/// whether each destination's connection is up, since when (monotonic), the last error, and what
/// the receivers answered. The queue itself (backlog, set aside) is the store's (`hl7Status`).
public final class HL7LinkBoard: Sendable {
    public enum State: String, Sendable, Equatable {
        /// Connecting (or waiting to connect again after a failure).
        case connecting
        /// Connected: messages go out and are answered.
        case up
        /// The last connection attempt or exchange failed; retried after the retry delay.
        case down
    }

    public struct Destination: Sendable, Equatable {
        public var name: String
        public var address: String
        public var state: State = .connecting
        /// Monotonic time of the last state change.
        public var since: Duration
        public var lastError: String?
        /// Monotonic time of the last accept acknowledgement.
        public var lastAcceptedAt: Duration?
        /// Answers received, by acknowledgement code (AA, AE, AR, CA, CE, CR), and sends that got none.
        public var answers: [String: Int] = [:]
        public var unanswered = 0
        public var connects = 0
    }

    private let state = Mutex<[String: Destination]>([:])

    public init() {}

    public func register(_ name: String, address: String, now: Duration) {
        state.withLock { $0[name] = Destination(name: name, address: address, since: now) }
    }

    public func update(_ name: String, _ change: (inout Destination) -> Void) {
        state.withLock { all in
            guard var destination = all[name] else { return }
            change(&destination)
            all[name] = destination
        }
    }

    /// Sets the state, keeping `since` when it does not change.
    public func set(_ name: String, _ newState: State, now: Duration, error: String? = nil) {
        update(name) { d in
            if d.state != newState {
                d.state = newState
                d.since = now
            }
            if let error { d.lastError = error } else if newState == .up { d.lastError = nil }
        }
    }

    public var destinations: [Destination] { state.withLock { $0.values.sorted { $0.name < $1.name } } }
}
