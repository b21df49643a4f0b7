import ApheresisCore
import Quantities
import SeparatorProtocol
import TOMLKit

/// A numeric profile key: its unit (in the key's name and in messages), the
/// range a clinic could mean, and how it lands in the SI-typed LimitProfile.
struct ProfileNumber: Sendable {
    var key: String
    var unit: String
    var range: ClosedRange<Double>
    /// Sets the field from the value in the key's unit.
    var apply: @Sendable (inout LimitProfile, Double) -> Void
    /// The field in the key's unit (nil when unset), for messages about defaults.
    var read: @Sendable (LimitProfile) -> Double?
    /// Why the range ends where it does, when a value outside would leave a limit never
    /// judged or never cleared; said in the refusal.
    var why: String? = nil
}

/// `[[profile]]` blocks: every key but name optional, defaults from LimitProfile.
struct ProfileReader {
    let checker: Checker

    static let numbers: [ProfileNumber] = [
        ProfileNumber(key: "min_weight_kg", unit: "kg", range: 0.5...300,
            apply: { $0.minimumWeight = Mass(kilograms: $1) }, read: { $0.minimumWeight?.kilograms }),
        ProfileNumber(key: "max_weight_kg", unit: "kg", range: 0.5...300,
            apply: { $0.maximumWeight = Mass(kilograms: $1) }, read: { $0.maximumWeight?.kilograms }),
        ProfileNumber(key: "ratio_window_s", unit: "s", range: 5...3600,
            apply: { $0.ratioWindow = Seconds($1) }, read: { $0.ratioWindow.value }),
        ProfileNumber(key: "ratio_warn_deviation", unit: "", range: 0.1...20,
            apply: { $0.ratioWarnDeviation = $1 }, read: { $0.ratioWarnDeviation }),
        ProfileNumber(key: "ratio_alarm_deviation", unit: "", range: 0.1...20,
            apply: { $0.ratioAlarmDeviation = $1 }, read: { $0.ratioAlarmDeviation }),
        ProfileNumber(key: "ratio_agreement_alarm_percent", unit: "%", range: 0.1...99,
            apply: { $0.ratioAgreementAlarmFraction = $1 / 100 }, read: { $0.ratioAgreementAlarmFraction * 100 },
            why: "a stalled AC pump (inlet flowing, no ACD-A drawn) counts as 100 % apart, so at 100 % or more it would never raise the agreement alarm"),
        ProfileNumber(key: "ac_inf_window_s", unit: "s", range: 5...3600,
            apply: { $0.acInfusionWindow = Seconds($1) }, read: { $0.acInfusionWindow.value }),
        ProfileNumber(key: "ac_inf_rate_warn_ml_min_l", unit: "mL/min/L", range: 0.01...10,
            apply: { $0.acInfusionRateWarn = .millilitresPerMinutePerLitre($1) },
            read: { $0.acInfusionRateWarn.millilitresPerMinutePerLitre }),
        ProfileNumber(key: "ac_inf_rate_alarm_ml_min_l", unit: "mL/min/L", range: 0.01...10,
            apply: { $0.acInfusionRateAlarm = .millilitresPerMinutePerLitre($1) },
            read: { $0.acInfusionRateAlarm.millilitresPerMinutePerLitre }),
        ProfileNumber(key: "citrate_mg_ml", unit: "mg/mL", range: 1...100,
            apply: { $0.citrateConcentration = .milligramsPerMillilitre($1) },
            read: { $0.citrateConcentration.milligramsPerMillilitre }),
        ProfileNumber(key: "citrate_load_warn_mg_kg_min", unit: "mg/kg/min", range: 0.01...20,
            apply: { $0.citrateLoadWarn = .milligramsPerKilogramPerMinute($1) },
            read: { $0.citrateLoadWarn.milligramsPerKilogramPerMinute }),
        ProfileNumber(key: "citrate_load_alarm_mg_kg_min", unit: "mg/kg/min", range: 0.01...20,
            apply: { $0.citrateLoadAlarm = .milligramsPerKilogramPerMinute($1) },
            read: { $0.citrateLoadAlarm.milligramsPerKilogramPerMinute }),
        ProfileNumber(key: "collect_target_ml", unit: "mL", range: 1...5000,
            apply: { $0.collectTarget = .millilitres($1) }, read: { $0.collectTarget?.millilitres }),
        ProfileNumber(key: "collect_alarm_percent_tbv", unit: "% of TBV", range: 0.1...100,
            apply: { $0.collectAlarmFractionOfTBV = $1 / 100 }, read: { $0.collectAlarmFractionOfTBV * 100 }),
        ProfileNumber(key: "ecv_alarm_percent_tbv", unit: "% of TBV", range: 0.1...100,
            apply: { $0.extracorporealAlarmFractionOfTBV = $1 / 100 },
            read: { $0.extracorporealAlarmFractionOfTBV * 100 }),
        ProfileNumber(key: "blood_processed_alarm_factor", unit: "x target", range: 1...10,
            apply: { $0.bloodProcessedAlarmFactor = $1 }, read: { $0.bloodProcessedAlarmFactor }),
        ProfileNumber(key: "run_time_alarm_extension_min", unit: "min", range: 0...600,
            apply: { $0.runTimeAlarmExtension = .minutes($1) }, read: { $0.runTimeAlarmExtension.minutes }),
        ProfileNumber(key: "stale_after_tick_intervals", unit: "tick intervals", range: 2...100,
            apply: { $0.staleAfterTickIntervals = $1 }, read: { $0.staleAfterTickIntervals },
            why: "under 2 intervals a TICK that is merely late (ordinary jitter) would count as stale telemetry"),
        ProfileNumber(key: "expected_tick_interval_s", unit: "s", range: 1...60,
            apply: { $0.expectedTickInterval = Seconds($1) }, read: { $0.expectedTickInterval.value },
            why: "the separator interface sends a TICK every 1 to 60 s; until the daemon has learned the real interval, another value makes every run stale at once or hides a silent one"),
        ProfileNumber(key: "hysteresis_percent", unit: "%", range: 0...50,
            apply: { $0.hysteresisFraction = $1 / 100 }, read: { $0.hysteresisFraction * 100 },
            why: "a raised limit clears only below its line less this share, so at 100 % an alarm could never clear, and above 50 % it would hang on long after the value is back"),
        ProfileNumber(key: "collection_efficiency_percent", unit: "%", range: 1...100,
            apply: { $0.collectionEfficiency = $1 / 100 }, read: { $0.collectionEfficiency * 100 }),
        ProfileNumber(key: "assumed_cd3_percent_of_wbc", unit: "% of WBC", range: 1...100,
            apply: { $0.assumedCD3FractionOfWBC = $1 / 100 }, read: { $0.assumedCD3FractionOfWBC * 100 }),
        ProfileNumber(key: "prediction_window_s", unit: "s", range: 5...3600,
            apply: { $0.predictionWindow = Seconds($1) }, read: { $0.predictionWindow.value }),
        ProfileNumber(key: "ac_ratio_set_default", unit: "", range: 4...30,
            apply: { $0.defaultRatioSet = $1 }, read: { $0.defaultRatioSet },
            why: "the set point assumed for a run watched without its RUN_START must be an inlet:AC ratio a separator is set to (12 for 12:1)"),
    ]

    /// (lower, upper): the first must stay below the second.
    static let orderings: [(lower: String, upper: String, what: String)] = [
        ("ratio_warn_deviation", "ratio_alarm_deviation", "ACD-A ratio deviation"),
        ("ac_inf_rate_warn_ml_min_l", "ac_inf_rate_alarm_ml_min_l", "AC infusion rate"),
        ("citrate_load_warn_mg_kg_min", "citrate_load_alarm_mg_kg_min", "citrate load"),
        ("min_weight_kg", "max_weight_kg", "weight range"),
    ]

    static var keys: [String] { ["name", "procedures"] + numbers.map(\.key) }

    func read(_ value: TOMLValue?) -> [LimitProfile] {
        var profiles: [LimitProfile] = []
        var names: [String: Int] = [:]
        for (index, table) in arrayOfTables(value, name: "profile", checker: checker) {
            let path = "profile[\(index)]"
            let before = checker.problems.count
            _ = checker.unknownKeys(in: table, at: path, known: Self.keys, what: "a [[profile]]")

            var name: String?
            if let n = checker.text(table, "name", at: path) {
                if DeviceReader.validName(n) {
                    if let first = names[n] {
                        checker.report(
                            .duplicateName, path + ".name",
                            "the name \"\(n)\" is already used by profile[\(first)]; each profile needs its own name")
                    } else {
                        names[n] = index
                        name = n
                    }
                } else {
                    checker.report(.invalidValue, path + ".name", "\"\(n)\" is not a usable profile name: use \(DeviceReader.namePattern)")
                }
            } else if table["name"] == nil {
                checker.report(.missingKey, path + ".name", "the profile has no name; add name = \"pediatric-cmnc\" (or similar)")
            }

            var profile = LimitProfile(name: name ?? "")
            if let list = checker.textList(table, "procedures", at: path) {
                var procedures: Set<Procedure> = []
                for word in list {
                    if let known = Procedure.known.first(where: { $0.rawValue == word }) {
                        procedures.insert(known)
                    } else {
                        let names = Procedure.known.map(\.rawValue)
                        var message = "unknown procedure \"\(word)\"; the separator reports \(names.joined(separator: ", "))"
                        if let near = Procedure.known.first(where: { $0.rawValue == word.uppercased() }) {
                            message += " (write \"\(near.rawValue)\" in capitals)"
                        } else if let near = Checker.nearest(to: word.uppercased(), among: names) {
                            message += " (did you mean \(near)?)"
                        }
                        checker.report(.unknownProcedure, path + ".procedures", message)
                    }
                }
                profile.procedures = procedures
            }

            var given: Set<String> = []
            let subject = name.map { "for profile \"\($0)\"" }
            for spec in Self.numbers {
                guard let v = checker.number(table, spec.key, at: path) else { continue }
                if checker.within(v, spec.range, unit: spec.unit, at: path + "." + spec.key, subject: subject, why: spec.why) {
                    spec.apply(&profile, v)
                    given.insert(spec.key)
                }
            }
            checkOrderings(profile, given: given, path: path)

            if checker.problems.count == before, name != nil { profiles.append(profile) }
        }
        return profiles
    }

    /// A warning must come before its alarm, including against a default the file leaves in place.
    private func checkOrderings(_ profile: LimitProfile, given: Set<String>, path: String) {
        for (lowerKey, upperKey, what) in Self.orderings where given.contains(lowerKey) || given.contains(upperKey) {
            let lower = Self.numbers.first { $0.key == lowerKey }!
            let upper = Self.numbers.first { $0.key == upperKey }!
            guard let low = lower.read(profile), let high = upper.read(profile), low >= high else { continue }
            func shown(_ spec: ProfileNumber, _ v: Double) -> String {
                format(v) + (spec.unit.isEmpty ? "" : " " + spec.unit) + (given.contains(spec.key) ? "" : " (default)")
            }
            let at = given.contains(upperKey) ? upperKey : lowerKey
            let message: String
            if lowerKey.hasPrefix("min_") {
                message = "the \(what) is empty: min_weight_kg \(shown(lower, low)) is not below max_weight_kg \(shown(upper, high))"
            } else {
                message = "the \(what) alarm (\(upperKey) = \(shown(upper, high))) must be above its warning (\(lowerKey) = \(shown(lower, low))): a warning has to come before the alarm"
            }
            checker.report(.ordering, path + "." + at, message)
        }
    }
}
