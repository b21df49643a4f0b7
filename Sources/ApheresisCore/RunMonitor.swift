import Quantities
import SeparatorProtocol

/// Watches one open run against a limit profile (limits.md). A value type:
/// the daemon evaluates a message on a copy and keeps the copy only if the
/// message is newly stored, so a resent duplicate changes nothing.
///
/// Two clocks: `receivedAt`/`now` are the daemon's monotonic clock (for
/// staleness and for stamping transitions); RUN_TIME is the time axis the
/// volumes integrate over (rates, windows, run-time limit). The device clock
/// is recorded and checked for jumps, never used for a duration.
public struct RunMonitor: Sendable {
    /// The profile the run is watched against: the selected one with this run's preset changes.
    public private(set) var profile: LimitProfile
    /// The profile selected at run start, before any change for this run.
    public let baseProfile: LimitProfile
    /// Presets changed for this run (values in each key's unit), all changes so far merged.
    public private(set) var presetChanges: [RunPreset: Double] = [:]
    public let start: RunStartValues
    /// What RUN_START raised (the ECV alarm), for the journal.
    public let initialTransitions: [AlarmTransition]

    /// In the order they were raised.
    public private(set) var activeAlarms: [ActiveAlarm] = []
    /// False after RUN_END.
    public private(set) var isOpen = true
    public private(set) var latestDerived = DerivedValues()
    public private(set) var latestPredictions = Predictions()
    /// The TICK period the staleness check uses: learned from the spacing of
    /// the device's TICKs, else the profile's expectation.
    public private(set) var tickInterval: Seconds
    public private(set) var isLinkUp = true

    /// RUN_TIME windows need samples within the longest window only.
    private var history: [TelemetrySample] = []
    /// The previous TICK (or RUN_START), for the decreasing and clock checks.
    private var clockReference: ClockReference
    private var previousCumulative: [ParameterCode: Double] = [:]
    private var lastTickReceivedAt: Duration
    private var tickIntervalObservations: [Seconds] = []

    /// RUN_TIME travels as decimal minutes (0.001 min); window edges compare
    /// with this tolerance so that the binary error of a decimal does not
    /// drop a sample that lies exactly on the edge.
    static let runTimeTolerance = Seconds(0.001)
    /// A device clock advance that differs by more than this from both the
    /// RUN_TIME advance and the daemon's own clock advance is a clock jump.
    static let clockJumpTolerance = Seconds(60)
    /// Learned tick intervals outside (0, 120] s are not a TICK period
    /// (the interface allows 1-60 s).
    static let plausibleTickInterval = Seconds(120)
    static let tickIntervalSamples = 9

    private struct ClockReference: Sendable {
        var deviceTimestamp: DeviceTimestamp
        var receivedAt: Duration
        var runTime: Seconds?
    }

    private struct Stamp {
        var at: Duration
        var runTime: Seconds?
        var deviceTimestamp: DeviceTimestamp?
        var runTimeMinutes: Double? { runTime?.minutes }
    }

    // MARK: - Start

    public static func profile(for runStart: SeparatorMessage, from profiles: [LimitProfile]) -> LimitProfile {
        LimitProfile.select(
            from: profiles, procedure: runStart.order.procedure,
            weight: runStart.patient?.weightKilograms.map { Mass(kilograms: $0) })
    }

    public init(runStart: SeparatorMessage, profile: LimitProfile, receivedAt: Duration) {
        self.profile = profile
        self.baseProfile = profile
        let start = RunStartValues(runStart)
        self.start = start
        self.tickInterval = profile.expectedTickInterval
        self.clockReference = ClockReference(deviceTimestamp: runStart.timestamp, receivedAt: receivedAt, runTime: .zero)
        self.lastTickReceivedAt = receivedAt

        var derived = DerivedValues()
        derived.runTime = .zero
        var initial: [AlarmTransition] = []
        if let ecv = start.extracorporealVolume, let tbv = start.totalBloodVolume {
            let fraction = ecv / tbv
            derived.extracorporealFractionOfTBV = fraction
            let line = profile.extracorporealAlarmFractionOfTBV
            // limits.md: "above 15 %" - at exactly the line the set is still acceptable.
            if fraction > line {
                let stamp = Stamp(at: receivedAt, runTime: .zero, deviceTimestamp: runStart.timestamp)
                let message =
                    "The set's extracorporeal volume \(display(ecv.millilitres)) mL is \(display(fraction * 100)) % of the patient's blood volume "
                    + "(\(display(tbv.millilitres)) mL), above \(display(line * 100)) %: a blood prime is needed."
                if let t = Self.apply(
                    &activeAlarms, code: .extracorporealVolume, to: .alarm, value: fraction * 100, limit: line * 100, unit: "%",
                    message: message, stamp: stamp)
                {
                    initial.append(t)
                }
            }
        }
        self.initialTransitions = initial
        self.latestDerived = derived
    }

    // MARK: - Presets

    /// Changes presets for the rest of this run. Refused as a whole (nothing changes) when a value
    /// is out of range or would put a warning at or above its alarm. The new lines hold from the
    /// next evaluation on; an alarm already raised clears or escalates by them then.
    public mutating func changePresets(_ changes: [RunPreset: Double]) throws(PresetChangeError) {
        try setPresetChanges(presetChanges.merging(changes) { _, new in new })
    }

    /// The keys of `changes` that would raise a line above where this run has it now.
    public func raisedLines(_ changes: [RunPreset: Double]) -> [RunPreset] {
        profile.raisedLines(changes, totalBloodVolume: start.totalBloodVolume)
    }

    /// Replaces every change made for this run (restoring a watcher, or undoing a change the store
    /// refused to record).
    public mutating func setPresetChanges(_ all: [RunPreset: Double]) throws(PresetChangeError) {
        profile = try baseProfile.applying(all, totalBloodVolume: start.totalBloodVolume)
        presetChanges = all
    }

    // MARK: - Messages

    public mutating func ingest(_ message: SeparatorMessage, receivedAt: Duration) -> Evaluation {
        // Another run's messages, or anything after RUN_END, are the daemon's
        // routing business: they change nothing here.
        guard isOpen, message.order.runID == start.runID else { return unchanged }
        switch message.kind {
        case .tick: return ingestTelemetry(message, receivedAt: receivedAt, ending: false)
        case .runEnd: return ingestTelemetry(message, receivedAt: receivedAt, ending: true)
        case .alarm: return ingestAlarm(message, receivedAt: receivedAt)
        case .event: return ingestEvent(message)
        case .runStart: return unchanged
        }
    }

    private var unchanged: Evaluation { Evaluation(derived: latestDerived, predictions: latestPredictions) }

    private mutating func ingestEvent(_ message: SeparatorMessage) -> Evaluation {
        for comment in message.comments {
            switch comment.code {
            case "PAUSE": latestDerived.isPaused = true
            case "RESUME": latestDerived.isPaused = false
            case "RINSEBACK": latestDerived.isRinsingBack = true
            default: break
            }
        }
        return unchanged
    }

    private mutating func ingestAlarm(_ message: SeparatorMessage, receivedAt: Duration) -> Evaluation {
        var evaluation = unchanged
        let stamp = Stamp(at: receivedAt, runTime: latestDerived.runTime, deviceTimestamp: message.timestamp)
        for comment in message.comments {
            let level: AlarmLevel
            switch comment.severity {
            case .alarm: level = .alarm
            case .warning: level = .warning
            case .info:
                evaluation.deviceNotices.append(
                    DeviceNotice(code: comment.code, text: comment.text, at: receivedAt, deviceTimestamp: message.timestamp))
                continue
            }
            let text = comment.text.isEmpty ? comment.code : comment.text
            let sentence = "Separator \(level == .alarm ? "alarm" : "warning") \(comment.code): \(text)."
            if let t = raiseLatched(.device(comment.code), level: level, value: nil, limit: nil, unit: "", message: sentence, stamp: stamp) {
                evaluation.transitions.append(t)
            }
        }
        return evaluation
    }

    private mutating func ingestTelemetry(_ message: SeparatorMessage, receivedAt: Duration, ending: Bool) -> Evaluation {
        var flags: [DataQualityFlag] = []
        var values: [ParameterCode: Double] = [:]
        for record in message.results {
            guard let definition = record.code.definition, definition.isTelemetry, let value = record.value.number else { continue }
            if record.unit != definition.unit {
                flags.append(.unexpectedUnit(record.code, unit: record.unit))
                continue
            }
            if let range = PhysicalRanges.range(for: record.code) {
                let zeroRatio = record.code == .acRatio && value == 0
                if !range.contains(value) || zeroRatio || !value.isFinite {
                    flags.append(.outOfRange(record.code, value: value, range: range))
                    // Kept in the store with its flag; not used for computing.
                    continue
                }
            }
            if definition.kind == .cumulative {
                if let previous = previousCumulative[record.code], value < previous {
                    flags.append(.decreasing(record.code, previous: previous, current: value))
                }
                previousCumulative[record.code] = value
            }
            values[record.code] = value
        }

        let sample = TelemetrySample(
            receivedAt: receivedAt, deviceTimestamp: message.timestamp,
            runTime: values[.runTime].map { .minutes($0) },
            inlet: values[.inletVolume].map { .millilitres($0) },
            wholeBlood: values[.wholeBloodVolume].map { .millilitres($0) },
            ac: values[.acVolume].map { .millilitres($0) },
            acToPatient: values[.acToPatient].map { .millilitres($0) },
            collect: values[.collectVolume].map { .millilitres($0) },
            deviceRatio: values[.acRatio],
            deviceBloodVolumesProcessed: values[.bloodVolumesProcessed],
            cumulative: values.filter { $0.key.definition?.kind == .cumulative })

        // Device clock against RUN_TIME and the daemon's clock.
        let reference = clockReference
        let deviceAdvance = Seconds(Double(message.timestamp.secondsSinceEpoch - reference.deviceTimestamp.secondsSinceEpoch))
        let receivedAdvance = Self.seconds(receivedAt - reference.receivedAt)
        var runTimeAdvance: Seconds?
        if let now = sample.runTime, let before = reference.runTime { runTimeAdvance = now - before }
        let clockJumped = Self.isClockJump(device: deviceAdvance, runTime: runTimeAdvance, received: receivedAdvance)
        if clockJumped {
            flags.append(.clockJump(deviceAdvance: deviceAdvance, runTimeAdvance: runTimeAdvance, receivedAdvance: receivedAdvance))
        }
        clockReference = ClockReference(deviceTimestamp: message.timestamp, receivedAt: receivedAt, runTime: sample.runTime ?? reference.runTime)

        let stamp = Stamp(at: receivedAt, runTime: sample.runTime, deviceTimestamp: message.timestamp)
        var transitions: [AlarmTransition] = []

        let previousRunTime = history.last?.runTime
        history.append(sample)
        pruneHistory()

        if !ending {
            learnTickInterval(deviceAdvance: clockJumped ? nil : deviceAdvance, runTimeAdvance: runTimeAdvance)
            lastTickReceivedAt = receivedAt
            if let t = clear(.staleTelemetry, reason: "telemetry resumed", stamp: stamp) { transitions.append(t) }
            transitions += raiseDataQuality(flags, stamp: stamp)
        }

        let derived = derive(from: sample)
        latestDerived = derived
        latestPredictions = predict(derived: derived)

        if ending {
            // RUN_END: final values recorded, not judged; the run is closed.
            isOpen = false
            transitions += clearAll(reason: "run ended", stamp: stamp)
        } else {
            // Rates and ratios are judged only when RUN_TIME moved: during a
            // pause the window holds the same volumes, so the state is kept.
            let runTimeAdvanced = sample.runTime.map { now in previousRunTime.map { now > $0 } ?? true } ?? false
            if runTimeAdvanced {
                transitions += judgeRatio(derived, stamp: stamp)
                transitions += judgeRates(derived, stamp: stamp)
            }
            transitions += judgeProgress(derived, stamp: stamp)
        }
        return Evaluation(transitions: transitions, sampleQuality: flags, derived: derived, predictions: latestPredictions)
    }

    // MARK: - Staleness and link

    public mutating func checkStaleness(now: Duration) -> [AlarmTransition] {
        guard isOpen else { return [] }
        let silent = Self.seconds(now - lastTickReceivedAt)
        let limit = tickInterval * profile.staleAfterTickIntervals
        guard silent >= limit, !isActive(.staleTelemetry) else { return [] }
        let stamp = Stamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        let message =
            "No telemetry from the separator for \(display(silent.value)) s "
            + "(\(display(profile.staleAfterTickIntervals)) tick intervals of \(display(tickInterval.value)) s)."
        return Self.apply(
            &activeAlarms, code: .staleTelemetry, to: .alarm, value: silent.value, limit: limit.value, unit: "s", message: message,
            stamp: stamp
        ).map { [$0] } ?? []
    }

    public mutating func linkChanged(up: Bool, now: Duration) -> [AlarmTransition] {
        isLinkUp = up
        guard isOpen else { return [] }
        let stamp = Stamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        if up {
            return clear(.linkDown, reason: "link restored", stamp: stamp).map { [$0] } ?? []
        }
        guard !isActive(.linkDown) else { return [] }
        return Self.apply(
            &activeAlarms, code: .linkDown, to: .alarm, value: nil, limit: nil, unit: "",
            message: "The link to the separator is down: no data is arriving while the run is open.", stamp: stamp
        ).map { [$0] } ?? []
    }

    // MARK: - Acknowledgement

    /// Marks the alarm as acknowledged. Latched (event-like) alarms - device
    /// alarms and data quality - end with their acknowledgement; the others
    /// stay active until their value is back within limits.
    public mutating func acknowledge(code: AlarmCode, by user: String, now: Duration) -> AlarmTransition? {
        guard let index = activeAlarms.firstIndex(where: { $0.code == code }), activeAlarms[index].acknowledgedBy == nil else {
            return nil
        }
        var transition = activeAlarms[index].latest
        transition.kind = .acknowledged(by: user)
        transition.at = now
        transition.runTimeMinutes = latestDerived.runTime?.minutes
        transition.deviceTimestamp = nil
        transition.message = "Acknowledged by \(user): \(activeAlarms[index].latest.message)"
        if code.isLatched {
            activeAlarms.remove(at: index)
        } else {
            activeAlarms[index].acknowledgedBy = user
            activeAlarms[index].acknowledgedAt = now
            activeAlarms[index].latest = transition
        }
        return transition
    }

    // MARK: - Derived values

    private func window(_ length: Seconds) -> (first: TelemetrySample, last: TelemetrySample, span: Seconds)? {
        guard let last = history.last, let end = last.runTime else { return nil }
        let from = end - length - Self.runTimeTolerance
        guard let first = history.first(where: { $0.runTime.map { $0 >= from } ?? false }), let begin = first.runTime else {
            return nil
        }
        let span = end - begin
        // At least two samples spanning at least half the window.
        guard span.value > 0, span + Self.runTimeTolerance >= length * 0.5 else { return nil }
        return (first, last, span)
    }

    private func derive(from sample: TelemetrySample) -> DerivedValues {
        var d = DerivedValues()
        d.runTime = sample.runTime ?? latestDerived.runTime
        d.isPaused = latestDerived.isPaused
        d.isRinsingBack = latestDerived.isRinsingBack
        d.extracorporealFractionOfTBV = latestDerived.extracorporealFractionOfTBV
        d.deviceRatio = sample.deviceRatio
        d.deviceBloodVolumesProcessed = sample.deviceBloodVolumesProcessed
        d.inletVolume = sample.inlet
        d.acVolume = sample.ac
        d.acToPatient = sample.acToPatient
        d.wholeBloodProcessed = sample.wholeBlood
        d.collectedVolume = sample.collect
        let tbv = start.totalBloodVolume

        if let inlet = sample.inlet, let ac = sample.ac, ac > .zero { d.runRatio = inlet / ac }
        if let wb = sample.wholeBlood, let tbv { d.bloodVolumesProcessed = wb / tbv }
        if let collect = sample.collect, let tbv { d.collectedFractionOfTBV = collect / tbv }
        if let acToPatient = sample.acToPatient {
            let citrate = profile.citrateConcentration * acToPatient
            d.citrateInfused = citrate
            if let body = start.bodyMass { d.citrateLoadTotal = WeightNormalisedMass(mass: citrate, bodyMass: body) }
        }

        if let w = window(profile.ratioWindow), let i0 = w.first.inlet, let i1 = w.last.inlet, let a0 = w.first.ac, let a1 = w.last.ac {
            let inlet = i1 - i0
            let ac = a1 - a0
            // No inlet flow (pause, rinseback) or a decreasing value: no ratio.
            if inlet > .zero, ac >= .zero {
                if ac == .zero {
                    d.acPumpDeliveringNothing = true
                    if sample.deviceRatio != nil { d.ratioDisagreementFraction = 1 }
                } else {
                    let ratio = inlet / ac
                    d.windowRatio = ratio
                    if let device = sample.deviceRatio { d.ratioDisagreementFraction = abs(device - ratio) / ratio }
                }
            }
        }

        if let w = window(profile.acInfusionWindow), let p0 = w.first.acToPatient, let p1 = w.last.acToPatient, p1 >= p0 {
            let flow = (p1 - p0) / w.span
            d.acToPatientFlow = flow
            if let tbv { d.acInfusionRate = BloodVolumeNormalisedRate(flow: flow, totalBloodVolume: tbv) }
            if let body = start.bodyMass {
                d.citrateLoadRate = WeightNormalisedMassRate(
                    mass: profile.citrateConcentration * (p1 - p0), per: w.span, bodyMass: body)
            }
        }
        return d
    }

    // MARK: - Predictions

    private func predict(derived: DerivedValues) -> Predictions {
        var p = Predictions()
        let w = window(profile.predictionWindow)
        let now = derived.runTime ?? .zero

        func rate(_ volume: KeyPath<TelemetrySample, Volume?>) -> VolumeFlowRate? {
            guard let w, let v0 = w.first[keyPath: volume], let v1 = w.last[keyPath: volume], v1 >= v0 else { return nil }
            return (v1 - v0) / w.span
        }
        func prediction(target: Volume, current: Volume, rate: VolumeFlowRate?, scale: (Volume) -> Double) -> TargetPrediction? {
            if current >= target {
                return TargetPrediction(target: scale(target), current: scale(current), remaining: .zero, projectedRunTime: now, reached: true)
            }
            guard let rate, rate > .zero else { return nil }
            let remaining = Seconds((target - current).cubicMetres / rate.cubicMetresPerSecond)
            return TargetPrediction(
                target: scale(target), current: scale(current), remaining: remaining, projectedRunTime: now + remaining, reached: false)
        }

        if let target = profile.collectTarget, let collected = derived.collectedVolume {
            p.collectTarget = prediction(target: target, current: collected, rate: rate(\.collect)) { $0.millilitres }
        }
        let wbRate = rate(\.wholeBlood)
        if let target = start.targetWholeBloodVolume, let wb = derived.wholeBloodProcessed {
            p.wholeBloodTarget = prediction(target: target, current: wb, rate: wbRate) { $0.millilitres }
        }
        if let n = start.targetBloodVolumesProcessed, let tbv = start.totalBloodVolume, let wb = derived.wholeBloodProcessed {
            p.bloodVolumesTarget = prediction(target: tbv * n, current: wb, rate: wbRate) { $0 / tbv }
        }

        // Yield: the blood that will have gone through by the end; never less
        // than what has already been processed (an overrun).
        let processed = derived.wholeBloodProcessed ?? .zero
        var planned: Volume?
        if let target = start.targetWholeBloodVolume {
            planned = target
        } else if let n = start.targetBloodVolumesProcessed, let tbv = start.totalBloodVolume {
            planned = tbv * n
        }
        let toProcess = max(planned ?? processed, processed)
        p.wholeBloodToProcess = toProcess
        if let wbc = start.preWhiteCellCount {
            let cd3 = wbc * profile.assumedCD3FractionOfWBC
            p.assumedCD3Concentration = cd3
            p.expectedCD3Yield = profile.collectionEfficiency * (cd3 * toProcess).cells
        }
        return p
    }

    // MARK: - Judging

    private mutating func judgeRatio(_ d: DerivedValues, stamp: Stamp) -> [AlarmTransition] {
        // A copy: the message closures must not capture the mutating self.
        let profile = self.profile
        var out: [AlarmTransition] = []
        let windowSeconds = display(profile.ratioWindow.value)
        if d.acPumpDeliveringNothing {
            let set = start.acRatioSet.map { " (set \(display($0)):1)" } ?? ""
            let message =
                "AC pump delivering no anticoagulant: inlet blood flowed over the last \(windowSeconds) s of run time but no ACD-A was drawn\(set). Clotting risk in the set."
            if let t = Self.apply(
                &activeAlarms, code: .acRatio, to: .alarm, value: nil, limit: start.acRatioSet.map { $0 + profile.ratioAlarmDeviation },
                unit: "{ratio}", message: message, stamp: stamp)
            {
                out.append(t)
            }
        } else if let ratio = d.windowRatio, let set = start.acRatioSet {
            let deviation = abs(ratio - set)
            let level = Self.level(
                value: deviation,
                tiers: [(.warning, profile.ratioWarnDeviation), (.alarm, profile.ratioAlarmDeviation)],
                current: level(of: .acRatio), hysteresis: profile.hysteresisFraction, strict: false)
            let sign: Double = ratio >= set ? 1 : -1
            let limit: (AlarmLevel) -> Double = { set + sign * ($0 == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation) }
            let risk = ratio >= set ? "less anticoagulant than set: clotting risk" : "more anticoagulant than set: citrate risk"
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A ratio \(display(ratio)):1 over the last \(windowSeconds) s of run time, set \(display(set)):1"
                guard let level else { return head + ": back within ±\(display(profile.ratioWarnDeviation))." }
                let line = level == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation
                return head + ", off by \(display(deviation)) (\(level.rawValue) at ±\(display(line))): \(risk)."
            }
            if let t = transition(.acRatio, to: level, value: ratio, limit: limit, unit: "{ratio}", message: message, stamp: stamp) {
                out.append(t)
            }
        }

        if let disagreement = d.ratioDisagreementFraction, let device = d.deviceRatio {
            let line = profile.ratioAgreementAlarmFraction
            let level = Self.level(
                value: disagreement, tiers: [(.alarm, line)], current: level(of: .acRatioAgreement),
                hysteresis: profile.hysteresisFraction, strict: true)
            let recomputed = d.windowRatio.map { "\(display($0)):1" } ?? "no ACD-A at all"
            let message: (AlarmLevel?) -> String = { level in
                let head = "The separator shows ratio \(display(device)):1 but its volumes give \(recomputed) over the last \(windowSeconds) s"
                guard level != nil else { return head + ": they agree again (within \(display(line * 100)) %)." }
                return head + ": \(display(disagreement * 100)) % apart, more than \(display(line * 100)) %. Do not trust the displayed ratio."
            }
            if let t = transition(
                .acRatioAgreement, to: level, value: disagreement * 100, limit: { _ in line * 100 }, unit: "%", message: message, stamp: stamp)
            {
                out.append(t)
            }
        }
        return out
    }

    private mutating func judgeRates(_ d: DerivedValues, stamp: Stamp) -> [AlarmTransition] {
        // A copy: the message closures must not capture the mutating self.
        let profile = self.profile
        var out: [AlarmTransition] = []
        if let rate = d.acInfusionRate {
            let warn = profile.acInfusionRateWarn
            let alarm = profile.acInfusionRateAlarm
            let level = Self.level(
                value: rate.perSecond, tiers: [(.warning, warn.perSecond), (.alarm, alarm.perSecond)], current: level(of: .acInfusionRate),
                hysteresis: profile.hysteresisFraction, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A reaching the patient at \(display(rate.millilitresPerMinutePerLitre)) mL/min per litre of blood volume"
                guard level != nil else { return head + ": back under \(display(warn.millilitresPerMinutePerLitre)) mL/min/L." }
                return head + " (warning at \(display(warn.millilitresPerMinutePerLitre)), alarm at \(display(alarm.millilitresPerMinutePerLitre)) mL/min/L)."
            }
            if let t = transition(
                .acInfusionRate, to: level, value: rate.millilitresPerMinutePerLitre,
                limit: { ($0 == .alarm ? alarm : warn).millilitresPerMinutePerLitre }, unit: "mL/min/L", message: message, stamp: stamp)
            {
                out.append(t)
            }
        }
        if let load = d.citrateLoadRate {
            let warn = profile.citrateLoadWarn
            let alarm = profile.citrateLoadAlarm
            let level = Self.level(
                value: load.perSecond, tiers: [(.warning, warn.perSecond), (.alarm, alarm.perSecond)], current: level(of: .citrateLoad),
                hysteresis: profile.hysteresisFraction, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "Citrate load \(display(load.milligramsPerKilogramPerMinute)) mg/kg/min"
                guard level != nil else { return head + ": back under \(display(warn.milligramsPerKilogramPerMinute)) mg/kg/min." }
                return head
                    + " (warning at \(display(warn.milligramsPerKilogramPerMinute)), alarm at \(display(alarm.milligramsPerKilogramPerMinute)) mg/kg/min): watch for tingling, consider calcium."
            }
            if let t = transition(
                .citrateLoad, to: level, value: load.milligramsPerKilogramPerMinute,
                limit: { ($0 == .alarm ? alarm : warn).milligramsPerKilogramPerMinute }, unit: "mg/kg/min", message: message, stamp: stamp)
            {
                out.append(t)
            }
        }
        return out
    }

    private mutating func judgeProgress(_ d: DerivedValues, stamp: Stamp) -> [AlarmTransition] {
        // A copy: the message closures must not capture the mutating self.
        let profile = self.profile
        var out: [AlarmTransition] = []
        let h = profile.hysteresisFraction
        let tbv = start.totalBloodVolume

        if let collected = d.collectedVolume {
            var tiers: [(AlarmLevel, Double)] = []
            if let target = profile.collectTarget { tiers.append((.warning, target.cubicMetres)) }
            let maximum = tbv.map { $0 * profile.collectAlarmFractionOfTBV }
            if let maximum { tiers.append((.alarm, maximum.cubicMetres)) }
            if !tiers.isEmpty {
                let level = Self.level(value: collected.cubicMetres, tiers: tiers, current: level(of: .collectedVolume), hysteresis: h, strict: false)
                let percent = d.collectedFractionOfTBV.map { " (\(display($0 * 100)) % of TBV)" } ?? ""
                let message: (AlarmLevel?) -> String = { level in
                    let head = "Collected volume \(display(collected.millilitres)) mL\(percent)"
                    switch level {
                    case .alarm?:
                        return head + " has reached the maximum of \(display(profile.collectAlarmFractionOfTBV * 100)) % of TBV"
                            + " (\(display(maximum?.millilitres ?? 0)) mL)."
                    case .warning?: return head + " has reached the target of \(display(profile.collectTarget?.millilitres ?? 0)) mL."
                    case nil: return head + ": below the line again."
                    }
                }
                let limit: (AlarmLevel) -> Double? = { ($0 == .alarm ? maximum : profile.collectTarget)?.millilitres }
                if let t = transition(.collectedVolume, to: level, value: collected.millilitres, limit: limit, unit: "mL", message: message, stamp: stamp) {
                    out.append(t)
                }
            }
        }

        let factor = profile.bloodProcessedAlarmFactor
        if let target = start.targetWholeBloodVolume, let wb = d.wholeBloodProcessed {
            let level = Self.level(
                value: wb.cubicMetres, tiers: [(.warning, target.cubicMetres), (.alarm, (target * factor).cubicMetres)],
                current: level(of: .wholeBloodProcessed), hysteresis: h, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "Whole blood processed \(display(wb.millilitres)) mL"
                switch level {
                case .alarm?: return head + ", \(display(factor)) x the target of \(display(target.millilitres)) mL reached: beyond the plan."
                case .warning?: return head + ": the target of \(display(target.millilitres)) mL is reached."
                case nil: return head + ": below the target of \(display(target.millilitres)) mL."
                }
            }
            if let t = transition(
                .wholeBloodProcessed, to: level, value: wb.millilitres,
                limit: { $0 == .alarm ? (target * factor).millilitres : target.millilitres }, unit: "mL", message: message, stamp: stamp)
            {
                out.append(t)
            }
        }
        if let target = start.targetBloodVolumesProcessed, let processed = d.bloodVolumesProcessed {
            let level = Self.level(
                value: processed, tiers: [(.warning, target), (.alarm, target * factor)], current: level(of: .bloodVolumesProcessed),
                hysteresis: h, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "Blood volumes processed \(display(processed, decimals: 3)) TBV"
                switch level {
                case .alarm?: return head + ", \(display(factor)) x the target of \(display(target)) TBV reached: beyond the plan."
                case .warning?: return head + ": the target of \(display(target)) TBV is reached."
                case nil: return head + ": below the target of \(display(target)) TBV."
                }
            }
            if let t = transition(
                .bloodVolumesProcessed, to: level, value: processed, limit: { $0 == .alarm ? target * factor : target }, unit: "{TBV}",
                message: message, stamp: stamp)
            {
                out.append(t)
            }
        }

        if let target = start.targetRunTime, let runTime = d.runTime {
            let alarmAt = target + profile.runTimeAlarmExtension
            let level = Self.level(
                value: runTime.value, tiers: [(.warning, target.value), (.alarm, alarmAt.value)], current: level(of: .runTime),
                hysteresis: h, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "Run time \(display(runTime.minutes)) min"
                switch level {
                case .alarm?: return head + ": \(display(profile.runTimeAlarmExtension.minutes)) min past the planned \(display(target.minutes)) min."
                case .warning?: return head + ": the planned \(display(target.minutes)) min is reached."
                case nil: return head + ": within the planned \(display(target.minutes)) min."
                }
            }
            if let t = transition(
                .runTime, to: level, value: runTime.minutes, limit: { $0 == .alarm ? alarmAt.minutes : target.minutes }, unit: "min",
                message: message, stamp: stamp)
            {
                out.append(t)
            }
        }
        return out
    }

    private mutating func raiseDataQuality(_ flags: [DataQualityFlag], stamp: Stamp) -> [AlarmTransition] {
        var out: [AlarmTransition] = []
        for code in [AlarmCode.dataDecreasing, .dataRange, .dataClockJump] {
            let mine = flags.filter { $0.alarmCode == code }
            guard !mine.isEmpty else { continue }
            let sentences = mine.map(Self.describe).joined(separator: " ")
            var value: Double?
            var unit = ""
            if case .clockJump(let device, _, _)? = mine.first {
                value = device.value
                unit = "s"
            }
            let message = sentences + " The sample is kept and marked."
            if let t = raiseLatched(code, level: .alarm, value: value, limit: nil, unit: unit, message: message, stamp: stamp) {
                out.append(t)
            }
        }
        return out
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

    // MARK: - Alarm state machine

    private func level(of code: AlarmCode) -> AlarmLevel? { activeAlarms.first { $0.code == code }?.level }
    private func isActive(_ code: AlarmCode) -> Bool { activeAlarms.contains { $0.code == code } }

    /// The highest tier reached, with hysteresis: a tier at or below the
    /// present level is left only when the value falls below
    /// threshold x (1 - hysteresis). `strict` raises above (not at) the line.
    static func level(value: Double, tiers: [(AlarmLevel, Double)], current: AlarmLevel?, hysteresis: Double, strict: Bool) -> AlarmLevel? {
        var result: AlarmLevel?
        for (tier, threshold) in tiers {
            let held = current.map { tier <= $0 } ?? false
            let reached = held ? value >= threshold * (1 - hysteresis) : (strict ? value > threshold : value >= threshold)
            if reached, result.map({ tier > $0 }) ?? true { result = tier }
        }
        return result
    }

    /// Moves a limit alarm to `level` (nil = clear) and returns the transition, if any.
    private mutating func transition(
        _ code: AlarmCode, to level: AlarmLevel?, value: Double?, limit: (AlarmLevel) -> Double?, unit: String,
        message: (AlarmLevel?) -> String, stamp: Stamp
    ) -> AlarmTransition? {
        if let level {
            return Self.apply(&activeAlarms, code: code, to: level, value: value, limit: limit(level), unit: unit, message: message(level), stamp: stamp)
        }
        guard let index = activeAlarms.firstIndex(where: { $0.code == code }) else { return nil }
        let left = activeAlarms[index].level
        activeAlarms.remove(at: index)
        return AlarmTransition(
            code: code, kind: .cleared(reason: "back within limits"), level: left, value: value, limit: limit(left).map { $0 },
            unit: unit, message: message(nil), at: stamp.at, runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
    }

    /// Raises or moves an alarm to `level`; nil when it already is there.
    private static func apply(
        _ alarms: inout [ActiveAlarm], code: AlarmCode, to level: AlarmLevel, value: Double?, limit: Double?, unit: String,
        message: String, stamp: Stamp
    ) -> AlarmTransition? {
        func make(_ kind: AlarmTransition.Kind) -> AlarmTransition {
            AlarmTransition(
                code: code, kind: kind, level: level, value: value, limit: limit, unit: unit, message: message, at: stamp.at,
                runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
        }
        guard let index = alarms.firstIndex(where: { $0.code == code }) else {
            let t = make(.raised)
            alarms.append(ActiveAlarm(code: code, level: level, raised: t, latest: t))
            return t
        }
        let old = alarms[index].level
        guard old != level else { return nil }
        let t = make(level > old ? .escalated : .deescalated)
        alarms[index].level = level
        alarms[index].latest = t
        if level > old {
            // A higher level needs its own acknowledgement.
            alarms[index].acknowledgedBy = nil
            alarms[index].acknowledgedAt = nil
        }
        return t
    }

    /// Event-like alarms: raised when seen; seen again while active, the
    /// alarm is updated (and escalated if the new one is more severe).
    private mutating func raiseLatched(
        _ code: AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String, stamp: Stamp
    ) -> AlarmTransition? {
        if let index = activeAlarms.firstIndex(where: { $0.code == code }) {
            let newLevel = max(level, activeAlarms[index].level)
            let kind: AlarmTransition.Kind = newLevel > activeAlarms[index].level ? .escalated : .repeated
            let t = AlarmTransition(
                code: code, kind: kind, level: newLevel, value: value, limit: limit, unit: unit, message: message, at: stamp.at,
                runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
            activeAlarms[index].level = newLevel
            activeAlarms[index].latest = t
            activeAlarms[index].acknowledgedBy = nil
            activeAlarms[index].acknowledgedAt = nil
            return t
        }
        return Self.apply(&activeAlarms, code: code, to: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp)
    }

    private mutating func clear(_ code: AlarmCode, reason: String, stamp: Stamp) -> AlarmTransition? {
        guard let index = activeAlarms.firstIndex(where: { $0.code == code }) else { return nil }
        let alarm = activeAlarms.remove(at: index)
        return Self.cleared(alarm, reason: reason, stamp: stamp)
    }

    private mutating func clearAll(reason: String, stamp: Stamp) -> [AlarmTransition] {
        let all = activeAlarms
        activeAlarms.removeAll()
        return all.map { Self.cleared($0, reason: reason, stamp: stamp) }
    }

    private static func cleared(_ alarm: ActiveAlarm, reason: String, stamp: Stamp) -> AlarmTransition {
        AlarmTransition(
            code: alarm.code, kind: .cleared(reason: reason), level: alarm.level, value: nil, limit: nil, unit: alarm.latest.unit,
            message: "\(alarm.code) cleared: \(reason).", at: stamp.at, runTimeMinutes: stamp.runTimeMinutes,
            deviceTimestamp: stamp.deviceTimestamp)
    }

    // MARK: - Clocks

    static func seconds(_ d: Duration) -> Seconds {
        let c = d.components
        return Seconds(Double(c.seconds) + Double(c.attoseconds) * 1e-18)
    }

    /// A backwards device clock is always a jump. Forwards, the device clock
    /// must agree with at least one honest reference: RUN_TIME (stops in a
    /// pause) or the daemon's clock (late when messages were queued behind a
    /// pulled cable or a lost ACK). Both disagreeing means the clock moved.
    static func isClockJump(device: Seconds, runTime: Seconds?, received: Seconds) -> Bool {
        if device.value < 0 { return true }
        let offReceived = abs(device.value - received.value) > clockJumpTolerance.value
        let offRunTime = runTime.map { abs(device.value - $0.value) > clockJumpTolerance.value } ?? true
        return offReceived && offRunTime
    }

    private mutating func learnTickInterval(deviceAdvance: Seconds?, runTimeAdvance: Seconds?) {
        // The device clock keeps going through pauses (whole seconds, ticks
        // fall on whole seconds); RUN_TIME stops in them. Prefer the former.
        let observed: Seconds?
        if let deviceAdvance, deviceAdvance.value > 0 {
            observed = deviceAdvance
        } else if let runTimeAdvance, runTimeAdvance.value > 0 {
            observed = runTimeAdvance
        } else {
            observed = nil
        }
        guard let observed, observed <= Self.plausibleTickInterval else { return }
        tickIntervalObservations.append(observed)
        if tickIntervalObservations.count > Self.tickIntervalSamples { tickIntervalObservations.removeFirst() }
        // The median ignores a tick cut short by a pause or stretched by a resend.
        let sorted = tickIntervalObservations.sorted()
        tickInterval = sorted[sorted.count / 2]
    }

    private mutating func pruneHistory() {
        guard let end = history.last?.runTime else { return }
        let longest = max(profile.ratioWindow, profile.acInfusionWindow, profile.predictionWindow)
        let from = end - longest - Self.runTimeTolerance
        // Keep the first sample inside the window; drop what lies before it.
        while history.count > 1 {
            if let t = history[0].runTime, t >= from { break }
            history.removeFirst()
        }
    }
}
