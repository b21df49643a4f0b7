import Synchronization

/// What every part of the daemon reports about itself: link states and loop
/// progress for the watchdog and the STATUS line, counters for the status and,
/// later, metrics. Written from many tasks, read by a few: a mutex, not an actor,
/// so that reporting never suspends.
public final class HealthBoard: Sendable {
    public enum LinkState: String, Sendable, Equatable {
        /// Opening the link, or open without a byte from the separator yet.
        case connecting
        /// Bytes from the separator arrive on the open link.
        case up
        /// Nothing received for longer than the silence timeout: reopened, and stale until heard again.
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
        /// Monotonic time the device's receive loop last went round (the watchdog's proof of life,
        /// not a sign that the separator said anything).
        public var lastProgress: Duration?
        /// Monotonic time the last byte arrived from the separator (or the last export file was read):
        /// the only honest "last activity" of the device.
        public var lastByteAt: Duration?
        public var messagesStored = 0
        public var duplicates = 0
        public var quarantined = 0
        public var framesRejected = 0
    }

    /// The store refusing writes (full disk, read-only, I/O error): an alarm of the daemon itself.
    public struct StoreFailure: Sendable, Equatable {
        public var description: String
        /// Monotonic and wall time of the first failed write of this episode.
        public var since: Duration
        public var sinceUnixMilliseconds: Int64
        public var failedWrites: Int
    }

    public struct Snapshot: Sendable {
        public var devices: [String: Device] = [:]
        public var lastStoreWrite: Duration?
        public var storeFailure: StoreFailure?
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

    /// A write succeeded. Returns the failure episode it ends, if the store was failing.
    @discardableResult
    public func storeWrote(at now: Duration) -> StoreFailure? {
        let ended: StoreFailure? = state.withLock { snapshot in
            snapshot.lastStoreWrite = now
            let ended = snapshot.storeFailure
            snapshot.storeFailure = nil
            return ended
        }
        if let ended, let observer = storeObserver.withLock({ $0 }) { observer(nil, ended) }
        return ended
    }

    /// The store writer made progress (the watchdog's proof), without saying that writes of device
    /// data succeed: a failure episode goes on.
    public func storeAlive(at now: Duration) {
        state.withLock { $0.lastStoreWrite = now }
    }

    /// A write failed. Returns the new episode when this failure starts one (report it once), else nil.
    @discardableResult
    public func storeFailed(_ error: String, now: Duration, wallMilliseconds: Int64) -> StoreFailure? {
        let started: StoreFailure? = state.withLock {
            if var failure = $0.storeFailure {
                failure.failedWrites += 1
                failure.description = error
                $0.storeFailure = failure
                return nil
            }
            let failure = StoreFailure(description: error, since: now, sinceUnixMilliseconds: wallMilliseconds, failedWrites: 1)
            $0.storeFailure = failure
            return failure
        }
        if let started, let observer = storeObserver.withLock({ $0 }) { observer(started, nil) }
        return started
    }

    private let storeObserver = Mutex<(@Sendable (_ started: StoreFailure?, _ ended: StoreFailure?) -> Void)?>(nil)

    /// Called (outside the lock) when the store starts failing and when it recovers.
    public func observeStoreFailures(_ observer: @escaping @Sendable (_ started: StoreFailure?, _ ended: StoreFailure?) -> Void) {
        storeObserver.withLock { $0 = observer }
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
        if let failure = s.storeFailure { line += "; STORE FAILING: \(failure.description)" }
        return line
    }
}
