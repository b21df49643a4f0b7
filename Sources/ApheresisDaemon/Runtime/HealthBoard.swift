import Synchronization

/// What every part of the daemon reports about itself: link states and loop
/// progress for the watchdog and the STATUS line, counters for the status and,
/// later, metrics. Written from many tasks, read by a few: a mutex, not an actor,
/// so that reporting never suspends.
public final class HealthBoard: Sendable {
    public enum LinkState: String, Sendable, Equatable {
        /// Opening the link for the first time.
        case connecting
        case up
        /// Connected, but nothing received for longer than the silence timeout; reopening.
        case stale
        /// Lost or not openable.
        case down
        /// Opening again after a loss.
        case reconnecting
    }

    public struct Device: Sendable, Equatable {
        public var name: String
        public var link: String
        public var state: LinkState = .connecting
        public var reconnects = 0
        public var lastError: String?
        public var serialNumber: String?
        /// Monotonic time the device's receive loop last went round.
        public var lastProgress: Duration?
        public var messagesStored = 0
        public var duplicates = 0
        public var quarantined = 0
        public var framesRejected = 0
    }

    public struct Snapshot: Sendable {
        public var devices: [String: Device] = [:]
        public var lastStoreWrite: Duration?
        public var storeError: String?
        public var openRuns = 0
        public var activeAlarms = 0
    }

    private let state = Mutex(Snapshot())
    private let linkObserver = Mutex<(@Sendable (String, LinkState) -> Void)?>(nil)

    /// Called (outside the lock) whenever a device's link state changes.
    public func observeLinkChanges(_ observer: @escaping @Sendable (String, LinkState) -> Void) {
        linkObserver.withLock { $0 = observer }
    }

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    public func register(_ name: String, link: String) {
        state.withLock { $0.devices[name] = Device(name: name, link: link) }
    }

    public func update(_ name: String, _ change: (inout Device) -> Void) {
        let changed: LinkState? = state.withLock { snapshot in
            guard var device = snapshot.devices[name] else { return nil }
            let before = device.state
            change(&device)
            snapshot.devices[name] = device
            return device.state != before ? device.state : nil
        }
        if let changed, let observer = linkObserver.withLock({ $0 }) { observer(name, changed) }
    }

    public func loopProgressed(_ name: String, at now: Duration) {
        update(name) { $0.lastProgress = now }
    }

    public func storeWrote(at now: Duration) {
        state.withLock {
            $0.lastStoreWrite = now
            $0.storeError = nil
        }
    }

    public func storeFailed(_ error: String) {
        state.withLock { $0.storeError = error }
    }

    public func setTotals(openRuns: Int, activeAlarms: Int) {
        state.withLock {
            $0.openRuns = openRuns
            $0.activeAlarms = activeAlarms
        }
    }

    /// Whether every receive loop and the store writer have made progress
    /// within `window`: the condition for WATCHDOG=1.
    public func isHealthy(now: Duration, window: Duration) -> Bool {
        let s = snapshot
        guard let store = s.lastStoreWrite, now - store <= window else { return false }
        for device in s.devices.values {
            guard let progress = device.lastProgress, now - progress <= window else { return false }
        }
        return true
    }

    /// One line for systemd's STATUS=.
    public var statusLine: String {
        let s = snapshot
        let up = s.devices.values.filter { $0.state == .up }.count
        let stored = s.devices.values.reduce(0) { $0 + $1.messagesStored }
        var line = "\(s.devices.count) device(s), \(up) up; \(s.openRuns) run(s) open; \(s.activeAlarms) alarm(s) active; \(stored) message(s) stored"
        if let error = s.storeError { line += "; STORE FAILING: \(error)" }
        return line
    }
}
