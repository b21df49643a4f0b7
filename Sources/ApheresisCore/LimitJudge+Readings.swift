import Quantities
import SeparatorProtocol

/// The limits read from the telemetry: ratio and agreement, AC infusion and citrate rates,
/// progress against the targets.
extension LimitJudge {
    func ratio(_ d: DerivedValues) -> [AlarmVerdict] {
        let set = ratioSet
        let setText: (Double) -> String = { [assumed = isRatioSetAssumed] s in
            assumed ? "set point \(display(s)):1 assumed: RUN_START missing" : "set \(display(s)):1"
        }
        var out: [AlarmVerdict] = []
        let over = d.ratioSpan.map { spanText($0, naming: profile.ratioWindow) } ?? spanText(profile.ratioWindow)
        if d.acPumpDeliveringNothing {
            let setPart = set.map { " (\(setText($0)))" } ?? ""
            let message =
                "AC pump delivering no anticoagulant: inlet blood flowed over the last \(over) of run time but no ACD-A was drawn\(setPart). Clotting risk in the set."
            out.append(
                .raise(
                    .acRatio, level: .alarm, value: nil, limit: set.map { clinic($0 + profile.ratioAlarmDeviation) }, unit: "{ratio}",
                    message: message))
        } else if let ratio = d.windowRatio, let set {
            let deviation = abs(ratio - set)
            let sign: Double = ratio >= set ? 1 : -1
            let limit: (AlarmLevel) -> Double = { set + sign * ($0 == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation) }
            let risk = ratio >= set ? "less anticoagulant than set: clotting risk" : "more anticoagulant than set: citrate risk"
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A ratio \(display(ratio)):1 over the last \(over) of run time, \(setText(set))"
                guard let level else { return head + ": back within ±\(display(profile.ratioWarnDeviation))." }
                let line = level == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation
                return head + ", off by \(display(deviation)) (\(level.rawValue) at ±\(display(line))): \(risk)."
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .acRatio, measure: deviation,
                        lines: [(.warning, profile.ratioWarnDeviation), (.alarm, profile.ratioAlarmDeviation)],
                        hysteresis: profile.hysteresisFraction, value: ratio, limit: limit, unit: "{ratio}", message: message)))
        }

        if let disagreement = d.ratioDisagreementFraction, let range = d.deviceRatioRange {
            let line = profile.ratioAgreementAlarmFraction
            let recomputed = d.windowRatio.map { "\(display($0)):1" } ?? "no ACD-A at all"
            let shown =
                range.lowerBound == range.upperBound
                ? "\(display(range.lowerBound)):1" : "\(display(range.lowerBound)):1 to \(display(range.upperBound)):1"
            let message: (AlarmLevel?) -> String = { level in
                let head = "The separator showed ratio \(shown) but its volumes give \(recomputed) over the last \(over) of run time"
                guard level != nil else { return head + ": they agree again (within \(display(line * 100)) %)." }
                return head + ": \(display(disagreement * 100)) % apart, more than \(display(line * 100)) %. Do not trust the displayed ratio."
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .acRatioAgreement, measure: disagreement, lines: [(.alarm, line)], hysteresis: profile.hysteresisFraction,
                        strict: true, value: disagreement * 100, limit: { _ in line * 100 }, unit: "%", message: message)))
        }
        return out
    }

    func rates(_ d: DerivedValues) -> [AlarmVerdict] {
        var out: [AlarmVerdict] = []
        // These sentences name no window; they name the span when it is not the window.
        var over = ""
        if let span = d.acInfusionSpan, abs(span.value - profile.acInfusionWindow.value) > 0.5 {
            over = " over the last \(spanText(span)) of run time"
        }
        if let rate = d.acInfusionRate {
            let warn = profile.acInfusionRateWarn
            let alarm = profile.acInfusionRateAlarm
            let tbvNote = self.tbvNote
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A reaching the patient at \(display(rate.millilitresPerMinutePerLitre)) mL/min per litre of blood volume\(over)\(tbvNote)"
                guard level != nil else { return head + ": back under \(display(warn.millilitresPerMinutePerLitre)) mL/min/L." }
                return head + " (warning at \(display(warn.millilitresPerMinutePerLitre)), alarm at \(display(alarm.millilitresPerMinutePerLitre)) mL/min/L)."
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .acInfusionRate, measure: rate.perSecond, lines: [(.warning, warn.perSecond), (.alarm, alarm.perSecond)],
                        hysteresis: profile.hysteresisFraction, value: rate.millilitresPerMinutePerLitre,
                        limit: { ($0 == .alarm ? alarm : warn).millilitresPerMinutePerLitre }, unit: "mL/min/L", message: message)))
        }
        if let load = d.citrateLoadRate {
            let warn = profile.citrateLoadWarn
            let alarm = profile.citrateLoadAlarm
            let message: (AlarmLevel?) -> String = { level in
                let head = "Citrate load \(display(load.milligramsPerKilogramPerMinute)) mg/kg/min\(over)"
                guard level != nil else { return head + ": back under \(display(warn.milligramsPerKilogramPerMinute)) mg/kg/min." }
                return head
                    + " (warning at \(display(warn.milligramsPerKilogramPerMinute)), alarm at \(display(alarm.milligramsPerKilogramPerMinute)) mg/kg/min): watch for tingling, consider calcium."
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .citrateLoad, measure: load.perSecond, lines: [(.warning, warn.perSecond), (.alarm, alarm.perSecond)],
                        hysteresis: profile.hysteresisFraction, value: load.milligramsPerKilogramPerMinute,
                        limit: { ($0 == .alarm ? alarm : warn).milligramsPerKilogramPerMinute }, unit: "mg/kg/min", message: message)))
        }
        return out
    }

    func progress(_ d: DerivedValues) -> [AlarmVerdict] {
        var out: [AlarmVerdict] = []
        let h = profile.hysteresisFraction
        let tbv = totalBloodVolume
        let tbvNote = self.tbvNote

        if let collected = d.collectedVolume {
            var tiers: [(AlarmLevel, Double)] = []
            if let target = profile.collectTarget { tiers.append((.warning, target.cubicMetres)) }
            let maximum = tbv.map { $0 * profile.collectAlarmFractionOfTBV }
            if let maximum { tiers.append((.alarm, maximum.cubicMetres)) }
            if !tiers.isEmpty {
                let percent = d.collectedFractionOfTBV.map { " (\(display($0 * 100)) % of TBV)" } ?? ""
                let message: (AlarmLevel?) -> String = { level in
                    let head = "Collected volume \(display(collected.millilitres)) mL\(percent)"
                    switch level {
                    case .alarm?:
                        return head + " has reached the maximum of \(display(profile.collectAlarmFractionOfTBV * 100)) % of TBV"
                            + " (\(display(maximum?.millilitres ?? 0)) mL)\(tbvNote)."
                    case .warning?: return head + " has reached the target of \(display(profile.collectTarget?.millilitres ?? 0)) mL."
                    case nil: return head + ": below the line again."
                    }
                }
                let limit: (AlarmLevel) -> Double? = { ($0 == .alarm ? maximum : profile.collectTarget)?.millilitres }
                out.append(
                    .reading(
                        LimitReading(
                            code: .collectedVolume, measure: collected.cubicMetres, lines: tiers, hysteresis: h, value: collected.millilitres,
                            limit: limit, unit: "mL", message: message)))
            }
        }

        let factor = profile.bloodProcessedAlarmFactor
        if let target = start.targetWholeBloodVolume, let wb = d.wholeBloodProcessed {
            let message: (AlarmLevel?) -> String = { level in
                let head = "Whole blood processed \(display(wb.millilitres)) mL"
                switch level {
                case .alarm?: return head + ", \(display(factor)) x the target of \(display(target.millilitres)) mL reached: beyond the plan."
                case .warning?: return head + ": the target of \(display(target.millilitres)) mL is reached."
                case nil: return head + ": below the target of \(display(target.millilitres)) mL."
                }
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .wholeBloodProcessed, measure: wb.cubicMetres,
                        lines: [(.warning, target.cubicMetres), (.alarm, (target * factor).cubicMetres)], hysteresis: h, value: wb.millilitres,
                        limit: { $0 == .alarm ? (target * factor).millilitres : target.millilitres }, unit: "mL", message: message)))
        }
        if let target = start.targetBloodVolumesProcessed, let processed = d.bloodVolumesProcessed {
            let message: (AlarmLevel?) -> String = { level in
                let head = "Blood volumes processed \(display(processed, decimals: 3)) TBV\(tbvNote)"
                switch level {
                case .alarm?: return head + ", \(display(factor)) x the target of \(display(target)) TBV reached: beyond the plan."
                case .warning?: return head + ": the target of \(display(target)) TBV is reached."
                case nil: return head + ": below the target of \(display(target)) TBV."
                }
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .bloodVolumesProcessed, measure: processed, lines: [(.warning, target), (.alarm, target * factor)], hysteresis: h,
                        value: processed, limit: { $0 == .alarm ? target * factor : target }, unit: "{TBV}", message: message)))
        }

        if let target = start.targetRunTime, let runTime = d.runTime {
            let alarmAt = target + profile.runTimeAlarmExtension
            let message: (AlarmLevel?) -> String = { level in
                let head = "Run time \(display(runTime.minutes)) min"
                switch level {
                case .alarm?: return head + ": \(display(profile.runTimeAlarmExtension.minutes)) min past the planned \(display(target.minutes)) min."
                case .warning?: return head + ": the planned \(display(target.minutes)) min is reached."
                case nil: return head + ": within the planned \(display(target.minutes)) min."
                }
            }
            out.append(
                .reading(
                    LimitReading(
                        code: .runTime, measure: runTime.value, lines: [(.warning, target.value), (.alarm, alarmAt.value)], hysteresis: h,
                        value: runTime.minutes, limit: { $0 == .alarm ? alarmAt.minutes : target.minutes }, unit: "min", message: message)))
        }
        return out
    }
}
