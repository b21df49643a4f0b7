/// A step of the wall clock: how far it moved beyond (or short of) the monotonic clock between two
/// looks. NTP stepping the clock, a person setting it, a VM resumed with a stale clock: every wall
/// time the daemon records after it is offset, so it is said once, in the journal and in the store.
public struct WallClockStep: Sendable, Equatable {
    /// Signed: positive when the wall clock jumped forwards.
    public var stepSeconds: Double
    public var wallBeforeUnixMilliseconds: Int64
    public var wallAfterUnixMilliseconds: Int64
}

/// Compares each look at both clocks with the previous one. A slewing clock (NTP's adjtime, at most
/// 500 ppm) moves half a millisecond per second against the monotonic clock, far below the threshold;
/// sleeping late moves both clocks alike, so it is no step either.
public struct WallClockStepDetector: Sendable {
    public let threshold: Duration
    private var last: (wallMilliseconds: Int64, monotonic: Duration)?

    public init(threshold: Duration = .seconds(1)) {
        self.threshold = threshold
    }

    public mutating func observe(wallMilliseconds: Int64, monotonic: Duration) -> WallClockStep? {
        defer { last = (wallMilliseconds, monotonic) }
        guard let last else { return nil }
        let wallAdvance = Duration.milliseconds(wallMilliseconds - last.wallMilliseconds)
        let step = wallAdvance - (monotonic - last.monotonic)
        guard step > threshold || step < .zero - threshold else { return nil }
        return WallClockStep(
            stepSeconds: step.seconds, wallBeforeUnixMilliseconds: last.wallMilliseconds,
            wallAfterUnixMilliseconds: wallMilliseconds)
    }
}
