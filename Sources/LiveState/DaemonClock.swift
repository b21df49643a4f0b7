import Foundation

/// The daemon's two clocks. Durations (staleness, timeouts, backoff) are
/// measured on the monotonic clock; the wall clock is recorded beside what
/// happened, never used to measure it. The device's own clock is only recorded.
public enum DaemonClock {
    private static let origin = ContinuousClock.now

    /// Monotonic time since the daemon started.
    public static var monotonic: Duration { ContinuousClock.now - origin }

    /// Wall clock, Unix milliseconds (UTC).
    public static var wallMilliseconds: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}

extension Duration {
    /// The duration in seconds, for figures and logs (never for comparing durations).
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
