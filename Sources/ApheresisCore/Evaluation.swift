import Quantities
import SeparatorProtocol

/// A mass per kilogram of body weight (a cumulative citrate dose), stored as
/// kg per kg (dimensionless). The clinic reads it in mg/kg.
public struct WeightNormalisedMass: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var kilogramsPerKilogram: Double
    public init(kilogramsPerKilogram: Double) { self.kilogramsPerKilogram = kilogramsPerKilogram }
    public init(mass: Mass, bodyMass: Mass) { self.kilogramsPerKilogram = mass.kilograms / bodyMass.kilograms }
    public static func milligramsPerKilogram(_ value: Double) -> WeightNormalisedMass { WeightNormalisedMass(kilogramsPerKilogram: value * 1e-6) }
    public var milligramsPerKilogram: Double { kilogramsPerKilogram * 1e6 }
    public static func < (a: WeightNormalisedMass, b: WeightNormalisedMass) -> Bool { a.kilogramsPerKilogram < b.kilogramsPerKilogram }
    public var description: String { "\(milligramsPerKilogram) mg/kg" }
}

/// What a sample is marked with for the store. The sample is always kept.
public enum DataQualityFlag: Hashable, Sendable {
    /// A cumulative value lower than in the previous sample (wire values, wire unit).
    case decreasing(ParameterCode, previous: Double, current: Double)
    /// A value outside its physical range (`range` in the wire unit); a
    /// negative rate is one of these.
    case outOfRange(ParameterCode, value: Double, range: ClosedRange<Double>)
    /// A value carried in another unit than the interface defines: not used.
    case unexpectedUnit(ParameterCode, unit: String)
    /// The device clock advanced by `deviceAdvance` seconds where RUN_TIME and
    /// the daemon's clock advanced by `runTimeAdvance` / `receivedAdvance`.
    case clockJump(deviceAdvance: Seconds, runTimeAdvance: Seconds?, receivedAdvance: Seconds)

    /// The alarm class the flag belongs to.
    public var alarmCode: AlarmCode {
        switch self {
        case .decreasing: .dataDecreasing
        case .outOfRange, .unexpectedUnit: .dataRange
        case .clockJump: .dataClockJump
        }
    }
}

/// What the daemon recomputes from the cumulative volumes, in SI types.
/// nil where the data needed is missing or the window is not yet judged.
public struct DerivedValues: Hashable, Sendable {
    /// RUN_TIME of the latest sample.
    public var runTime: Seconds?
    public var isPaused: Bool = false
    public var isRinsingBack: Bool = false

    /// Recomputed inlet:AC ratio over the window (ΔINLET_VOL/ΔAC_VOL); nil when
    /// the window is not judgeable or the AC pump delivered nothing.
    public var windowRatio: Double?
    /// The run time the window ratio was computed over: the window, or longer
    /// when TICKs are further apart than the window (see `ratioWindow`).
    public var ratioSpan: Seconds?
    /// The device's AC_RATIO as reported over that span (lowest...highest).
    public var deviceRatioRange: ClosedRange<Double>?
    /// Inlet flowed in the window but no ACD-A was drawn: the ratio is unbounded.
    public var acPumpDeliveringNothing: Bool = false
    /// Recomputed inlet:AC ratio over the whole run (INLET_VOL/AC_VOL).
    public var runRatio: Double?
    /// The device's AC_RATIO, as reported.
    public var deviceRatio: Double?
    /// How far the recomputed ratio lies outside `deviceRatioRange`, relative
    /// to the recomputed ratio (0 inside); 1 when the recomputed ratio is unbounded.
    public var ratioDisagreementFraction: Double?

    /// Increase of AC_TO_PATIENT per unit of RUN_TIME over the AC infusion window.
    public var acToPatientFlow: VolumeFlowRate?
    /// The run time the AC infusion and citrate rates were computed over.
    public var acInfusionSpan: Seconds?
    public var acInfusionRate: BloodVolumeNormalisedRate?
    public var citrateLoadRate: WeightNormalisedMassRate?
    /// Citrate infused so far (AC_TO_PATIENT x citrate content).
    public var citrateInfused: Mass?
    public var citrateLoadTotal: WeightNormalisedMass?

    public var inletVolume: Volume?
    public var acVolume: Volume?
    public var acToPatient: Volume?
    public var wholeBloodProcessed: Volume?
    /// Recomputed WB_VOL / TBV.
    public var bloodVolumesProcessed: Double?
    /// The device's TBV_PROCESSED, as reported.
    public var deviceBloodVolumesProcessed: Double?
    public var collectedVolume: Volume?
    public var collectedFractionOfTBV: Double?
    public var extracorporealFractionOfTBV: Double?

    public init() {}
}

/// When a target will be reached at the present rate.
public struct TargetPrediction: Hashable, Sendable {
    public var target: Double
    public var current: Double
    /// Run time still needed at the present rate (zero once reached).
    public var remaining: Seconds
    /// RUN_TIME at which it is (or was, by then) reached.
    public var projectedRunTime: Seconds
    public var reached: Bool
    public init(target: Double, current: Double, remaining: Seconds, projectedRunTime: Seconds, reached: Bool) {
        self.target = target
        self.current = current
        self.remaining = remaining
        self.projectedRunTime = projectedRunTime
        self.reached = reached
    }
}

public struct Predictions: Hashable, Sendable {
    /// The profile's collect target (mL in `target`/`current`).
    public var collectTarget: TargetPrediction?
    /// TARGET_WB_VOL (mL).
    public var wholeBloodTarget: TargetPrediction?
    /// TARGET_TBV (blood volumes).
    public var bloodVolumesTarget: TargetPrediction?
    /// Whole blood the yield prediction assumes will have been processed by the end.
    public var wholeBloodToProcess: Volume?
    /// Patient CD3+ concentration assumed: PRE_WBC x assumed CD3+ fraction.
    public var assumedCD3Concentration: CellConcentration?
    /// Expected CD3+ cells in the product at the end (a count).
    public var expectedCD3Yield: Double?
    public init() {}
}

/// A limit that became not judged, changed its reason, or is judged again.
/// Reported only on a change, so that the run's record holds it once.
public struct JudgementChange: Hashable, Sendable {
    public var code: AlarmCode
    public var judged: Bool
    /// Why it is not judged; nil when `judged`.
    public var reason: String?
    /// RUN_TIME of the sample that changed it, in minutes.
    public var runTimeMinutes: Double?
    public init(code: AlarmCode, judged: Bool, reason: String?, runTimeMinutes: Double?) {
        self.code = code
        self.judged = judged
        self.reason = reason
        self.runTimeMinutes = runTimeMinutes
    }
}

public struct Evaluation: Hashable, Sendable {
    public var transitions: [AlarmTransition]
    /// Marks for this sample; the sample is always kept.
    public var sampleQuality: [DataQualityFlag]
    public var derived: DerivedValues
    public var predictions: Predictions
    /// INFO comments from an ALARM message.
    public var deviceNotices: [DeviceNotice]
    /// Limits whose judged / not-judged state (or reason) changed with this message.
    public var judgements: [JudgementChange]
    /// Telemetry found missing with this message (to be stored with the run).
    public var gaps: [TelemetryGap]
    public init(transitions: [AlarmTransition] = [], sampleQuality: [DataQualityFlag] = [], derived: DerivedValues = DerivedValues(),
                predictions: Predictions = Predictions(), deviceNotices: [DeviceNotice] = [], judgements: [JudgementChange] = [],
                gaps: [TelemetryGap] = []) {
        self.transitions = transitions
        self.sampleQuality = sampleQuality
        self.derived = derived
        self.predictions = predictions
        self.deviceNotices = deviceNotices
        self.judgements = judgements
        self.gaps = gaps
    }
}
