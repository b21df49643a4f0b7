import LiveState
import Logging
import RecordStore
import ServiceLifecycle
import SystemdSupport

/// Talks to systemd: READY=1 once the store is open and every link's loop has
/// started, STATUS= a one-line summary, WATCHDOG=1 only while every receive
/// loop and the store writer are making progress, STOPPING=1 first thing on
/// shutdown. Listed last in the service group, so it is the first to hear of
/// shutdown (ServiceGroup stops services in reverse order).
///
/// Notifications never block (SystemdNotifier): a manager that stops reading
/// costs dropped datagrams, never a thread, and never the reaction to SIGTERM.
final class SystemdService: Service, Sendable {
    let notifier: SystemdNotifier
    let health: HealthBoard
    let logger: Logger

    init(notifier: SystemdNotifier, health: HealthBoard, logger: Logger) {
        self.notifier = notifier
        self.health = health
        self.logger = logger
    }

    /// How often to look, and how recent progress must be, for a watchdog interval.
    static func cadence(watchdog: Duration?) -> (tick: Duration, window: Duration) {
        guard let watchdog else { return (.seconds(2), .seconds(30)) }
        return (min(max(watchdog / 4, .milliseconds(100)), .seconds(5)), watchdog / 2)
    }

    func run() async throws {
        let (tick, window) = Self.cadence(watchdog: notifier.watchdogInterval)
        // "Links started": every device loop has gone round once (a link that
        // cannot connect does not hold READY back: its loop still runs).
        let start = DaemonClock.monotonic
        while !Task.isCancelledOrShuttingDown, DaemonClock.monotonic - start < .seconds(5) {
            let s = health.snapshot
            if s.lastStoreWrite != nil, s.devices.values.allSatisfy({ $0.lastProgress != nil }) { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        var lastStatus = health.statusLine
        notifier.ready(status: lastStatus)
        let watchdog = notifier.watchdogInterval.map { "WATCHDOG=1 while healthy, timeout \($0)" } ?? "no systemd watchdog"
        logger.notice("ready: \(lastStatus); \(watchdog)")
        var withholding = false
        await withGracefulShutdownHandler {
            while !Task.isCancelledOrShuttingDown {
                let now = DaemonClock.monotonic
                if notifier.watchdogInterval != nil {
                    let healthy = health.isHealthy(now: now, window: window)
                    if healthy { notifier.watchdog() }
                    if healthy == withholding {
                        withholding = !healthy
                        if withholding {
                            logger.error("withholding WATCHDOG=1: a receive loop or the store writer has made no progress in \(window)")
                        } else {
                            logger.notice("progress again: WATCHDOG=1 resumed")
                        }
                    }
                }
                let status = health.statusLine
                if status != lastStatus {
                    notifier.status(status)
                    lastStatus = status
                } else {
                    // A full queue held READY or the status back: sent once there is room.
                    notifier.resendHeldBack()
                }
                // Ends at once on shutdown: this service is the first the group waits for.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: tick) }
            }
        } onGracefulShutdown: {
            self.notifier.stopping(status: "stopping: finishing messages in flight")
        }
    }
}

/// Proves the store writer is alive: a small write transaction at a steady
/// pace. A store that is locked or stuck stops these, and with them WATCHDOG=1.
final class StoreHeartbeatService: Service, Sendable {
    let pipelineStore: RecordStore
    let health: HealthBoard
    let interval: Duration
    let logger: Logger

    init(store: RecordStore, health: HealthBoard, interval: Duration, logger: Logger) {
        pipelineStore = store
        self.health = health
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            do {
                let totals = try await pipelineStore.heartbeat(atUnixMilliseconds: DaemonClock.wallMilliseconds)
                health.storeWrote(at: DaemonClock.monotonic)
                health.setTotals(openRuns: totals.openRuns, activeAlarms: totals.activeAlarms)
            } catch {
                // The journal line, stream event and alarm come once per episode (StoreFailureReporter),
                // in plain words: the class of failure, not SQLite's text.
                let failure = pipelineStore.failure(of: error)
                health.storeFailed(failure.description, now: DaemonClock.monotonic, wallMilliseconds: DaemonClock.wallMilliseconds)
                switch failure {
                case .full:
                    // Below the reserve the store still proves it is alive (one row, from the reserve):
                    // a full disk is an alarm to show, not a reason for systemd to restart the daemon
                    // again and again. The alarm stays until a write outside the reserve succeeds.
                    if (try? await pipelineStore.heartbeat(atUnixMilliseconds: DaemonClock.wallMilliseconds, usingReserve: true)) != nil {
                        health.storeAlive(at: DaemonClock.monotonic)
                    }
                case .readOnly, .ioError:
                    // The writer answered at once: alive. A restart would not mend the disk and would
                    // take the alarm off the screens; the watchdog is for a writer that hangs.
                    health.storeAlive(at: DaemonClock.monotonic)
                case .other:
                    // Locked by another process or stuck: no proof of progress, the watchdog decides.
                    break
                }
            }
            // Ends at once on shutdown, rather than a whole interval later.
            try? await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
        }
    }
}
