import ApheresisCore
import Quantities
import SeparatorProtocol

// Hand-built messages for the rule tests. Volumes advance by explicit
// per-tick increments chosen to be exact in binary (multiples of 1/4 mL), so
// a ratio of 13.0 really is 13.0 and a threshold can be hit exactly.

let testDevice = DeviceIdentity(model: "OPTIA-TEST", softwareVersion: "1", serialNumber: "T1")
let testStart = DeviceTimestamp(year: 2026, month: 12, day: 1, hour: 9, minute: 0, second: 0)!

func record(_ index: Int, _ code: ParameterCode, _ value: Double, unit: String? = nil) -> ResultRecord {
    ResultRecord(sequence: index, code: code, value: .number(value), unit: unit ?? code.definition?.unit ?? "", timestamp: nil)
}

func runStartMessage(
    runID: String = "RUN-1", tbv: Double = 2400, weight: Double? = 32, ratio: Double = 12, targetWB: Double = 0,
    targetTBV: Double = 2.0, targetRunTime: Double = 240, ecv: Double = 191, preWBC: Double = 6.0, procedure: Procedure = .cmnc
) -> SeparatorMessage {
    let settings: [(ParameterCode, Double)] = [
        (.totalBloodVolume, tbv), (.preHematocrit, 36), (.preWhiteCellCount, preWBC), (.acRatioSet, ratio),
        (.acInfusionRateMax, 1.2), (.targetWholeBloodVolume, targetWB), (.targetBloodVolumesProcessed, targetTBV),
        (.targetRunTime, targetRunTime), (.extracorporealVolume, ecv),
    ]
    return SeparatorMessage(
        sequenceNumber: 1, device: testDevice, timestamp: testStart, kind: .runStart,
        patient: Patient(
            id: "P1", familyName: "TEST", givenName: "Kid", birthDate: CalendarDate(year: 2016, month: 1, day: 1), sex: .male,
            heightCentimetres: 138, weightKilograms: weight),
        order: Order(runID: runID, procedure: procedure, runStart: testStart),
        results: settings.enumerated().map { record($0.offset + 1, $0.element.0, $0.element.1) })
}

/// A run the test drives tick by tick; `receivedAt` is the elapsed time.
struct Feed {
    var runID = "RUN-1"
    var elapsed = 0.0  // seconds since RUN_START (the test's monotonic clock too)
    var runTime = 0.0  // seconds
    var inlet = 0.0, wholeBlood = 0.0, ac = 0.0, acToPatient = 0.0, collect = 0.0
    var deviceClockOffset: Int64 = 0
    var sequence: UInt64 = 1
    var tickSeconds = 5.0

    /// One tick: pumps moved `inletML` (of which `acML` ACD-A) etc. during it.
    mutating func tick(inletML: Double = 3, acML: Double = 0.25, acToPatientML: Double? = nil, collectML: Double = 0,
                       paused: Bool = false, kind: MessageKind = .tick, overrides: [ParameterCode: Double] = [:]) -> SeparatorMessage {
        elapsed += tickSeconds
        if !paused {
            runTime += tickSeconds
            inlet += inletML
            ac += acML
            wholeBlood += inletML - acML
            acToPatient += acToPatientML ?? acML / 2
            collect += collectML
        }
        return message(kind: kind, overrides: overrides)
    }

    func message(kind: MessageKind = .tick, overrides: [ParameterCode: Double] = [:]) -> SeparatorMessage {
        var values: [(ParameterCode, Double)] = [
            (.runTime, runTime / 60), (.inletVolume, inlet), (.wholeBloodVolume, wholeBlood), (.acVolume, ac),
            (.acToPatient, acToPatient), (.collectVolume, collect), (.plasmaVolume, 0),
            (.inletFlow, 36), (.acFlow, 3), (.returnFlow, 35), (.collectFlow, 0), (.acRatio, 12),
            (.acInfusionRate, 0.8), (.bloodVolumesProcessed, wholeBlood / 2400), (.centrifugeSpeed, 2400),
            (.accessPressure, -60), (.returnPressure, 90),
        ]
        for (code, value) in overrides {
            if let i = values.firstIndex(where: { $0.0 == code }) { values[i].1 = value } else { values.append((code, value)) }
        }
        let stamp = testStart.adding(seconds: Int64(elapsed.rounded(.down)) + deviceClockOffset)
        return SeparatorMessage(
            sequenceNumber: sequence, device: testDevice, timestamp: stamp, kind: kind,
            order: Order(runID: runID, procedure: .cmnc, runStart: testStart),
            results: values.enumerated().map { record($0.offset + 1, $0.element.0, $0.element.1) })
    }

    var now: Duration { .milliseconds(Int64((elapsed * 1000).rounded())) }
}

func commentMessage(kind: MessageKind, code: String, text: String = "", severity: Severity, at feed: Feed) -> SeparatorMessage {
    SeparatorMessage(
        sequenceNumber: 0, device: testDevice, timestamp: testStart.adding(seconds: Int64(feed.elapsed)), kind: kind,
        order: Order(runID: feed.runID, procedure: .cmnc, runStart: testStart),
        comments: [CommentRecord(sequence: 1, code: code, text: text, severity: severity)])
}

/// A monitor and its feed, collecting every transition.
struct Harness {
    var monitor: RunMonitor
    var feed = Feed()
    var transitions: [AlarmTransition] = []
    var flags: [[DataQualityFlag]] = []

    init(profile: LimitProfile = .standard, start: SeparatorMessage = runStartMessage()) {
        monitor = RunMonitor(runStart: start, profile: profile, receivedAt: .zero)
        transitions = monitor.initialTransitions
    }

    @discardableResult
    mutating func send(_ message: SeparatorMessage) -> Evaluation {
        let e = monitor.ingest(message, receivedAt: feed.now)
        transitions += e.transitions
        flags.append(e.sampleQuality)
        return e
    }

    @discardableResult
    mutating func ticks(_ n: Int, inletML: Double = 3, acML: Double = 0.25, acToPatientML: Double? = nil, collectML: Double = 0,
                        paused: Bool = false, overrides: [ParameterCode: Double] = [:]) -> Evaluation? {
        var last: Evaluation?
        for _ in 0..<n {
            let m = feed.tick(inletML: inletML, acML: acML, acToPatientML: acToPatientML, collectML: collectML, paused: paused, overrides: overrides)
            last = send(m)
        }
        return last
    }

    func of(_ code: AlarmCode) -> [AlarmTransition] { transitions.filter { $0.code == code } }
    func level(_ code: AlarmCode) -> AlarmLevel? { monitor.activeAlarms.first { $0.code == code }?.level }
}

extension AlarmTransition.Kind {
    var isRaised: Bool { if case .raised = self { true } else { false } }
    var isCleared: Bool { if case .cleared = self { true } else { false } }
    var clearReason: String? { if case .cleared(let r) = self { r } else { nil } }
}
