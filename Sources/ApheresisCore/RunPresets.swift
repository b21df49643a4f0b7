import Quantities

/// A preset the unit may change for one run (limits.md: "overridable for one run through the API
/// with an audit entry"). The raw value is the key clients send and read, with its unit in its name;
/// values are converted to the profile's SI types here, at the edge.
public enum RunPreset: String, CaseIterable, Sendable, Comparable {
    case ratioWarnDeviation = "ratio_warn_deviation"
    case ratioAlarmDeviation = "ratio_alarm_deviation"
    case acInfusionRateWarn = "ac_infusion_rate_warn_ml_per_min_per_l"
    case acInfusionRateAlarm = "ac_infusion_rate_alarm_ml_per_min_per_l"
    case citrateLoadWarn = "citrate_load_warn_mg_per_kg_per_min"
    case citrateLoadAlarm = "citrate_load_alarm_mg_per_kg_per_min"
    case collectTarget = "collect_target_ml"
    /// Stored by the profile as a fraction of the patient's TBV; set in mL for this patient.
    case collectMaximum = "collect_max_ml"

    public static func < (a: RunPreset, b: RunPreset) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The unit of the value, as people read it.
    public var unit: String {
        switch self {
        case .ratioWarnDeviation, .ratioAlarmDeviation: "ratio units"
        case .acInfusionRateWarn, .acInfusionRateAlarm: "mL/min/L"
        case .citrateLoadWarn, .citrateLoadAlarm: "mg/kg/min"
        case .collectTarget, .collectMaximum: "mL"
        }
    }

    /// What a clinic could mean; anything outside is a typing error. The same ranges as the
    /// configuration's `[[profile]]` keys.
    public var range: ClosedRange<Double> {
        switch self {
        case .ratioWarnDeviation, .ratioAlarmDeviation: 0.1...20
        case .acInfusionRateWarn, .acInfusionRateAlarm: 0.01...10
        case .citrateLoadWarn, .citrateLoadAlarm: 0.01...20
        case .collectTarget, .collectMaximum: 1...5000
        }
    }

    /// The value in the key's unit; nil when the profile has none (no collect target, or no TBV to
    /// express the maximum in mL). Cleaned of the SI round trip: 1.8, not 1.7999999999999998.
    public func read(_ profile: LimitProfile, totalBloodVolume: Volume?) -> Double? {
        readExactly(profile, totalBloodVolume: totalBloodVolume).map(clinic)
    }

    private func readExactly(_ profile: LimitProfile, totalBloodVolume: Volume?) -> Double? {
        switch self {
        case .ratioWarnDeviation: profile.ratioWarnDeviation
        case .ratioAlarmDeviation: profile.ratioAlarmDeviation
        case .acInfusionRateWarn: profile.acInfusionRateWarn.millilitresPerMinutePerLitre
        case .acInfusionRateAlarm: profile.acInfusionRateAlarm.millilitresPerMinutePerLitre
        case .citrateLoadWarn: profile.citrateLoadWarn.milligramsPerKilogramPerMinute
        case .citrateLoadAlarm: profile.citrateLoadAlarm.milligramsPerKilogramPerMinute
        case .collectTarget: profile.collectTarget?.millilitres
        case .collectMaximum: totalBloodVolume.map { ($0 * profile.collectAlarmFractionOfTBV).millilitres }
        }
    }

    fileprivate func write(_ value: Double, to profile: inout LimitProfile, totalBloodVolume: Volume?) throws(PresetChangeError) {
        switch self {
        case .ratioWarnDeviation: profile.ratioWarnDeviation = value
        case .ratioAlarmDeviation: profile.ratioAlarmDeviation = value
        case .acInfusionRateWarn: profile.acInfusionRateWarn = .millilitresPerMinutePerLitre(value)
        case .acInfusionRateAlarm: profile.acInfusionRateAlarm = .millilitresPerMinutePerLitre(value)
        case .citrateLoadWarn: profile.citrateLoadWarn = .milligramsPerKilogramPerMinute(value)
        case .citrateLoadAlarm: profile.citrateLoadAlarm = .milligramsPerKilogramPerMinute(value)
        case .collectTarget: profile.collectTarget = .millilitres(value)
        case .collectMaximum:
            guard let tbv = totalBloodVolume, tbv.cubicMetres > 0 else {
                throw PresetChangeError(
                    preset: self, message: "collect_max_ml needs the patient's total blood volume, which this run's start did not carry")
            }
            profile.collectAlarmFractionOfTBV = Volume.millilitres(value) / tbv
        }
    }

    /// Pairs whose lower member must stay below the upper one: a warning comes before its alarm.
    static let orderings: [(lower: RunPreset, upper: RunPreset, what: String)] = [
        (.ratioWarnDeviation, .ratioAlarmDeviation, "ACD-A ratio deviation"),
        (.acInfusionRateWarn, .acInfusionRateAlarm, "AC infusion rate"),
        (.citrateLoadWarn, .citrateLoadAlarm, "citrate load"),
        (.collectTarget, .collectMaximum, "collected volume"),
    ]
}

/// Why a preset change was refused, naming the key.
public struct PresetChangeError: Error, Sendable, Equatable, CustomStringConvertible {
    public var preset: RunPreset?
    public var message: String
    public var description: String { message }
}

extension LimitProfile {
    /// The keys of `changes` that raise a line above where this profile has it: every preset is an
    /// upper line (a warning, an alarm, or the collect target, which is the first warning on collected
    /// volume), so raising one lets the run go further before the daemon speaks. A line with no
    /// value now (no collect target, no TBV) counts as raised.
    public func raisedLines(_ changes: [RunPreset: Double], totalBloodVolume: Volume?) -> [RunPreset] {
        changes.filter { preset, value in value > (preset.read(self, totalBloodVolume: totalBloodVolume) ?? -.infinity) }.keys.sorted()
    }

    /// This profile with `changes` applied (values in each key's unit). Refused as a whole, naming
    /// the key, when a value is not finite, outside its range, or would put a warning at or above
    /// its alarm, against the changed or the unchanged member of the pair.
    public func applying(_ changes: [RunPreset: Double], totalBloodVolume: Volume?) throws(PresetChangeError) -> LimitProfile {
        var profile = self
        for (preset, value) in changes.sorted(by: { $0.key < $1.key }) {
            guard value.isFinite else { throw PresetChangeError(preset: preset, message: "\(preset.rawValue): not a number") }
            guard preset.range.contains(value) else {
                throw PresetChangeError(
                    preset: preset,
                    message: "\(preset.rawValue): \(display(value)) \(preset.unit) is outside \(display(preset.range.lowerBound))...\(display(preset.range.upperBound)) \(preset.unit)")
            }
            try preset.write(value, to: &profile, totalBloodVolume: totalBloodVolume)
        }
        for (lower, upper, what) in RunPreset.orderings where changes[lower] != nil || changes[upper] != nil {
            guard let low = lower.read(profile, totalBloodVolume: totalBloodVolume),
                let high = upper.read(profile, totalBloodVolume: totalBloodVolume), low >= high
            else { continue }
            func shown(_ p: RunPreset, _ v: Double) -> String {
                "\(p.rawValue) = \(display(v)) \(p.unit)" + (changes[p] == nil ? " (unchanged)" : "")
            }
            throw PresetChangeError(
                preset: changes[upper] != nil ? upper : lower,
                message: "the \(what) alarm line (\(shown(upper, high))) must stay above its warning line (\(shown(lower, low)))")
        }
        return profile
    }
}
