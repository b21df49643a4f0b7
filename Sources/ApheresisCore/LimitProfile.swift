import Quantities
import SeparatorProtocol

/// The presets a run is watched against (limits.md): one profile per kind of
/// procedure and patient, chosen by procedure and weight, configurable in the
/// daemon's configuration file. Every threshold carries its unit in its type.
public struct LimitProfile: Sendable, Equatable {
    public var name: String
    /// Procedures this profile is for; empty means any.
    public var procedures: Set<Procedure>
    /// Patient weight range this profile is for; nil bounds are open.
    public var minimumWeight: Mass?
    public var maximumWeight: Mass?

    // ACD-A ratio (inlet:AC), recomputed from INLET_VOL and AC_VOL.
    public var ratioWindow: Seconds
    /// Deviation from AC_RATIO_SET, in ratio units (12:1 vs 13:1 is 1.0).
    public var ratioWarnDeviation: Double
    public var ratioAlarmDeviation: Double
    /// Device AC_RATIO against the recomputed one, as a fraction (0.10 = 10 %).
    public var ratioAgreementAlarmFraction: Double

    // AC infusion rate: increase of AC_TO_PATIENT per minute per litre of TBV.
    public var acInfusionWindow: Seconds
    public var acInfusionRateWarn: BloodVolumeNormalisedRate
    public var acInfusionRateAlarm: BloodVolumeNormalisedRate

    // Citrate load: ACD-A to the patient x citrate content, per kg.
    public var citrateConcentration: MassConcentration
    public var citrateLoadWarn: WeightNormalisedMassRate
    public var citrateLoadAlarm: WeightNormalisedMassRate

    // Collected volume: warn at the target, alarm at a fraction of TBV.
    public var collectTarget: Volume?
    public var collectAlarmFractionOfTBV: Double

    /// Extracorporeal volume against TBV at run start.
    public var extracorporealAlarmFractionOfTBV: Double

    /// Blood processed (WB_VOL, TBV_PROCESSED): warn at target, alarm at factor x target.
    public var bloodProcessedAlarmFactor: Double

    /// Run time: warn at TARGET_RUN_TIME, alarm this much later.
    public var runTimeAlarmExtension: Seconds

    /// Stale telemetry: no TICK for this many tick intervals while a run is open.
    public var staleAfterTickIntervals: Double
    public var expectedTickInterval: Seconds

    /// A raised limit clears only when the value is back inside by this
    /// fraction of the threshold, so a value hovering at the line does not flap.
    public var hysteresisFraction: Double

    /// Assumed CD3+ collection efficiency, for the yield prediction.
    public var collectionEfficiency: Double

    /// An assumption to configure per unit: the fraction of the patient's
    /// white cells that are CD3+ T cells, used only for the yield prediction
    /// when no CD3+ count is sent (the interface carries PRE_WBC only).
    /// 0.20 is a conservative figure for children's peripheral blood.
    public var assumedCD3FractionOfWBC: Double

    /// Sliding window (of RUN_TIME) for the rates behind the predictions.
    public var predictionWindow: Seconds

    /// The inlet:AC set point assumed when a run is watched without its
    /// RUN_START (limits.md: 12:1); said so in every ratio message. Never
    /// used when RUN_START is known, even if it lacks AC_RATIO_SET.
    public var defaultRatioSet: Double

    public init(
        name: String,
        procedures: Set<Procedure> = [],
        minimumWeight: Mass? = nil,
        maximumWeight: Mass? = nil,
        ratioWindow: Seconds = Seconds(60),
        ratioWarnDeviation: Double = 1.0,
        ratioAlarmDeviation: Double = 2.0,
        ratioAgreementAlarmFraction: Double = 0.10,
        acInfusionWindow: Seconds = Seconds(60),
        acInfusionRateWarn: BloodVolumeNormalisedRate = .millilitresPerMinutePerLitre(1.0),
        acInfusionRateAlarm: BloodVolumeNormalisedRate = .millilitresPerMinutePerLitre(1.2),
        citrateConcentration: MassConcentration = .milligramsPerMillilitre(21.3),
        citrateLoadWarn: WeightNormalisedMassRate = .milligramsPerKilogramPerMinute(1.8),
        citrateLoadAlarm: WeightNormalisedMassRate = .milligramsPerKilogramPerMinute(2.6),
        collectTarget: Volume? = nil,
        collectAlarmFractionOfTBV: Double = 0.15,
        extracorporealAlarmFractionOfTBV: Double = 0.15,
        bloodProcessedAlarmFactor: Double = 1.25,
        runTimeAlarmExtension: Seconds = .minutes(30),
        staleAfterTickIntervals: Double = 3,
        expectedTickInterval: Seconds = Seconds(5),
        hysteresisFraction: Double = 0.05,
        collectionEfficiency: Double = 0.5,
        assumedCD3FractionOfWBC: Double = 0.20,
        predictionWindow: Seconds = Seconds(60),
        defaultRatioSet: Double = 12.0
    ) {
        self.name = name
        self.procedures = procedures
        self.minimumWeight = minimumWeight
        self.maximumWeight = maximumWeight
        self.ratioWindow = ratioWindow
        self.ratioWarnDeviation = ratioWarnDeviation
        self.ratioAlarmDeviation = ratioAlarmDeviation
        self.ratioAgreementAlarmFraction = ratioAgreementAlarmFraction
        self.acInfusionWindow = acInfusionWindow
        self.acInfusionRateWarn = acInfusionRateWarn
        self.acInfusionRateAlarm = acInfusionRateAlarm
        self.citrateConcentration = citrateConcentration
        self.citrateLoadWarn = citrateLoadWarn
        self.citrateLoadAlarm = citrateLoadAlarm
        self.collectTarget = collectTarget
        self.collectAlarmFractionOfTBV = collectAlarmFractionOfTBV
        self.extracorporealAlarmFractionOfTBV = extracorporealAlarmFractionOfTBV
        self.bloodProcessedAlarmFactor = bloodProcessedAlarmFactor
        self.runTimeAlarmExtension = runTimeAlarmExtension
        self.staleAfterTickIntervals = staleAfterTickIntervals
        self.expectedTickInterval = expectedTickInterval
        self.hysteresisFraction = hysteresisFraction
        self.collectionEfficiency = collectionEfficiency
        self.assumedCD3FractionOfWBC = assumedCD3FractionOfWBC
        self.predictionWindow = predictionWindow
        self.defaultRatioSet = defaultRatioSet
    }

    /// The defaults of limits.md, for any procedure and patient.
    public static let standard = LimitProfile(name: "default")

    /// Pediatric CMNC collection (autologous CD3+ lymphocytes): the defaults of
    /// limits.md, for CMNC under 40 kg, with the clinic's collect target.
    public static let pediatricCMNC = LimitProfile(
        name: "pediatric-cmnc", procedures: [.cmnc], maximumWeight: Mass(kilograms: 40),
        collectTarget: .millilitres(250))

    /// Whether this profile applies to a run of `procedure` for a patient of `weight`.
    public func applies(to procedure: Procedure, weight: Mass?) -> Bool {
        guard procedures.isEmpty || procedures.contains(procedure) else { return false }
        if let minimumWeight {
            guard let weight, weight >= minimumWeight else { return false }
        }
        if let maximumWeight {
            guard let weight, weight <= maximumWeight else { return false }
        }
        return true
    }

    /// The first profile that applies, in the configured order; the standard
    /// profile when none does.
    public static func select(from profiles: [LimitProfile], procedure: Procedure, weight: Mass?) -> LimitProfile {
        profiles.first { $0.applies(to: procedure, weight: weight) } ?? .standard
    }
}
