import Quantities
import SeparatorProtocol

/// What the operator planned to process.
public enum ProcessingTarget: Sendable, Equatable {
    /// `target_wb_vol_ml`: sent as TARGET_WB_VOL, TARGET_TBV = 0 (not set).
    case wholeBloodVolume(Volume)
    /// `target_tbv`: sent as TARGET_TBV, TARGET_WB_VOL = 0 (not set).
    case bloodVolumes(Double)
}

/// `[settings]`: what the operator entered at the start of the run.
public struct RunSettings: Sendable, Equatable {
    public var procedure: Procedure
    /// Inlet:AC, e.g. 12.0 for 12:1.
    public var acRatio: Double
    public var acInfusionRateMax: BloodVolumeNormalisedRate
    public var target: ProcessingTarget
    /// Nil when not set (sent as 0).
    public var targetRunTime: Seconds?
    public var extracorporealVolume: Volume
    public var preHematocritPercent: Double
    /// 10^9/L.
    public var preWhiteCellCount: Double
    public var acdaLot: String
    public var setLot: String
    public var operatorID: String
    /// TICK period on the simulation clock, 1-60 s.
    public var tickInterval: Seconds
    public var framing: FramingMode
    /// The device clock at run start.
    public var start: DeviceTimestamp

    public init(
        procedure: Procedure, acRatio: Double, acInfusionRateMax: BloodVolumeNormalisedRate, target: ProcessingTarget,
        targetRunTime: Seconds?, extracorporealVolume: Volume, preHematocritPercent: Double, preWhiteCellCount: Double,
        acdaLot: String, setLot: String, operatorID: String, tickInterval: Seconds, framing: FramingMode, start: DeviceTimestamp
    ) {
        self.procedure = procedure
        self.acRatio = acRatio
        self.acInfusionRateMax = acInfusionRateMax
        self.target = target
        self.targetRunTime = targetRunTime
        self.extracorporealVolume = extracorporealVolume
        self.preHematocritPercent = preHematocritPercent
        self.preWhiteCellCount = preWhiteCellCount
        self.acdaLot = acdaLot
        self.setLot = setLot
        self.operatorID = operatorID
        self.tickInterval = tickInterval
        self.framing = framing
        self.start = start
    }
}

/// Pump set points.
public struct PumpFlows: Sendable, Equatable {
    /// Whole blood plus AC.
    public var inlet: VolumeFlowRate
    public var collect: VolumeFlowRate
    public var plasma: VolumeFlowRate
    public init(inlet: VolumeFlowRate, collect: VolumeFlowRate, plasma: VolumeFlowRate) {
        self.inlet = inlet
        self.collect = collect
        self.plasma = plasma
    }
}

/// `[end]`: the run ends at the first of these (or at a timeline `end_run`).
public struct EndCondition: Sendable, Equatable {
    /// End when WB_VOL reaches the target (the device's normal end).
    public var stopAtTarget: Bool
    /// End at this elapsed time whatever the volumes.
    public var endAt: Seconds?
    public init(stopAtTarget: Bool, endAt: Seconds?) {
        self.stopAtTarget = stopAtTarget
        self.endAt = endAt
    }
}

/// `[faults]`: per-frame probabilities the I/O layer applies.
public struct FaultRates: Sendable, Equatable {
    /// Probability that a frame goes out with a wrong checksum.
    public var corruptChecksum: Double
    /// Probability that the daemon's answer to a frame is lost (device times out after 15 s).
    public var lostAck: Double
    /// Probability, per batch of new messages, of a burst of 1-16 garbage bytes on the line (sent between sessions).
    public var garbage: Double
    /// The run's RUN_START is never sent, as if it had been lost or quarantined: the host sees the
    /// run first by its TICKs.
    public var omitRunStart: Bool
    /// Messages due in this span (elapsed time since RUN_START) are numbered but never sent: they
    /// count as acknowledged, as if another reader on the line had taken them. The host sees the
    /// sequence jump and the run time jump.
    public var lostSpan: Range<Seconds>?
    public init(corruptChecksum: Double, lostAck: Double, garbage: Double, omitRunStart: Bool = false) {
        self.corruptChecksum = corruptChecksum
        self.lostAck = lostAck
        self.garbage = garbage
        self.omitRunStart = omitRunStart
    }
    public static let none = FaultRates(corruptChecksum: 0, lostAck: 0, garbage: 0)
}

public enum Pump: String, Sendable, Equatable, CaseIterable {
    case ac, inlet, collect
}

/// One `[[timeline]]` action.
public enum TimelineAction: Sendable, Equatable {
    /// Nil leaves that pump as it is.
    case setFlows(inlet: VolumeFlowRate?, collect: VolumeFlowRate?, plasma: VolumeFlowRate?)
    case deviceAlarm(code: String, text: String, severity: Severity)
    case pause(text: String)
    case resume(text: String)
    /// Returns the set's contents to the patient: no processing for `duration`, then RUN_END.
    case rinseback(duration: Seconds, text: String)
    case operatorNote(text: String)
    /// The operator stops the run now.
    case endRun
    /// The AC pump's real delivery drifts linearly from the set ratio to `toRatio`
    /// over `over`, then holds; the device keeps reporting the set ratio.
    case ratioDrift(toRatio: Double, over: Seconds)
    /// The pump delivers nothing for `duration` while the device believes it runs.
    case stallPump(Pump, duration: Seconds)
    /// The device clock jumps by this many seconds, from now on.
    case clockJump(seconds: Int64)
    case cablePull(duration: Seconds)
    case garbage(byteCount: Int)
}

public struct TimelineEntry: Sendable, Equatable {
    /// Elapsed time since RUN_START, pauses included.
    public var at: Seconds
    public var action: TimelineAction
    public init(at: Seconds, action: TimelineAction) {
        self.at = at
        self.action = action
    }
}

/// A parsed scenario file.
public struct Scenario: Sendable, Equatable {
    /// The file's base name without `.toml`.
    public var name: String
    public var title: String
    public var device: DeviceIdentity
    public var patient: PatientProfile
    public var settings: RunSettings
    public var initialFlows: PumpFlows
    public var end: EndCondition
    public var faults: FaultRates
    /// In time order.
    public var timeline: [TimelineEntry]

    public init(
        name: String, title: String, device: DeviceIdentity, patient: PatientProfile, settings: RunSettings,
        initialFlows: PumpFlows, end: EndCondition, faults: FaultRates, timeline: [TimelineEntry]
    ) {
        self.name = name
        self.title = title
        self.device = device
        self.patient = patient
        self.settings = settings
        self.initialFlows = initialFlows
        self.end = end
        self.faults = faults
        self.timeline = timeline
    }

    /// The TBV the device computes at run start, rounded to the mL it reports.
    public var totalBloodVolume: Volume {
        let estimate = patient.totalBloodVolume(on: settings.start.date)
        return .millilitres(estimate.volume.millilitres.rounded())
    }

    public var bloodVolumeMethod: BloodVolumeMethod { patient.totalBloodVolume(on: settings.start.date).method }

    /// The whole blood volume at which the run ends normally.
    public var targetWholeBloodVolume: Volume {
        switch settings.target {
        case .wholeBloodVolume(let v): v
        case .bloodVolumes(let n): totalBloodVolume * n
        }
    }

    public var tickInterval: Seconds { settings.tickInterval }
    public var framing: FramingMode { settings.framing }
}
