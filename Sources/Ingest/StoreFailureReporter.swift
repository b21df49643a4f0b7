import Foundation
import Logging
import LiveState
import RecordStore

/// A store that refuses writes (full disk, read-only, I/O errors) is an alarm of the daemon itself:
/// one journal line when it starts and one when it ends, a `store` event on the live stream, the
/// alarm in the API and on the dashboard (HealthBoard), a metric. The device is not answered
/// meanwhile, so it keeps every unstored message and sends it again. When writes succeed again the
/// episode is written into the record as two events, at their own times.
public struct StoreFailureReporter: Sendable {
    let store: RecordStore
    let feed: LiveFeed
    let logger: Logger

    public init(store: RecordStore, feed: LiveFeed, logger: Logger) {
        self.store = store
        self.feed = feed
        self.logger = logger
    }

    public func watch(_ health: HealthBoard) {
        let store = self.store
        let feed = self.feed
        let logger = self.logger
        health.observeStoreFailures { started, ended in
            if let started {
                let message = StoreAlarm.message(started.description, path: store.path)
                Self.tell(.critical, "raised", state: "failing", message: message, episode: started, logger: logger, feed: feed)
            }
            if let ended {
                // Measured on the monotonic clock: a wall clock step during the episode must not change it.
                let seconds = (DaemonClock.monotonic - ended.since).seconds
                let message =
                    "The record store takes writes again after \(String(format: "%.0f", seconds)) s and \(ended.failedWrites) refused write(s); the separator resends what was not acknowledged."
                Self.tell(.notice, "cleared", state: "ok", message: message, episode: ended, logger: logger, feed: feed)
                Task {
                    do {
                        try await store.recordEvent(
                            kind: "store_failed", deviceSerial: nil, detail: ended.description, atUnixMilliseconds: ended.sinceUnixMilliseconds,
                            usingReserve: true)
                        try await store.recordEvent(
                            kind: "store_recovered", deviceSerial: nil, detail: message, atUnixMilliseconds: DaemonClock.wallMilliseconds,
                            usingReserve: true)
                    } catch {
                        logger.error("cannot record the store failure that just ended: \(error)")
                    }
                }
            }
        }
    }

    /// One edge of an episode: its journal line and its `store` stream event.
    static func tell(
        _ level: Logger.Level, _ transition: String, state: String, message: String, episode: HealthBoard.StoreFailure,
        logger: Logger, feed: LiveFeed
    ) {
        logger.log(
            level: level, "\(transition) \(StoreAlarm.code): \(message)",
            metadata: ["alarm_code": "\(StoreAlarm.code)", "alarm_level": "alarm", "alarm_transition": "\(transition)"])
        feed.publish(
            .store(
                StreamEvent.Store(
                    state: state, message: message, since: date(episode.sinceUnixMilliseconds), failedWrites: episode.failedWrites,
                    at: Date())))
    }

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
}
