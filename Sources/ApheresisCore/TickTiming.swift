import Quantities
import SeparatorProtocol

/// The device's timing in one run: its clock checked against RUN_TIME and the daemon's clock, its
/// TICK period learned (for staleness) and its clock's spacing of TICKs (for gaps).
struct TickTiming: Sendable {
    /// The previous TICK (or RUN_START), for the clock check.
    struct ClockReference: Sendable {
        var deviceTimestamp: DeviceTimestamp
        var receivedAt: Duration
        var runTime: Seconds?
    }

    /// How the clocks moved since the previous sample.
    struct Advance: Sendable {
        var device: Seconds?
        var runTime: Seconds?
        /// Set when the device clock jumped.
        var jump: DataQualityFlag?
    }

    /// The TICK period the staleness check uses: learned from the spacing of
    /// the device's TICKs, else the profile's expectation.
    private(set) var tickInterval: Seconds
    /// When the daemon last received a TICK (or the start).
    private var lastTickReceivedAt: Duration
    /// Nil before the first message of a run watched without RUN_START.
    private var reference: ClockReference?
    private var tickIntervalObservations: [Seconds] = []
    /// Device clock advances between TICKs, unbounded (a non-conforming device
    /// may tick every 5 min): the clock check's reference when RUN_TIME is missing.
    private var deviceSpacingObservations: [Seconds] = []

    /// A device clock advance that differs by more than this from every
    /// honest reference (RUN_TIME, the daemon's clock) is a clock jump.
    static let clockJumpTolerance = Seconds(60)
    /// Learned tick intervals outside (0, 120] s are not a TICK period
    /// (the interface allows 1-60 s).
    static let plausibleTickInterval = Seconds(120)
    static let tickIntervalSamples = 9
    /// The interface sends a TICK every 1-60 s.
    static let longestContractTickInterval = Seconds(60)
    static let spacingSamplesForGaps = 3

    init(expectedTickInterval: Seconds, reference: ClockReference?, receivedAt: Duration) {
        self.tickInterval = expectedTickInterval
        self.reference = reference
        self.lastTickReceivedAt = receivedAt
    }

    static func seconds(_ d: Duration) -> Seconds {
        let c = d.components
        return Seconds(Double(c.seconds) + Double(c.attoseconds) * 1e-18)
    }

    /// How long no TICK has come, at `now`.
    func silence(at now: Duration) -> Seconds { Self.seconds(now - lastTickReceivedAt) }

    mutating func tickReceived(at receivedAt: Duration) { lastTickReceivedAt = receivedAt }

    /// Checks a sample's device clock against the previous sample (none before the first message
    /// of a run watched without RUN_START), and makes the sample the reference.
    mutating func check(deviceTimestamp: DeviceTimestamp, receivedAt: Duration, runTime: Seconds?) -> Advance {
        var advance = Advance()
        if let reference {
            let device = Seconds(Double(deviceTimestamp.secondsSinceEpoch - reference.deviceTimestamp.secondsSinceEpoch))
            let received = Self.seconds(receivedAt - reference.receivedAt)
            if let now = runTime, let before = reference.runTime { advance.runTime = now - before }
            if Self.isClockJump(device: device, runTime: advance.runTime, received: received, spacing: deviceSpacing) {
                advance.jump = .clockJump(deviceAdvance: device, runTimeAdvance: advance.runTime, receivedAdvance: received)
            }
            advance.device = device
        }
        // A sample without RUN_TIME leaves no RUN_TIME reference: the next
        // advance would otherwise span two samples against one device step.
        reference = ClockReference(deviceTimestamp: deviceTimestamp, receivedAt: receivedAt, runTime: runTime)
        return advance
    }

    /// A backwards device clock is always a jump. Forwards, the device clock
    /// must agree with at least one honest reference: RUN_TIME (stops in a
    /// pause) or the daemon's clock (late when messages were queued behind a
    /// pulled cable or a lost ACK). Without RUN_TIME the daemon's clock alone
    /// cannot tell a jump from messages delivered faster than real time (a
    /// backlog, a replayed export, a fast simulator), so the device's own TICK
    /// spacing is the second reference then.
    static func isClockJump(device: Seconds, runTime: Seconds?, received: Seconds, spacing: Seconds) -> Bool {
        if device.value < 0 { return true }
        let offReceived = abs(device.value - received.value) > clockJumpTolerance.value
        if let runTime { return offReceived && abs(device.value - runTime.value) > clockJumpTolerance.value }
        return offReceived && abs(device.value - spacing.value) > clockJumpTolerance.value
    }

    /// Learns the TICK period and the device clock's spacing from a TICK's advance.
    mutating func learn(_ advance: Advance) {
        learnTickInterval(deviceAdvance: advance.jump == nil ? advance.device : nil, runTimeAdvance: advance.runTime)
        learnSpacing(deviceAdvance: advance.device)
    }

    /// The device's usual spacing of TICKs on its own clock: the lower median of the last few
    /// advances (one jump among them does not move it); before any, the interface's longest
    /// TICK period.
    private var deviceSpacing: Seconds {
        guard !deviceSpacingObservations.isEmpty else { return Self.longestContractTickInterval }
        let sorted = deviceSpacingObservations.sorted()
        return sorted[(sorted.count - 1) / 2]
    }

    private mutating func learnSpacing(deviceAdvance: Seconds?) {
        guard let deviceAdvance, deviceAdvance.value > 0 else { return }
        deviceSpacingObservations.append(deviceAdvance)
        if deviceSpacingObservations.count > Self.tickIntervalSamples { deviceSpacingObservations.removeFirst() }
    }

    /// The device's TICK period for finding gaps: its own clock's spacing of TICKs (which goes on
    /// through pauses, and is not bounded like `tickInterval`: a non-conforming device ticking every
    /// 5 min is not missing 59 of every 60 TICKs); nil until a few spacings are known.
    var gapPeriod: Seconds? {
        deviceSpacingObservations.count >= Self.spacingSamplesForGaps ? deviceSpacing : nil
    }

    /// The best TICK period known, for the gaps still waiting at RUN_END.
    var finalGapPeriod: Seconds { deviceSpacingObservations.isEmpty ? tickInterval : deviceSpacing }

    private mutating func learnTickInterval(deviceAdvance: Seconds?, runTimeAdvance: Seconds?) {
        // The device clock keeps going through pauses (whole seconds, ticks
        // fall on whole seconds); RUN_TIME stops in them. Prefer the former.
        let observed: Seconds?
        if let deviceAdvance, deviceAdvance.value > 0 {
            observed = deviceAdvance
        } else if let runTimeAdvance, runTimeAdvance.value > 0 {
            observed = runTimeAdvance
        } else {
            observed = nil
        }
        guard let observed, observed <= Self.plausibleTickInterval else { return }
        tickIntervalObservations.append(observed)
        if tickIntervalObservations.count > Self.tickIntervalSamples { tickIntervalObservations.removeFirst() }
        // The median ignores a tick cut short by a pause or stretched by a resend.
        let sorted = tickIntervalObservations.sorted()
        tickInterval = sorted[sorted.count / 2]
    }
}
