import Quantities
import SeparatorProtocol

/// Whether a limit could be judged at a sample.
enum Judging: Equatable {
    case judged
    /// The run's first window is still filling: not reportable.
    case warmingUp
    case notJudged(String)
}

/// Judges a run's values against its limit profile (limits.md): says what alarm each limit
/// wants (`AlarmVerdict`), and which limits cannot be judged and why. Holds no alarm state:
/// the `AlarmBook` keeps the levels, and with them the hysteresis.
struct LimitJudge {
    var profile: LimitProfile
    var start: RunStartValues
    /// False while the run is watched without its RUN_START.
    var hasRunStart: Bool
    var inferredTotalBloodVolume: Volume?

    /// The limits `RunMonitor.unjudged` speaks about, in the order changes are reported.
    static let judgedCodes: [AlarmCode] = [
        .acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad, .extracorporealVolume, .collectedVolume, .wholeBloodProcessed,
        .bloodVolumesProcessed, .runTime,
    ]

    /// TBV from RUN_START, else inferred from the telemetry.
    var totalBloodVolume: Volume? { start.totalBloodVolume ?? inferredTotalBloodVolume }

    /// AC_RATIO_SET, or the profile's default while the run is watched without RUN_START.
    var ratioSet: Double? { start.acRatioSet ?? (hasRunStart ? nil : profile.defaultRatioSet) }

    var isRatioSetAssumed: Bool { start.acRatioSet == nil && !hasRunStart }

    /// " (TBV 2400 mL inferred ...)" when the TBV in a computation is inferred.
    var tbvNote: String {
        guard start.totalBloodVolume == nil, let tbv = inferredTotalBloodVolume else { return "" }
        let why = hasRunStart ? "not in RUN_START" : "RUN_START missing"
        return " (TBV \(display(tbv.millilitres, decimals: 0)) mL inferred from WB_VOL / TBV_PROCESSED: \(why))"
    }

    /// The quantity `code` judges, in the alarm's unit (see `RunMonitor.currentValue(of:)`).
    static func presentValue(of code: AlarmCode, in d: DerivedValues) -> Double? {
        switch code {
        case .acRatio: d.windowRatio
        case .acRatioAgreement: d.ratioDisagreementFraction.map { $0 * 100 }
        case .acInfusionRate: d.acInfusionRate?.millilitresPerMinutePerLitre
        case .citrateLoad: d.citrateLoadRate?.milligramsPerKilogramPerMinute
        case .collectedVolume: d.collectedVolume?.millilitres
        case .extracorporealVolume: d.extracorporealFractionOfTBV.map { $0 * 100 }
        case .wholeBloodProcessed: d.wholeBloodProcessed?.millilitres
        case .bloodVolumesProcessed: d.bloodVolumesProcessed
        case .runTime: d.runTime?.minutes
        default: nil
        }
    }

    // MARK: - Judged or not

    /// What keeps a limit from being judged whatever the samples: inputs RUN_START did not give.
    func structuralJudging(_ d: DerivedValues) -> [AlarmCode: Judging] {
        var j: [AlarmCode: Judging] = [:]
        if ratioSet == nil {
            j[.acRatio] = .notJudged("AC_RATIO_SET missing from RUN_START: only a stalled AC pump is detected")
        }
        let tbvMissing =
            hasRunStart
            ? "TBV missing from RUN_START" : "TBV unknown (RUN_START missing) and not yet inferable from WB_VOL / TBV_PROCESSED"
        if totalBloodVolume == nil {
            j[.acInfusionRate] = .notJudged(tbvMissing)
            j[.collectedVolume] = .notJudged(
                tbvMissing + ": the maximum of \(display(profile.collectAlarmFractionOfTBV * 100)) % of TBV is not judged")
        } else {
            j[.collectedVolume] = .judged
        }
        if start.bodyMass == nil {
            j[.citrateLoad] = .notJudged(hasRunStart ? "patient weight missing from RUN_START" : "patient weight unknown (RUN_START missing)")
        }
        if !hasRunStart {
            j[.extracorporealVolume] = .notJudged("ECV unknown (RUN_START missing)")
            j[.wholeBloodProcessed] = .notJudged("TARGET_WB_VOL unknown (RUN_START missing)")
            j[.bloodVolumesProcessed] = .notJudged("TARGET_TBV unknown (RUN_START missing)")
            j[.runTime] = .notJudged("TARGET_RUN_TIME unknown (RUN_START missing)")
        } else {
            if d.extracorporealFractionOfTBV != nil {
                j[.extracorporealVolume] = .judged
            } else {
                j[.extracorporealVolume] = .notJudged(start.extracorporealVolume == nil ? "ECV missing from RUN_START" : tbvMissing)
            }
            j[.wholeBloodProcessed] = .judged
            j[.bloodVolumesProcessed] = start.targetBloodVolumesProcessed != nil && totalBloodVolume == nil ? .notJudged(tbvMissing) : .judged
            j[.runTime] = .judged
        }
        return j
    }

    /// Updates `unjudged` and returns what changed. Warm-up and codes not in `judging` (a pause)
    /// leave the state as it is.
    static func record(_ judging: [AlarmCode: Judging], into unjudged: inout [AlarmCode: String], runTime: Seconds?) -> [JudgementChange] {
        var changes: [JudgementChange] = []
        for code in judgedCodes {
            switch judging[code] {
            case .judged?:
                guard unjudged.removeValue(forKey: code) != nil else { continue }
                changes.append(JudgementChange(code: code, judged: true, reason: nil, runTimeMinutes: runTime?.minutes))
            case .notJudged(let reason)?:
                guard unjudged[code] != reason else { continue }
                unjudged[code] = reason
                changes.append(JudgementChange(code: code, judged: false, reason: reason, runTimeMinutes: runTime?.minutes))
            case .warmingUp?, nil:
                continue
            }
        }
        return changes
    }

    // MARK: - The start

    /// The ECV check of limits.md: `fraction` = ECV / TBV as RUN_START gives them.
    func extracorporealVolume(fraction: Double) -> [AlarmVerdict] {
        guard let ecv = start.extracorporealVolume, let tbv = start.totalBloodVolume else { return [] }
        let line = profile.extracorporealAlarmFractionOfTBV
        // limits.md: "above 15 %" - at exactly the line the set is still acceptable.
        guard Crossing.isAbove(fraction, line) else { return [] }
        let message =
            "The set's extracorporeal volume \(display(ecv.millilitres)) mL is \(display(fraction * 100)) % of the patient's blood volume "
            + "(\(display(tbv.millilitres)) mL), above \(display(line * 100)) %: a blood prime is needed."
        return [.raise(.extracorporealVolume, level: .alarm, value: clinic(fraction * 100), limit: clinic(line * 100), unit: "%", message: message)]
    }

    // MARK: - The data itself

    /// One latched alarm per class of flag the sample carries.
    static func dataQuality(_ flags: [DataQualityFlag]) -> [AlarmVerdict] {
        var out: [AlarmVerdict] = []
        for code in [AlarmCode.dataDecreasing, .dataRange, .dataClockJump] {
            let mine = flags.filter { $0.alarmCode == code }
            guard !mine.isEmpty else { continue }
            let sentences = mine.map(describe).joined(separator: " ")
            var value: Double?
            var unit = ""
            if case .clockJump(let device, _, _)? = mine.first {
                value = device.value
                unit = "s"
            }
            let message = sentences + " The sample is kept and marked."
            out.append(.latched(code, level: .alarm, value: value, limit: nil, unit: unit, message: message))
        }
        return out
    }

    /// One DATA_GAP raise for what a message revealed: an alarm for messages missing from the
    /// sequence (the record itself is incomplete), a warning for TICKs the device did not send.
    static func gaps(_ gaps: [TelemetryGap], completeness: TelemetryCompleteness) -> [AlarmVerdict] {
        guard !gaps.isEmpty else { return [] }
        let level: AlarmLevel = gaps.contains { $0.kind == .sequence } ? .alarm : .warning
        let missing = gaps.reduce(0) { $0 + $1.missingCount }
        let unit = Set(gaps.map(\.kind)).count > 1 ? "messages and TICKs" : gaps[0].kind == .sequence ? "messages" : "TICKs"
        let message = gaps.map(\.sentence).joined(separator: " ") + " Telemetry so far: \(completeness.summary)."
        return [.latched(.dataGap, level: level, value: Double(missing), limit: nil, unit: unit, message: message)]
    }

    private static func describe(_ flag: DataQualityFlag) -> String {
        switch flag {
        case .decreasing(let code, let previous, let current):
            let unit = code.definition?.unit ?? ""
            return "\(code) went down from \(display(previous, decimals: 3)) to \(display(current, decimals: 3)) \(unit), but it can only grow."
        case .outOfRange(let code, let value, let range):
            let unit = code.definition?.unit ?? ""
            return "\(code) \(display(value, decimals: 3)) \(unit) is outside its physical range \(display(range.lowerBound))...\(display(range.upperBound)) \(unit)."
        case .unexpectedUnit(let code, let unit):
            return "\(code) came in '\(unit)' instead of '\(code.definition?.unit ?? "")'; not used."
        case .clockJump(let device, let runTime, let received):
            let runTimePart = runTime.map { ", run time by \(display($0.value)) s" } ?? ""
            return "The separator's clock moved by \(display(device.value)) s between two samples while the daemon's clock moved by \(display(received.value)) s\(runTimePart): clock jump."
        }
    }
}
