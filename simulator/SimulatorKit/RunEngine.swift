import Quantities
import SeparatorProtocol

/// A fault the I/O layer applies to the link at this moment.
public enum WireFault: Sendable, Equatable {
    /// The link is down for `duration`; the device keeps running and queues its messages.
    case cablePull(duration: Seconds)
    /// `byteCount` bytes of line noise on the link.
    case garbage(byteCount: Int)
}

public enum EngineOutput: Sendable, Equatable {
    /// RUN_START first, then TICK, ALARM, EVENT; RUN_END last. `sequenceNumber` is 0:
    /// the outbox assigns it.
    case message(SeparatorMessage)
    case wireFault(WireFault)
}

/// The separator's run, in simulated time. Pure and deterministic: the same
/// scenario and seed give the same outputs however `advance(to:)` is chunked,
/// so a restarted simulator fast-forwards by replaying to its saved time.
///
/// Model (see docs/simulator-scenarios.md):
/// - Volumes integrate on a fixed grid of 1 s, cut also at every timeline
///   instant and tick; flows are taken at the middle of each step, so a
///   drifting AC ratio integrates correctly.
/// - Cumulative volumes are what really moved (bag scales); the reported
///   rates (flows, AC_RATIO, AC_INF_RATE) are what the device commands. A
///   drifting or stalled pump therefore shows only in the volumes, which is
///   what the daemon must notice.
/// - AC to the patient is the AC fraction of what is returned:
///   AC flow x return flow / inlet flow.
/// - Pauses stop all pumps and RUN_TIME; TICKs go on (flows 0), so an open
///   run never goes silent.
public struct RunEngine: Sendable {
    public let scenario: Scenario
    public let runID: String
    public let seed: UInt64
    /// TBV as the device computed and reports it (whole mL).
    public let totalBloodVolume: Volume

    /// The longest run the engine simulates when nothing else ends it.
    public static let maximumRunLength = Seconds.hours(12)
    /// Internal integration step.
    static let integrationStep = 1.0

    private var noise: SeededGenerator
    private var started = false
    public private(set) var isFinished = false
    public private(set) var simulatedTime = Seconds.zero

    /// The instant the state describes (seconds since RUN_START); at most `simulatedTime`.
    private var now = 0.0
    private var runTime = Seconds.zero
    private var volumes = Volumes()
    private var commanded: PumpFlows
    private var paused = false
    private var rinsebackEnd: Double?
    private var drift: Drift?
    private var stallEnds: [Pump: Double] = [:]
    private var clockOffset: Int64 = 0
    private var nextTimelineIndex = 0
    private var nextTickIndex = 1

    private struct Volumes: Sendable {
        var wholeBlood = Volume.zero
        var ac = Volume.zero
        var acToPatient = Volume.zero
        var collect = Volume.zero
        var plasma = Volume.zero
        var inlet: Volume { wholeBlood + ac }
    }

    private struct Drift: Sendable {
        var start: Double
        var fromRatio: Double
        var toRatio: Double
        var duration: Double
        func ratio(at t: Double) -> Double {
            fromRatio + (toRatio - fromRatio) * min(1, max(0, (t - start) / duration))
        }
    }

    /// What the pumps really move at an instant.
    private struct ActualFlows {
        var inlet: VolumeFlowRate
        var ac: VolumeFlowRate
        var collect: VolumeFlowRate
        var plasma: VolumeFlowRate
        var returned: VolumeFlowRate { inlet - collect - plasma }
        var acToPatient: VolumeFlowRate {
            inlet.cubicMetresPerSecond > 0 ? ac * (returned / inlet) : .zero
        }
    }

    public init(scenario: Scenario, runID: String, seed: UInt64) {
        self.scenario = scenario
        self.runID = runID
        self.seed = seed
        self.totalBloodVolume = scenario.totalBloodVolume
        self.noise = SeededGenerator(seed: seed)
        self.commanded = scenario.initialFlows
    }

    /// When the next output is due (seconds since RUN_START), nil once finished.
    public var nextEventTime: Seconds? {
        if isFinished { return nil }
        if !started { return .zero }
        // Look ahead on a copy: whatever comes first (an action, the target
        // reached, or at the latest the next TICK) is the next output.
        var copy = self
        let horizon = Double(nextTickIndex) * scenario.settings.tickInterval.value
        let ahead = copy.run(until: horizon)
        return Seconds(ahead.first?.time ?? horizon)
    }

    /// Advances to `t` (seconds since RUN_START, pauses included) and returns
    /// everything that happened up to and including `t`, in order.
    public mutating func advance(to t: Seconds) -> [EngineOutput] {
        let outputs = run(until: t.value).map(\.output)
        if t > simulatedTime { simulatedTime = t }
        return outputs
    }

    // MARK: - Stepping

    private mutating func run(until limit: Double) -> [(time: Double, output: EngineOutput)] {
        var out: [(time: Double, output: EngineOutput)] = []
        if isFinished || limit < 0 { return out }
        if !started {
            started = true
            if !scenario.faults.omitRunStart { out.append((0, .message(runStartMessage()))) }
            processInstant(into: &out)
        }
        while !isFinished {
            let next = nextInstant()
            let flows = actualFlows(at: (now + next) / 2)
            let dt = Seconds(next - now)
            let step = (
                wb: (flows.inlet - flows.ac) * dt, ac: flows.ac * dt, acToPatient: flows.acToPatient * dt,
                collect: flows.collect * dt, plasma: flows.plasma * dt)
            let target = scenario.targetWholeBloodVolume
            if scenario.end.stopAtTarget, volumes.wholeBlood < target, volumes.wholeBlood + step.wb >= target {
                // The run ends inside this step, where WB reaches the target.
                let fraction = (target - volumes.wholeBlood) / step.wb
                let end = now + (next - now) * fraction
                if end > limit { break }
                commit(
                    wb: step.wb * fraction, ac: step.ac * fraction, acToPatient: step.acToPatient * fraction,
                    collect: step.collect * fraction, plasma: step.plasma * fraction, dt: dt * fraction)
                now = end
                finish(into: &out)
                break
            }
            if next > limit { break }
            commit(wb: step.wb, ac: step.ac, acToPatient: step.acToPatient, collect: step.collect, plasma: step.plasma, dt: dt)
            now = next
            processInstant(into: &out)
        }
        return out
    }

    private mutating func commit(wb: Volume, ac: Volume, acToPatient: Volume, collect: Volume, plasma: Volume, dt: Seconds) {
        volumes.wholeBlood += wb
        volumes.ac += ac
        volumes.acToPatient += acToPatient
        volumes.collect += collect
        volumes.plasma += plasma
        if !paused { runTime += dt }
    }

    /// The next instant at which the state changes or something is due.
    private func nextInstant() -> Double {
        var candidates = [
            (now / Self.integrationStep).rounded(.down) * Self.integrationStep + Self.integrationStep,
            Double(nextTickIndex) * scenario.settings.tickInterval.value,
            Self.maximumRunLength.value,
        ]
        if nextTimelineIndex < scenario.timeline.count { candidates.append(scenario.timeline[nextTimelineIndex].at.value) }
        if let endAt = scenario.end.endAt { candidates.append(endAt.value) }
        if let rinsebackEnd { candidates.append(rinsebackEnd) }
        candidates.append(contentsOf: stallEnds.values)
        return candidates.filter { $0 > now }.min() ?? now + Self.integrationStep
    }

    /// Applies what is due at `now`: stall ends, timeline actions, the end, the TICK.
    private mutating func processInstant(into out: inout [(time: Double, output: EngineOutput)]) {
        stallEnds = stallEnds.filter { $0.value > now }
        while nextTimelineIndex < scenario.timeline.count, scenario.timeline[nextTimelineIndex].at.value <= now {
            let action = scenario.timeline[nextTimelineIndex].action
            nextTimelineIndex += 1
            apply(action, into: &out)
            if isFinished { return }
        }
        let endDue =
            (rinsebackEnd.map { $0 <= now } ?? false)
            || (scenario.end.endAt.map { $0.value <= now } ?? false)
            || now >= Self.maximumRunLength.value
        if endDue {
            finish(into: &out)
            return
        }
        let tickTime = Double(nextTickIndex) * scenario.settings.tickInterval.value
        if tickTime <= now {
            nextTickIndex += 1
            out.append((now, .message(telemetryMessage(kind: .tick))))
        }
    }

    private mutating func apply(_ action: TimelineAction, into out: inout [(time: Double, output: EngineOutput)]) {
        switch action {
        case .setFlows(let inlet, let collect, let plasma):
            if let inlet { commanded.inlet = inlet }
            if let collect { commanded.collect = collect }
            if let plasma { commanded.plasma = plasma }
        case .deviceAlarm(let code, let text, let severity):
            out.append((now, .message(commentMessage(kind: .alarm, code: code, text: text, severity: severity))))
        case .pause(let text):
            paused = true
            out.append((now, .message(commentMessage(kind: .event, code: "PAUSE", text: text, severity: .info))))
        case .resume(let text):
            paused = false
            out.append((now, .message(commentMessage(kind: .event, code: "RESUME", text: text, severity: .info))))
        case .rinseback(let duration, let text):
            if rinsebackEnd == nil { rinsebackEnd = now + duration.value }
            out.append((now, .message(commentMessage(kind: .event, code: "RINSEBACK", text: text, severity: .info))))
        case .operatorNote(let text):
            out.append((now, .message(commentMessage(kind: .event, code: "OPERATOR_NOTE", text: text, severity: .info))))
        case .endRun:
            finish(into: &out)
        case .ratioDrift(let toRatio, let over):
            let from = drift?.ratio(at: now) ?? scenario.settings.acRatio
            drift = Drift(start: now, fromRatio: from, toRatio: toRatio, duration: over.value)
        case .stallPump(let pump, let duration):
            stallEnds[pump] = now + duration.value
        case .clockJump(let seconds):
            clockOffset += seconds
        case .cablePull(let duration):
            out.append((now, .wireFault(.cablePull(duration: duration))))
        case .garbage(let byteCount):
            out.append((now, .wireFault(.garbage(byteCount: byteCount))))
        }
    }

    private mutating func finish(into out: inout [(time: Double, output: EngineOutput)]) {
        isFinished = true
        out.append((now, .message(telemetryMessage(kind: .runEnd))))
    }

    // MARK: - Flows

    /// Pumps stop while paused and during rinseback (the set's contents go
    /// back; no blood is processed).
    private var pumpsRunning: Bool { !paused && rinsebackEnd == nil }

    /// What the device commands (and reports).
    private var reportedFlows: PumpFlows {
        pumpsRunning ? commanded : PumpFlows(inlet: .zero, collect: .zero, plasma: .zero)
    }

    private func actualFlows(at t: Double) -> ActualFlows {
        let set = reportedFlows
        let inlet = stallEnds[.inlet] != nil ? VolumeFlowRate.zero : set.inlet
        let ratio = drift?.ratio(at: t) ?? scenario.settings.acRatio
        let ac = stallEnds[.ac] != nil ? VolumeFlowRate.zero : inlet * (1 / ratio)
        let plasma = min(set.plasma, inlet)
        // Nothing leaves the channel that did not come in.
        let collect = stallEnds[.collect] != nil ? VolumeFlowRate.zero : min(set.collect, inlet - plasma)
        return ActualFlows(inlet: inlet, ac: ac, collect: collect, plasma: plasma)
    }

    // MARK: - Messages

    private var deviceTime: DeviceTimestamp {
        scenario.settings.start.adding(seconds: Int64(now.rounded(.down)) + clockOffset)
    }

    private var order: Order {
        Order(runID: runID, procedure: scenario.settings.procedure, runStart: scenario.settings.start)
    }

    private func message(kind: MessageKind, patient: Patient? = nil, results: [ResultRecord] = [], comments: [CommentRecord] = []) -> SeparatorMessage {
        SeparatorMessage(
            sequenceNumber: 0, device: scenario.device, timestamp: deviceTime, kind: kind, patient: patient,
            order: order, results: results, comments: comments)
    }

    private func records(_ values: [(ParameterCode, ResultValue)]) -> [ResultRecord] {
        let stamp = deviceTime
        return values.enumerated().map { index, item in
            ResultRecord(
                sequence: index + 1, code: item.0, value: item.1, unit: item.0.definition?.unit ?? "", timestamp: stamp)
        }
    }

    private func runStartMessage() -> SeparatorMessage {
        let s = scenario.settings
        var targetVolume = 0.0
        var targetTBV = 0.0
        switch s.target {
        case .wholeBloodVolume(let v): targetVolume = Quantize.millilitres(v.millilitres)
        case .bloodVolumes(let n): targetTBV = Quantize.hundredths(n)
        }
        let values: [(ParameterCode, ResultValue)] = [
            (.totalBloodVolume, .number(totalBloodVolume.millilitres.rounded())),
            (.preHematocrit, .number(Quantize.tenths(s.preHematocritPercent))),
            (.preWhiteCellCount, .number(Quantize.tenths(s.preWhiteCellCount))),
            (.acRatioSet, .number(Quantize.tenths(s.acRatio))),
            (.acInfusionRateMax, .number(Quantize.hundredths(s.acInfusionRateMax.millilitresPerMinutePerLitre))),
            (.targetWholeBloodVolume, .number(targetVolume)),
            (.targetBloodVolumesProcessed, .number(targetTBV)),
            (.targetRunTime, .number(Quantize.tenths(s.targetRunTime?.minutes ?? 0))),
            (.extracorporealVolume, .number(s.extracorporealVolume.millilitres.rounded())),
            (.acdaLot, .text(s.acdaLot)),
            (.setLot, .text(s.setLot)),
            (.operatorID, .text(s.operatorID)),
        ]
        return message(kind: .runStart, patient: scenario.patient.wirePatient, results: records(values))
    }

    private func commentMessage(kind: MessageKind, code: String, text: String, severity: Severity) -> SeparatorMessage {
        message(kind: kind, comments: [CommentRecord(sequence: 1, code: code, text: text, severity: severity)])
    }

    /// TICK, or RUN_END (pumps stopped, centrifuge still).
    private mutating func telemetryMessage(kind: MessageKind) -> SeparatorMessage {
        let ending = kind == .runEnd
        let flows = ending ? PumpFlows(inlet: .zero, collect: .zero, plasma: .zero) : reportedFlows
        let setRatio = scenario.settings.acRatio
        let returned = flows.inlet - flows.collect - flows.plasma
        let acFlow = flows.inlet * (1 / setRatio)
        let acToPatient = flows.inlet.cubicMetresPerSecond > 0 ? acFlow * (returned / flows.inlet) : .zero
        let infusion = BloodVolumeNormalisedRate(flow: acToPatient, totalBloodVolume: totalBloodVolume)
        let physical = actualFlows(at: now)

        // RUN_END reports a stopped machine, so it draws no noise.
        var centrifuge = 0.0
        var access = 0.0
        var returnPressure = 0.0
        if !ending {
            centrifuge = 2400 + noise.noise(sigma: 4)
            // Draw is negative and grows with the inlet flow through a
            // paediatric catheter; return is positive and grows with return flow.
            let inlet = physical.inlet.millilitresPerMinute
            access = (inlet > 0 ? -(12 + 1.5 * inlet) : -2) + noise.noise(sigma: 2)
            returnPressure = (physical.returned.millilitresPerMinute > 0 ? 18 + 2.2 * physical.returned.millilitresPerMinute : 4)
                + noise.noise(sigma: 2)
        }

        let values: [(ParameterCode, ResultValue)] = [
            (.runTime, .number(Quantize.thousandths(runTime.minutes))),
            (.inletVolume, .number(Quantize.millilitres(volumes.inlet.millilitres))),
            (.wholeBloodVolume, .number(Quantize.millilitres(volumes.wholeBlood.millilitres))),
            (.acVolume, .number(Quantize.millilitres(volumes.ac.millilitres))),
            (.acToPatient, .number(Quantize.millilitres(volumes.acToPatient.millilitres))),
            (.collectVolume, .number(Quantize.millilitres(volumes.collect.millilitres))),
            (.plasmaVolume, .number(Quantize.millilitres(volumes.plasma.millilitres))),
            (.inletFlow, .number(Quantize.tenths(flows.inlet.millilitresPerMinute))),
            (.acFlow, .number(Quantize.tenths(acFlow.millilitresPerMinute))),
            (.returnFlow, .number(Quantize.tenths(returned.millilitresPerMinute))),
            (.collectFlow, .number(Quantize.tenths(flows.collect.millilitresPerMinute))),
            (.acRatio, .number(Quantize.tenths(setRatio))),
            (.acInfusionRate, .number(Quantize.hundredths(infusion.millilitresPerMinutePerLitre))),
            (.bloodVolumesProcessed, .number(Quantize.thousandths(volumes.wholeBlood / totalBloodVolume))),
            (.centrifugeSpeed, .number(Quantize.whole(centrifuge))),
            (.accessPressure, .number(Quantize.whole(access))),
            (.returnPressure, .number(Quantize.whole(returnPressure))),
        ]
        return message(kind: kind, patient: ending ? scenario.patient.wirePatient : nil, results: records(values))
    }
}

/// Reported resolution. Rounding to nearest is non-decreasing, so a
/// cumulative value can never go down on the wire; dividing by an integer
/// power of ten gives the double nearest the decimal. `+ 0` turns -0 into 0.
enum Quantize {
    static func whole(_ x: Double) -> Double { x.rounded() + 0 }
    static func tenths(_ x: Double) -> Double { (x * 10).rounded() / 10 + 0 }
    static func hundredths(_ x: Double) -> Double { (x * 100).rounded() / 100 + 0 }
    static func thousandths(_ x: Double) -> Double { (x * 1000).rounded() / 1000 + 0 }
    /// Volumes: 0.01 mL, fine enough that a 60 s window recomputes a
    /// small child's 1.3 mL/min of AC to within 1 %.
    static func millilitres(_ x: Double) -> Double { hundredths(x) }
}
