import Quantities
import SeparatorProtocol

/// A stretch of a run's telemetry that never reached the daemon: messages missing from the device's
/// sequence (lost on the line, or acknowledged by another reader), or TICKs missing from the run time
/// (the device did not send them, or they were lost). Limits could not be judged in it.
public struct TelemetryGap: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case sequence
        case runTime = "run_time"
    }

    public var kind: Kind
    /// Messages (`sequence`) or TICKs (`runTime`) missing.
    public var missingCount: Int
    /// For a sequence gap: the first and last sequence numbers that never arrived.
    public var firstMissingSequence: UInt64?
    public var lastMissingSequence: UInt64?
    /// For a run-time gap: RUN_TIME of the samples on either side of it.
    public var runTimeBefore: Seconds?
    public var runTimeAfter: Seconds?
    /// For a run-time gap: the TICK period it was measured with.
    public var tickInterval: Seconds?

    public init(
        kind: Kind, missingCount: Int, firstMissingSequence: UInt64? = nil, lastMissingSequence: UInt64? = nil, runTimeBefore: Seconds? = nil,
        runTimeAfter: Seconds? = nil, tickInterval: Seconds? = nil
    ) {
        self.kind = kind
        self.missingCount = missingCount
        self.firstMissingSequence = firstMissingSequence
        self.lastMissingSequence = lastMissingSequence
        self.runTimeBefore = runTimeBefore
        self.runTimeAfter = runTimeAfter
        self.tickInterval = tickInterval
    }

    /// A plain sentence for the nurse and the cell lab.
    public var sentence: String {
        switch kind {
        case .sequence:
            let first = firstMissingSequence ?? 0
            let last = lastMissingSequence ?? first
            let which = first == last ? "Message #\(first)" : "Messages #\(first) to #\(last)"
            let count = missingCount == 1 ? "1 message" : "\(missingCount) messages"
            return "\(which) of the separator never reached the record intact (\(count) missing: lost on the line, taken by another reader, or quarantined as unreadable)."
        case .runTime:
            let before = runTimeBefore.map { display($0.minutes, decimals: 2) } ?? "?"
            let after = runTimeAfter.map { display($0.minutes, decimals: 2) } ?? "?"
            let period = tickInterval.map { display($0.value, decimals: 1) } ?? "?"
            let count = missingCount == 1 ? "1 TICK" : "\(missingCount) TICKs"
            return "No telemetry between run time \(before) and \(after) min: \(count) of \(period) s missing; limits were not judged in that span."
        }
    }
}

/// How much of a run's telemetry arrived: TICKs received against TICKs expected from the run time
/// at the device's TICK period (pauses excluded, as RUN_TIME excludes them), and messages missing
/// from the sequence.
public struct TelemetryCompleteness: Hashable, Sendable {
    /// TICKs (and the RUN_END) whose RUN_TIME moved on.
    public var ticksReceived: Int
    public var ticksMissing: Int
    public var messagesMissing: Int
    /// The TICK period the count is based on (learned from the device, else the profile's).
    public var tickInterval: Seconds?

    public init(ticksReceived: Int = 0, ticksMissing: Int = 0, messagesMissing: Int = 0, tickInterval: Seconds? = nil) {
        self.ticksReceived = ticksReceived
        self.ticksMissing = ticksMissing
        self.messagesMissing = messagesMissing
        self.tickInterval = tickInterval
    }

    public var ticksExpected: Int { ticksReceived + ticksMissing }
    /// Received over expected, 0...1; 1 while nothing was expected.
    public var fraction: Double { ticksExpected == 0 ? 1 : Double(ticksReceived) / Double(ticksExpected) }
    public var isComplete: Bool { ticksMissing == 0 && messagesMissing == 0 }

    /// "96.8 % of expected TICKs (240 of 248); 3 messages missing".
    public var summary: String {
        var text = "\(display(fraction * 100, decimals: 1)) % of expected TICKs (\(ticksReceived) of \(ticksExpected))"
        if messagesMissing > 0 { text += "; \(messagesMissing) message\(messagesMissing == 1 ? "" : "s") missing from the sequence" }
        return text
    }
}

/// Follows one run's sequence numbers and RUN_TIME and finds what is missing. Run-time gaps are
/// measured against the TICK period, which is learned from the device: advances seen before it is
/// known wait in `pending` and are judged once it is (a device set to 60 s TICKs is not "missing"
/// eleven of every twelve 5 s TICKs).
struct TelemetryContinuity: Sendable {
    private(set) var completeness = TelemetryCompleteness()
    private var lastSequence: UInt64?
    /// RUN_TIME of the newest sample that moved it; a run starts at 0 (also one watched without
    /// RUN_START: what came before its first message is missing).
    private var lastRunTime = Seconds.zero
    /// RUN_TIME advances waiting for the period, with the device clock's advance over the same step.
    private var pending: [(before: Seconds, after: Seconds, deviceAdvance: Seconds?)] = []

    /// An advance of more than this many periods has TICKs missing (jitter and a TICK cut short by
    /// a pause stay below it).
    static let gapFactor = 1.5

    /// The next message's sequence number. Export files carry none (0): not checked.
    mutating func see(sequence: UInt64) -> TelemetryGap? {
        guard sequence > 0 else { return nil }
        defer { lastSequence = max(lastSequence ?? sequence, sequence) }
        // A lower number is a resend of what is already stored, or a RUN_START adopted late.
        guard let last = lastSequence, sequence > last + 1 else { return nil }
        let missing = Int(clamping: sequence - last - 1)
        completeness.messagesMissing += missing
        return TelemetryGap(kind: .sequence, missingCount: missing, firstMissingSequence: last + 1, lastMissingSequence: sequence - 1)
    }

    /// A sample's RUN_TIME. `deviceAdvance`: how far the device clock moved since the previous
    /// sample (nil when unknown). `period`: the device's TICK period, nil while still being learned.
    mutating func see(runTime: Seconds, deviceAdvance: Seconds?, period: Seconds?, tolerance: Seconds) -> [TelemetryGap] {
        // Paused (RUN_TIME stands still), repeated, or going backwards (flagged elsewhere).
        guard runTime > lastRunTime + tolerance else { return [] }
        completeness.ticksReceived += 1
        pending.append((lastRunTime, runTime, deviceAdvance))
        lastRunTime = runTime
        guard let period else { return [] }
        return settle(period: period)
    }

    /// Judges the advances that waited for the period (at RUN_END, with the best period known).
    mutating func settle(period: Seconds) -> [TelemetryGap] {
        guard period.value > 0 else { return [] }
        completeness.tickInterval = period
        let waiting = pending
        pending = []
        return waiting.compactMap { advance in
            // Lost TICKs move both clocks. RUN_TIME alone can step by more than a period when the
            // device sends it coarsely (0.1 min = 6 s against 1 s TICKs); the device clock alone
            // moves through pauses and jumps. The smaller advance of the two decides.
            var span = advance.after - advance.before
            if let device = advance.deviceAdvance, device.value > 0, device < span { span = device }
            guard span.value > period.value * Self.gapFactor else { return nil }
            let missing = max(1, Int((span.value / period.value).rounded()) - 1)
            completeness.ticksMissing += missing
            return TelemetryGap(
                kind: .runTime, missingCount: missing, runTimeBefore: advance.before, runTimeAfter: advance.after, tickInterval: period)
        }
    }
}

extension TelemetryCompleteness {
    /// A recorded run's completeness: its messages, in the order they were stored, through the same
    /// watcher as live (so the product record and the run's watch agree). The profile only seeds the
    /// TICK period until the device's own is learned.
    public static func replaying(_ messages: [SeparatorMessage], profile: LimitProfile = .standard) -> TelemetryCompleteness? {
        guard let first = messages.first else { return nil }
        var monitor = RunMonitor(midRun: first, profile: profile, receivedAt: .zero)
        for (index, message) in messages.enumerated() where index > 0 || message.kind != .runStart {
            // Receive times do not enter the count: space the messages by their index.
            _ = monitor.ingest(message, receivedAt: .seconds(index))
        }
        return monitor.completeness
    }
}
