import Foundation
import LiveState
import Logging
import RecordStore
import ServiceLifecycle

/// Looks at the wall clock against the monotonic one every second and reports a step
/// (WallClockStepDetector): a warning in the journal and a `wall_clock_step` event in the store, so
/// whoever reads wall times recorded around it knows they are offset. Durations, staleness and
/// timeouts are measured on the monotonic clock and are not affected.
final class WallClockWatchService: Service, Sendable {
    let store: RecordStore
    let logger: Logger
    let interval: Duration

    init(store: RecordStore, logger: Logger, interval: Duration = .seconds(1)) {
        self.store = store
        self.logger = logger
        self.interval = interval
    }

    func run() async throws {
        var detector = WallClockStepDetector()
        while !Task.isCancelledOrShuttingDown {
            if let step = detector.observe(wallMilliseconds: DaemonClock.wallMilliseconds, monotonic: DaemonClock.monotonic) {
                await report(step)
            }
            try? await cancelWhenGracefulShutdown { [interval] in try await Task.sleep(for: interval) }
        }
    }

    static func describe(_ step: WallClockStep) -> String {
        let signed = (step.stepSeconds >= 0 ? "+" : "") + String(format: "%.1f", step.stepSeconds)
        return "wall clock stepped by \(signed) s (durations, staleness and timeouts use the monotonic clock and are unaffected; wall times recorded from now on are offset)"
    }

    static func detail(_ step: WallClockStep) -> String {
        "{\"step_s\":\(String(format: "%.3f", step.stepSeconds)),\"wall_before_unix_ms\":\(step.wallBeforeUnixMilliseconds),"
            + "\"wall_after_unix_ms\":\(step.wallAfterUnixMilliseconds)}"
    }

    private func report(_ step: WallClockStep) async {
        logger.warning("\(Self.describe(step))")
        do {
            try await store.recordEvent(
                kind: "wall_clock_step", deviceSerial: nil, detail: Self.detail(step),
                atUnixMilliseconds: step.wallAfterUnixMilliseconds)
        } catch {
            logger.error("wall clock step not stored (\(error)); it is only in this journal")
        }
    }
}
