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
    /// What RUN_START says. Watched without it (`init(midRun:...)`), what the first message
    /// says (run id, procedure, and the weight if it was a RUN_END) until `adoptRunStart`.
    public private(set) var start: RunStartValues
    /// False while the run is watched without its RUN_START.
    public private(set) var hasRunStart: Bool
    /// What the start raised: the ECV alarm, or DATA_RUN_START_MISSING for a mid-run watch.
    public private(set) var initialTransitions: [AlarmTransition] = []

    /// In the order they were raised.
    public private(set) var activeAlarms: [ActiveAlarm] = []
    /// False after RUN_END (or `close`).
    public private(set) var isOpen = true
    public private(set) var latestDerived = DerivedValues()
    public private(set) var latestPredictions = Predictions()
    /// The TICK period the staleness check uses: learned from the spacing of
    /// the device's TICKs, else the profile's expectation.
    public private(set) var tickInterval: Seconds
    public private(set) var isLinkUp = true
    /// Limits not judged now, with why (warm-up at the run's start is not
    /// listed). Changes are reported in `Evaluation.judgements`.
    public private(set) var unjudged: [AlarmCode: String] = [:]
    /// TBV = WB_VOL / TBV_PROCESSED (the interface's definition), while the
    /// run's RUN_START did not give it.
    public private(set) var inferredTotalBloodVolume: Volume?

    /// Messages and TICKs missing from the run so far.
    public var completeness: TelemetryCompleteness {
        var c = continuity.completeness
        c.tickInterval = c.tickInterval ?? tickInterval
        return c
    }
    private var continuity = TelemetryContinuity()

    /// RUN_TIME samples back to the one that brackets the longest window.
    private var history: [TelemetrySample] = []
    /// RUN_TIME of the first sample with one: the warm-up is measured from it.
    private var firstRunTime: Seconds?
    /// The previous TICK (or RUN_START), for the clock check; nil before the first.
    private var clockReference: ClockReference?
    private var previousCumulative: [ParameterCode: Double] = [:]
    private var lastTickReceivedAt: Duration
    private var tickIntervalObservations: [Seconds] = []
    /// Device clock advances between TICKs, unbounded (a non-conforming device
    /// may tick every 5 min): the clock check's reference when RUN_TIME is missing.
    private var deviceSpacingObservations: [Seconds] = []
    /// The newest daemon clock reading seen, to stamp alarms adopted in `reconcile`.
    private var latestClock: Duration

    /// RUN_TIME travels as decimal minutes (0.001 min); window edges compare
    /// with this tolerance so that the binary error of a decimal does not
    /// drop a sample that lies exactly on the edge.
    static let runTimeTolerance = Seconds(0.001)
    /// A device clock advance that differs by more than this from every
    /// honest reference (RUN_TIME, the daemon's clock) is a clock jump.
    static let clockJumpTolerance = Seconds(60)
    /// Learned tick intervals outside (0, 120] s are not a TICK period
    /// (the interface allows 1-60 s).
    static let plausibleTickInterval = Seconds(120)
    static let tickIntervalSamples = 9
    /// TBV is inferred from TBV_PROCESSED only from this many blood volumes on:
    /// at the wire's 0.001 resolution the estimate is then within 1 %.
    static let minimumProcessedForInference = 0.05
    /// An inferred TBV outside this is not a patient's blood volume.
    static let plausibleTotalBloodVolume = Volume.millilitres(100)...Volume.millilitres(20_000)

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

    /// Whether a limit could be judged at this sample.
    private enum Judging: Equatable {
        case judged
        /// The run's first window is still filling: not reportable.
        case warmingUp
        case notJudged(String)
    }

    /// The limits `unjudged` speaks about, in the order changes are reported.
    static let judgedCodes: [AlarmCode] = [
        .acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad, .extracorporealVolume, .collectedVolume, .wholeBloodProcessed,
        .bloodVolumesProcessed, .runTime,
    ]

    // MARK: - Start

    public static func profile(for runStart: SeparatorMessage, from profiles: [LimitProfile]) -> LimitProfile {
        LimitProfile.select(
            from: profiles, procedure: runStart.order.procedure,
            weight: runStart.patient?.weightKilograms.map { Mass(kilograms: $0) })
    }

    private init(values: RunStartValues, hasRunStart: Bool, profile: LimitProfile, receivedAt: Duration, reference: ClockReference?) {
        self.profile = profile
        self.baseProfile = profile
        self.start = values
        self.hasRunStart = hasRunStart
        self.tickInterval = profile.expectedTickInterval
        self.clockReference = reference
        self.lastTickReceivedAt = receivedAt
        self.latestClock = receivedAt
    }

    public init(runStart: SeparatorMessage, profile: LimitProfile, receivedAt: Duration) {
        self.init(
            values: RunStartValues(runStart), hasRunStart: true, profile: profile, receivedAt: receivedAt,
            reference: ClockReference(deviceTimestamp: runStart.timestamp, receivedAt: receivedAt, runTime: .zero))
        latestDerived.runTime = .zero
        _ = continuity.see(sequence: runStart.sequenceNumber)
        initialTransitions = judgeStart(stamp: Stamp(at: receivedAt, runTime: .zero, deviceTimestamp: runStart.timestamp))
    }

    /// Watches a run whose RUN_START the daemon does not have (quarantined, or the daemon started
    /// during the run), from `first` on, with what is known: the profile's presets, the set point
    /// `profile.defaultRatioSet` (assumed, and said so), TBV inferred from WB_VOL / TBV_PROCESSED,
    /// no body weight (citrate per kg is not judged). Raises DATA_RUN_START_MISSING (latched) in
    /// `initialTransitions`. `first` is not consumed: pass it to `ingest` next, as any message.
    /// A RUN_START that arrives later is taken in by `adoptRunStart`.
    public init(midRun first: SeparatorMessage, profile: LimitProfile, receivedAt: Duration) {
        if first.kind == .runStart {
            self.init(runStart: first, profile: profile, receivedAt: receivedAt)
            return
        }
        self.init(values: RunStartValues(first), hasRunStart: false, profile: profile, receivedAt: receivedAt, reference: nil)
        var runTime: Seconds?
        if let record = first.result(.runTime), record.unit == ParameterCode.runTime.definition?.unit, let minutes = record.value.number,
            PhysicalRanges.runTimeMinutes.contains(minutes)
        {
            runTime = .minutes(minutes)
        }
        let from = runTime.map { "from run time \(display($0.minutes)) min" } ?? "from its first message"
        let message =
            "Run \(start.runID) is watched without its RUN_START (quarantined, or the daemon started during the run), \(from): "
            + "set point \(display(profile.defaultRatioSet)):1 assumed, TBV inferred from WB_VOL / TBV_PROCESSED when possible, "
            + "citrate per kg not judged (weight unknown), ECV and targets unknown."
        let stamp = Stamp(at: receivedAt, runTime: runTime, deviceTimestamp: first.timestamp)
        initialTransitions =
            raiseLatched(.dataRunStartMissing, level: .alarm, value: nil, limit: nil, unit: "", message: message, stamp: stamp)
    }

    /// Takes in the RUN_START of a run watched without it (resent after a cable pull, or found
    /// later): the start values replace what was assumed or inferred, and the next TICK is judged
    /// by them (the ECV check included, its alarm coming with that TICK's evaluation). The
    /// profile stays the one the watch started with; DATA_RUN_START_MISSING stays until
    /// acknowledged (part of the run was watched on assumptions). False, and nothing changes,
    /// when the run already has its RUN_START or `runStart` is not this run's RUN_START.
    @discardableResult
    public mutating func adoptRunStart(_ runStart: SeparatorMessage) -> Bool {
        guard !hasRunStart, runStart.kind == .runStart, runStart.order.runID == start.runID else { return false }
        start = RunStartValues(runStart)
        hasRunStart = true
        if start.totalBloodVolume != nil { inferredTotalBloodVolume = nil }
        // collect_max_ml is kept as a share of TBV, which may be known better now.
        if let adjusted = try? baseProfile.applying(presetChanges, totalBloodVolume: totalBloodVolume) { profile = adjusted }
        return true
    }

    /// The ECV check of limits.md, at run start (or once the start values are known).
    private mutating func judgeStart(stamp: Stamp) -> [AlarmTransition] {
        guard let ecv = start.extracorporealVolume, let tbv = start.totalBloodVolume else { return [] }
        let fraction = ecv / tbv
        latestDerived.extracorporealFractionOfTBV = fraction
        let line = profile.extracorporealAlarmFractionOfTBV
        // limits.md: "above 15 %" - at exactly the line the set is still acceptable.
        guard Crossing.isAbove(fraction, line) else { return [] }
        let message =
            "The set's extracorporeal volume \(display(ecv.millilitres)) mL is \(display(fraction * 100)) % of the patient's blood volume "
            + "(\(display(tbv.millilitres)) mL), above \(display(line * 100)) %: a blood prime is needed."
        return Self.apply(
            &activeAlarms, code: .extracorporealVolume, to: .alarm, value: clinic(fraction * 100), limit: clinic(line * 100), unit: "%",
            message: message, stamp: stamp
        ).map { [$0] } ?? []
    }

    // MARK: - What is known

    /// TBV from RUN_START, else inferred from the telemetry.
    public var totalBloodVolume: Volume? { start.totalBloodVolume ?? inferredTotalBloodVolume }

    /// The set point the ratio is judged against: AC_RATIO_SET, or the profile's default while
    /// the run is watched without RUN_START; nil when RUN_START came without one.
    public var ratioSet: Double? { start.acRatioSet ?? (hasRunStart ? nil : profile.defaultRatioSet) }

    /// True when `ratioSet` is the profile's assumption, not the device's setting.
    public var isRatioSetAssumed: Bool { start.acRatioSet == nil && !hasRunStart }

    /// The present value of the quantity an alarm code judges, in the alarm's unit (the
    /// recomputed ratio for AC_RATIO, % for the agreement and ECV, mL/min/L, mg/kg/min, mL,
    /// blood volumes, min), so that it can be shown beside the value at raise. Nil when it has
    /// no present value (not judged now, or not a measured quantity).
    public func currentValue(of code: AlarmCode) -> Double? {
        let d = latestDerived
        let value: Double?
        switch code {
        case .acRatio: value = d.windowRatio
        case .acRatioAgreement: value = d.ratioDisagreementFraction.map { $0 * 100 }
        case .acInfusionRate: value = d.acInfusionRate?.millilitresPerMinutePerLitre
        case .citrateLoad: value = d.citrateLoadRate?.milligramsPerKilogramPerMinute
        case .collectedVolume: value = d.collectedVolume?.millilitres
        case .extracorporealVolume: value = d.extracorporealFractionOfTBV.map { $0 * 100 }
        case .wholeBloodProcessed: value = d.wholeBloodProcessed?.millilitres
        case .bloodVolumesProcessed: value = d.bloodVolumesProcessed
        case .runTime: value = d.runTime?.minutes
        default: value = nil
        }
        return value.map(clinic)
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
        profile.raisedLines(changes, totalBloodVolume: totalBloodVolume)
    }

    /// Replaces every change made for this run (restoring a watcher, or undoing a change the store
    /// refused to record).
    public mutating func setPresetChanges(_ all: [RunPreset: Double]) throws(PresetChangeError) {
        profile = try baseProfile.applying(all, totalBloodVolume: totalBloodVolume)
        presetChanges = all
    }

    // MARK: - Messages

    public mutating func ingest(_ message: SeparatorMessage, receivedAt: Duration) -> Evaluation {
        // Another run's messages, or anything after RUN_END, are the daemon's
        // routing business: they change nothing here.
        guard isOpen, message.order.runID == start.runID else { return unchanged }
        latestClock = max(latestClock, receivedAt)
        // Raised before the message's own judgement, so that a RUN_END still closes it with the run.
        // A TICK or RUN_END raises them together with its own run-time gaps (one raise, one text).
        let sequenceGaps = continuity.see(sequence: message.sequenceNumber).map { [$0] } ?? []
        var gapTransitions: [AlarmTransition] = []
        if message.kind != .tick, message.kind != .runEnd {
            let stamp = Stamp(at: receivedAt, runTime: latestDerived.runTime, deviceTimestamp: message.timestamp)
            gapTransitions = raiseGaps(sequenceGaps, stamp: stamp)
        }
        var evaluation: Evaluation
        switch message.kind {
        case .tick: evaluation = ingestTelemetry(message, receivedAt: receivedAt, ending: false, sequenceGaps: sequenceGaps)
        case .runEnd: evaluation = ingestTelemetry(message, receivedAt: receivedAt, ending: true, sequenceGaps: sequenceGaps)
        case .alarm: evaluation = ingestAlarm(message, receivedAt: receivedAt)
        case .event: evaluation = ingestEvent(message)
        case .runStart:
            adoptRunStart(message)
            evaluation = unchanged
        }
        evaluation.transitions = gapTransitions + evaluation.transitions
        if message.kind != .tick, message.kind != .runEnd { evaluation.gaps = sequenceGaps + evaluation.gaps }
        return evaluation
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
            evaluation.transitions += raiseLatched(
                .device(comment.code), level: level, value: nil, limit: nil, unit: "", message: sentence, stamp: stamp)
        }
        return evaluation
    }

    private mutating func ingestTelemetry(
        _ message: SeparatorMessage, receivedAt: Duration, ending: Bool, sequenceGaps: [TelemetryGap]
    ) -> Evaluation {
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

        // Device clock against RUN_TIME and the daemon's clock (no reference before the first
        // message of a run watched without RUN_START).
        var deviceAdvance: Seconds?
        var runTimeAdvance: Seconds?
        var clockJumped = false
        if let reference = clockReference {
            let device = Seconds(Double(message.timestamp.secondsSinceEpoch - reference.deviceTimestamp.secondsSinceEpoch))
            let received = Self.seconds(receivedAt - reference.receivedAt)
            if let now = sample.runTime, let before = reference.runTime { runTimeAdvance = now - before }
            clockJumped = Self.isClockJump(device: device, runTime: runTimeAdvance, received: received, spacing: deviceSpacing)
            if clockJumped {
                flags.append(.clockJump(deviceAdvance: device, runTimeAdvance: runTimeAdvance, receivedAdvance: received))
            }
            deviceAdvance = device
        }
        // A sample without RUN_TIME leaves no RUN_TIME reference: the next
        // advance would otherwise span two samples against one device step.
        clockReference = ClockReference(deviceTimestamp: message.timestamp, receivedAt: receivedAt, runTime: sample.runTime)

        let stamp = Stamp(at: receivedAt, runTime: sample.runTime, deviceTimestamp: message.timestamp)
        var transitions: [AlarmTransition] = []

        let previousRunTime = history.last?.runTime
        if let runTime = sample.runTime {
            if firstRunTime == nil { firstRunTime = runTime }
            history.append(sample)
            pruneHistory()
        }
        inferTotalBloodVolume(from: sample)

        // Run-time gaps, judged against the device's own TICK spacing once a few are known (at
        // RUN_END with the best estimate); this sample's advance is learned first.
        if !ending {
            learnTickInterval(deviceAdvance: clockJumped ? nil : deviceAdvance, runTimeAdvance: runTimeAdvance)
            learnSpacing(deviceAdvance: deviceAdvance)
        }
        var gaps = sequenceGaps
        if let runTime = sample.runTime {
            gaps += continuity.see(runTime: runTime, deviceAdvance: deviceAdvance, period: gapPeriod, tolerance: Self.runTimeTolerance)
        }
        if ending { gaps += continuity.settle(period: deviceSpacingObservations.isEmpty ? tickInterval : deviceSpacing) }
        transitions += raiseGaps(gaps, stamp: stamp)

        if !ending {
            lastTickReceivedAt = receivedAt
            if let t = clear(.staleTelemetry, reason: "telemetry resumed", stamp: stamp) { transitions.append(t) }
            transitions += raiseDataQuality(flags, stamp: stamp)
            // The ECV check, once the start values are known (a RUN_START adopted late).
            if latestDerived.extracorporealFractionOfTBV == nil, hasRunStart { transitions += judgeStart(stamp: stamp) }
        }

        let (derived, windowJudging) = derive(from: sample)
        latestDerived = derived
        latestPredictions = predict(derived: derived, windowed: sample.runTime != nil)

        if ending {
            // RUN_END: final values recorded, not judged; the run is closed.
            isOpen = false
            transitions += clearAll(reason: "run ended", stamp: stamp)
            return Evaluation(transitions: transitions, sampleQuality: flags, derived: derived, predictions: latestPredictions, gaps: gaps)
        }

        var judging = structuralJudging()
        // Rates and ratios are judged only when RUN_TIME moved: during a
        // pause the window holds the same volumes, so the state is kept.
        let runTimeAdvanced = sample.runTime.map { now in previousRunTime.map { now > $0 } ?? true } ?? false
        if runTimeAdvanced {
            transitions += judgeRatio(derived, stamp: stamp)
            transitions += judgeRates(derived, stamp: stamp)
            judging.merge(windowJudging) { structural, _ in structural }
        } else if sample.runTime == nil {
            let reason = "RUN_TIME missing or unusable in the latest TICK"
            for code in [AlarmCode.acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad] {
                judging[code] = judging[code] ?? .notJudged(reason)
            }
        }
        transitions += judgeProgress(derived, stamp: stamp)
        let judgements = record(judging, runTime: derived.runTime)
        return Evaluation(
            transitions: transitions, sampleQuality: flags, derived: derived, predictions: latestPredictions, judgements: judgements,
            gaps: gaps)
    }

    private mutating func inferTotalBloodVolume(from sample: TelemetrySample) {
        guard start.totalBloodVolume == nil, let wb = sample.wholeBlood, let processed = sample.deviceBloodVolumesProcessed,
            processed >= Self.minimumProcessedForInference, wb > .zero
        else { return }
        let tbv = Volume(cubicMetres: wb.cubicMetres / processed)
        // The later the sample, the finer the estimate (TBV_PROCESSED grows, its resolution does not).
        guard Self.plausibleTotalBloodVolume.contains(tbv) else { return }
        inferredTotalBloodVolume = tbv
    }

    // MARK: - Judged or not

    /// What keeps a limit from being judged whatever the samples: inputs RUN_START did not give.
    private func structuralJudging() -> [AlarmCode: Judging] {
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
            if latestDerived.extracorporealFractionOfTBV != nil {
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
    private mutating func record(_ judging: [AlarmCode: Judging], runTime: Seconds?) -> [JudgementChange] {
        var changes: [JudgementChange] = []
        for code in Self.judgedCodes {
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

    // MARK: - Staleness and link

    public mutating func checkStaleness(now: Duration) -> [AlarmTransition] {
        guard isOpen else { return [] }
        latestClock = max(latestClock, now)
        let silent = Self.seconds(now - lastTickReceivedAt)
        let limit = tickInterval * profile.staleAfterTickIntervals
        guard silent >= limit, !isActive(.staleTelemetry) else { return [] }
        let stamp = Stamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        let message =
            "No telemetry from the separator for \(display(silent.value)) s "
            + "(\(display(profile.staleAfterTickIntervals)) tick intervals of \(display(tickInterval.value)) s)."
        return Self.apply(
            &activeAlarms, code: .staleTelemetry, to: .alarm, value: silent.value, limit: clinic(limit.value), unit: "s", message: message,
            stamp: stamp
        ).map { [$0] } ?? []
    }

    public mutating func linkChanged(up: Bool, now: Duration) -> [AlarmTransition] {
        isLinkUp = up
        guard isOpen else { return [] }
        latestClock = max(latestClock, now)
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

    // MARK: - Acknowledgement, closing, restoring

    /// Acknowledges the alarm and returns what the store must record. A limit alarm stays active
    /// until its value is back within limits: `[acknowledged]`, or `[]` when it is not active or its
    /// level is already acknowledged. A latched (event-like) alarm - device alarms, data quality -
    /// ends with its acknowledgement: `[acknowledged, cleared(reason: "acknowledged by <user>")]`,
    /// so that the same condition seen again is raised anew.
    public mutating func acknowledge(code: AlarmCode, by user: String, now: Duration) -> [AlarmTransition] {
        guard let index = activeAlarms.firstIndex(where: { $0.code == code }) else { return [] }
        // A latched alarm acknowledged but still active (restored from an older store) can still end.
        guard activeAlarms[index].acknowledgedBy == nil || code.isLatched else { return [] }
        latestClock = max(latestClock, now)
        let alarm = activeAlarms[index]
        var transition = alarm.latest
        transition.kind = .acknowledged(by: user)
        transition.at = now
        transition.runTimeMinutes = latestDerived.runTime?.minutes
        transition.deviceTimestamp = nil
        transition.message = "Acknowledged by \(user): \(alarm.latest.message)"
        guard !code.isLatched else {
            activeAlarms.remove(at: index)
            let stamp = Stamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
            return [transition, Self.cleared(alarm, reason: "acknowledged by \(user)", stamp: stamp)]
        }
        activeAlarms[index].acknowledgedBy = user
        activeAlarms[index].acknowledgedAt = now
        activeAlarms[index].latest = transition
        return [transition]
    }

    /// Closes the run without RUN_END (the daemon's open-run timeout): every active alarm is
    /// cleared with `reason`; nothing is judged afterwards. Empty when already closed.
    public mutating func close(reason: String, now: Duration) -> [AlarmTransition] {
        guard isOpen else { return [] }
        isOpen = false
        latestClock = max(latestClock, now)
        return clearAll(reason: reason, stamp: Stamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil))
    }

    /// Makes the active alarms those the store holds (after a restart, the watcher is rebuilt
    /// by replaying the run's messages; the store is the record). An alarm the replay also
    /// raised keeps its history and takes the stored level and acknowledgement; one only the
    /// store holds (stale telemetry, link down, anything raised under circumstances the replay
    /// does not repeat) is adopted as it was stored, so that it clears by its condition later;
    /// one only the replay raised is dropped. No transitions: the store already has them.
    public mutating func reconcile(with stored: [StoredAlarmState]) {
        var reconciled: [ActiveAlarm] = []
        for state in stored where !reconciled.contains(where: { $0.code == state.code }) {
            let acknowledgedAt: Duration? = state.acknowledgedBy == nil ? nil : latestClock
            if var alarm = activeAlarms.first(where: { $0.code == state.code }) {
                alarm.level = state.level
                alarm.latest.level = state.level
                if alarm.acknowledgedBy != state.acknowledgedBy {
                    alarm.acknowledgedBy = state.acknowledgedBy
                    alarm.acknowledgedAt = acknowledgedAt
                }
                reconciled.append(alarm)
            } else {
                let raised = AlarmTransition(
                    code: state.code, kind: .raised, level: state.level, value: state.value, limit: state.limit, unit: state.unit,
                    message: state.message, at: latestClock, runTimeMinutes: state.runTimeMinutes, deviceTimestamp: nil)
                reconciled.append(
                    ActiveAlarm(
                        code: state.code, level: state.level, raised: raised, latest: raised, acknowledgedBy: state.acknowledgedBy,
                        acknowledgedAt: acknowledgedAt))
            }
        }
        activeAlarms = reconciled
    }

    // MARK: - Derived values

    private struct Window {
        var first: TelemetrySample
        var last: TelemetrySample
        /// Index of `first` in the history; `last` is the newest sample.
        var firstIndex: Int
        var span: Seconds
        var length: Seconds
        /// The samples from `first` to `last`.
        var samples: ArraySlice<TelemetrySample>
    }

    private enum WindowOutcome {
        case window(Window)
        case notJudged(Judging)
    }

    /// The window of `length` run time ending at the newest sample. It starts at the newest
    /// sample at or before (end - length), which brackets the window: with TICKs further apart
    /// than the window the span is then the spacing of the last two samples, judged all the
    /// same. Without such a sample (the run's first window) it starts at the oldest sample in
    /// the window and is judged once it spans half the window. Dense TICKs give span = length.
    private func window(_ length: Seconds) -> WindowOutcome {
        guard let last = history.last, let end = last.runTime else {
            return .notJudged(.notJudged("RUN_TIME missing or unusable in the latest TICK"))
        }
        let windowStart = end - length
        let lastIndex = history.count - 1
        var firstIndex: Int
        var bracketed = false
        if let i = history[..<lastIndex].lastIndex(where: { ($0.runTime ?? end) <= windowStart + Self.runTimeTolerance }) {
            firstIndex = i
            bracketed = true
        } else {
            firstIndex = history.firstIndex { ($0.runTime ?? end) >= windowStart - Self.runTimeTolerance } ?? lastIndex
        }
        let first = history[firstIndex]
        let span = end - (first.runTime ?? end)
        if span.value > 0, bracketed || span + Self.runTimeTolerance >= length * 0.5 {
            return .window(Window(first: first, last: last, firstIndex: firstIndex, span: span, length: length, samples: history[firstIndex...]))
        }
        // The run's first window, from the first sample this watch saw: not reportable.
        if let firstRunTime, end - firstRunTime < length { return .notJudged(.warmingUp) }
        if span.value <= 0 {
            return .notJudged(.notJudged(firstIndex == lastIndex ? "window holds one sample" : "RUN_TIME did not advance over the window"))
        }
        return .notJudged(.notJudged("the samples span only \(spanText(span)) of the \(spanText(length)) window"))
    }

    private func derive(from sample: TelemetrySample) -> (DerivedValues, [AlarmCode: Judging]) {
        var d = DerivedValues()
        var judging: [AlarmCode: Judging] = [:]
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
        let tbv = totalBloodVolume

        if let inlet = sample.inlet, let ac = sample.ac, ac > .zero { d.runRatio = inlet / ac }
        if let wb = sample.wholeBlood, let tbv { d.bloodVolumesProcessed = wb / tbv }
        if let collect = sample.collect, let tbv { d.collectedFractionOfTBV = collect / tbv }
        if let acToPatient = sample.acToPatient {
            let citrate = profile.citrateConcentration * acToPatient
            d.citrateInfused = citrate
            if let body = start.bodyMass { d.citrateLoadTotal = WeightNormalisedMass(mass: citrate, bodyMass: body) }
        }
        // Windows only when this sample has RUN_TIME (it is then the newest in the history).
        guard sample.runTime != nil else { return (d, judging) }

        switch window(profile.ratioWindow) {
        case .notJudged(let why):
            judging[.acRatio] = why
            judging[.acRatioAgreement] = why
        case .window(let w):
            if let i0 = w.first.inlet, let i1 = w.last.inlet, let a0 = w.first.ac, let a1 = w.last.ac {
                let inlet = i1 - i0
                let ac = a1 - a0
                // No inlet flow (pause, rinseback) or a decreasing value: no ratio.
                if inlet > .zero, ac >= .zero {
                    d.ratioSpan = w.span
                    let reported = w.samples.compactMap(\.deviceRatio)
                    if let low = reported.min(), let high = reported.max() { d.deviceRatioRange = low...high }
                    if ac == .zero {
                        d.acPumpDeliveringNothing = true
                        if sample.deviceRatio != nil { d.ratioDisagreementFraction = 1 }
                    } else {
                        let ratio = inlet / ac
                        d.windowRatio = ratio
                        // Like with like: the ratio over the span against what the device
                        // reported over the same span (an honest change of ratio lies inside).
                        if sample.deviceRatio != nil, let range = d.deviceRatioRange {
                            if ratio > range.upperBound {
                                d.ratioDisagreementFraction = (ratio - range.upperBound) / ratio
                            } else if ratio < range.lowerBound {
                                d.ratioDisagreementFraction = (range.lowerBound - ratio) / ratio
                            } else {
                                d.ratioDisagreementFraction = 0
                            }
                        }
                    }
                    judging[.acRatio] = .judged
                    judging[.acRatioAgreement] =
                        sample.deviceRatio == nil ? .notJudged("AC_RATIO missing or unusable in the latest TICK") : .judged
                } else {
                    let why: Judging
                    if inlet < .zero {
                        why = .notJudged("INLET_VOL went down over the window")
                    } else if ac < .zero {
                        why = .notJudged("AC_VOL went down over the window")
                    } else {
                        why = .notJudged("no inlet flow over the last \(spanText(w.span)) of run time")
                    }
                    judging[.acRatio] = why
                    judging[.acRatioAgreement] = why
                }
            } else {
                judging[.acRatio] = .notJudged("INLET_VOL or AC_VOL missing at an end of the window")
                judging[.acRatioAgreement] = judging[.acRatio]
            }
        }

        switch window(profile.acInfusionWindow) {
        case .notJudged(let why):
            judging[.acInfusionRate] = why
            judging[.citrateLoad] = why
        case .window(let w):
            if let p0 = w.first.acToPatient, let p1 = w.last.acToPatient, p1 >= p0 {
                let flow = (p1 - p0) / w.span
                d.acToPatientFlow = flow
                d.acInfusionSpan = w.span
                if let tbv { d.acInfusionRate = BloodVolumeNormalisedRate(flow: flow, totalBloodVolume: tbv) }
                if let body = start.bodyMass {
                    d.citrateLoadRate = WeightNormalisedMassRate(
                        mass: profile.citrateConcentration * (p1 - p0), per: w.span, bodyMass: body)
                }
                judging[.acInfusionRate] = .judged
                judging[.citrateLoad] = .judged
            } else {
                let why = Judging.notJudged(
                    w.first.acToPatient == nil || w.last.acToPatient == nil
                        ? "AC_TO_PATIENT missing at an end of the window" : "AC_TO_PATIENT went down over the window")
                judging[.acInfusionRate] = why
                judging[.citrateLoad] = why
            }
        }
        return (d, judging)
    }

    // MARK: - Predictions

    /// `windowed`: the sample has RUN_TIME, so the rates' window ends at it.
    private func predict(derived: DerivedValues, windowed: Bool) -> Predictions {
        var p = Predictions()
        var w: Window?
        if windowed, case .window(let found) = window(profile.predictionWindow) { w = found }
        let now = derived.runTime ?? .zero
        let tbv = totalBloodVolume

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
        if let n = start.targetBloodVolumesProcessed, let tbv, let wb = derived.wholeBloodProcessed {
            p.bloodVolumesTarget = prediction(target: tbv * n, current: wb, rate: wbRate) { $0 / tbv }
        }

        // Yield: the blood that will have gone through by the end; never less
        // than what has already been processed (an overrun).
        let processed = derived.wholeBloodProcessed ?? .zero
        var planned: Volume?
        if let target = start.targetWholeBloodVolume {
            planned = target
        } else if let n = start.targetBloodVolumesProcessed, let tbv {
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

    /// " (TBV 2400 mL inferred ...)" when the TBV in a computation is inferred.
    private var tbvNote: String {
        guard start.totalBloodVolume == nil, let tbv = inferredTotalBloodVolume else { return "" }
        let why = hasRunStart ? "not in RUN_START" : "RUN_START missing"
        return " (TBV \(display(tbv.millilitres, decimals: 0)) mL inferred from WB_VOL / TBV_PROCESSED: \(why))"
    }

    private mutating func judgeRatio(_ d: DerivedValues, stamp: Stamp) -> [AlarmTransition] {
        // Copies: the message closures must not capture the mutating self.
        let profile = self.profile
        let set = ratioSet
        let setText: (Double) -> String = { [assumed = isRatioSetAssumed] s in
            assumed ? "set point \(display(s)):1 assumed: RUN_START missing" : "set \(display(s)):1"
        }
        var out: [AlarmTransition] = []
        let over = d.ratioSpan.map { spanText($0, naming: profile.ratioWindow) } ?? spanText(profile.ratioWindow)
        if d.acPumpDeliveringNothing {
            let setPart = set.map { " (\(setText($0)))" } ?? ""
            let message =
                "AC pump delivering no anticoagulant: inlet blood flowed over the last \(over) of run time but no ACD-A was drawn\(setPart). Clotting risk in the set."
            if let t = Self.apply(
                &activeAlarms, code: .acRatio, to: .alarm, value: nil, limit: set.map { clinic($0 + profile.ratioAlarmDeviation) },
                unit: "{ratio}", message: message, stamp: stamp)
            {
                out.append(t)
            }
        } else if let ratio = d.windowRatio, let set {
            let deviation = abs(ratio - set)
            let level = Self.level(
                value: deviation,
                tiers: [(.warning, profile.ratioWarnDeviation), (.alarm, profile.ratioAlarmDeviation)],
                current: level(of: .acRatio), hysteresis: profile.hysteresisFraction, strict: false)
            let sign: Double = ratio >= set ? 1 : -1
            let limit: (AlarmLevel) -> Double = { set + sign * ($0 == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation) }
            let risk = ratio >= set ? "less anticoagulant than set: clotting risk" : "more anticoagulant than set: citrate risk"
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A ratio \(display(ratio)):1 over the last \(over) of run time, \(setText(set))"
                guard let level else { return head + ": back within ±\(display(profile.ratioWarnDeviation))." }
                let line = level == .alarm ? profile.ratioAlarmDeviation : profile.ratioWarnDeviation
                return head + ", off by \(display(deviation)) (\(level.rawValue) at ±\(display(line))): \(risk)."
            }
            if let t = transition(.acRatio, to: level, value: ratio, limit: limit, unit: "{ratio}", message: message, stamp: stamp) {
                out.append(t)
            }
        }

        if let disagreement = d.ratioDisagreementFraction, let range = d.deviceRatioRange {
            let line = profile.ratioAgreementAlarmFraction
            let level = Self.level(
                value: disagreement, tiers: [(.alarm, line)], current: level(of: .acRatioAgreement),
                hysteresis: profile.hysteresisFraction, strict: true)
            let recomputed = d.windowRatio.map { "\(display($0)):1" } ?? "no ACD-A at all"
            let shown =
                range.lowerBound == range.upperBound
                ? "\(display(range.lowerBound)):1" : "\(display(range.lowerBound)):1 to \(display(range.upperBound)):1"
            let message: (AlarmLevel?) -> String = { level in
                let head = "The separator showed ratio \(shown) but its volumes give \(recomputed) over the last \(over) of run time"
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
        // Copies: the message closures must not capture the mutating self.
        let profile = self.profile
        let tbvNote = self.tbvNote
        var out: [AlarmTransition] = []
        // These sentences name no window; they name the span when it is not the window.
        var over = ""
        if let span = d.acInfusionSpan, abs(span.value - profile.acInfusionWindow.value) > 0.5 {
            over = " over the last \(spanText(span)) of run time"
        }
        if let rate = d.acInfusionRate {
            let warn = profile.acInfusionRateWarn
            let alarm = profile.acInfusionRateAlarm
            let level = Self.level(
                value: rate.perSecond, tiers: [(.warning, warn.perSecond), (.alarm, alarm.perSecond)], current: level(of: .acInfusionRate),
                hysteresis: profile.hysteresisFraction, strict: false)
            let message: (AlarmLevel?) -> String = { level in
                let head = "ACD-A reaching the patient at \(display(rate.millilitresPerMinutePerLitre)) mL/min per litre of blood volume\(over)\(tbvNote)"
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
                let head = "Citrate load \(display(load.milligramsPerKilogramPerMinute)) mg/kg/min\(over)"
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
        // Copies: the message closures must not capture the mutating self.
        let profile = self.profile
        let tbvNote = self.tbvNote
        var out: [AlarmTransition] = []
        let h = profile.hysteresisFraction
        let tbv = totalBloodVolume

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
                            + " (\(display(maximum?.millilitres ?? 0)) mL)\(tbvNote)."
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
                let head = "Blood volumes processed \(display(processed, decimals: 3)) TBV\(tbvNote)"
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
            out += raiseLatched(code, level: .alarm, value: value, limit: nil, unit: unit, message: message, stamp: stamp)
        }
        return out
    }

    /// One DATA_GAP raise for what this message revealed: an alarm for messages missing from the
    /// sequence (the record itself is incomplete), a warning for TICKs the device did not send.
    private mutating func raiseGaps(_ gaps: [TelemetryGap], stamp: Stamp) -> [AlarmTransition] {
        guard !gaps.isEmpty else { return [] }
        let level: AlarmLevel = gaps.contains { $0.kind == .sequence } ? .alarm : .warning
        let missing = gaps.reduce(0) { $0 + $1.missingCount }
        let unit = Set(gaps.map(\.kind)).count > 1 ? "messages and TICKs" : gaps[0].kind == .sequence ? "messages" : "TICKs"
        let message = gaps.map(\.sentence).joined(separator: " ") + " Telemetry so far: \(completeness.summary)."
        return raiseLatched(.dataGap, level: level, value: Double(missing), limit: nil, unit: unit, message: message, stamp: stamp)
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
    /// A value equal to a line up to binary rounding counts as at it.
    static func level(value: Double, tiers: [(AlarmLevel, Double)], current: AlarmLevel?, hysteresis: Double, strict: Bool) -> AlarmLevel? {
        var result: AlarmLevel?
        for (tier, threshold) in tiers {
            let held = current.map { tier <= $0 } ?? false
            let reached =
                held
                ? Crossing.isAtOrAbove(value, threshold * (1 - hysteresis))
                : (strict ? Crossing.isAbove(value, threshold) : Crossing.isAtOrAbove(value, threshold))
            if reached, result.map({ tier > $0 }) ?? true { result = tier }
        }
        return result
    }

    /// Moves a limit alarm to `level` (nil = clear) and returns the transition, if any.
    /// `value` and the limit are in the clinic unit, cleaned of conversion noise.
    private mutating func transition(
        _ code: AlarmCode, to level: AlarmLevel?, value: Double?, limit: (AlarmLevel) -> Double?, unit: String,
        message: (AlarmLevel?) -> String, stamp: Stamp
    ) -> AlarmTransition? {
        let value = value.map(clinic)
        if let level {
            return Self.apply(
                &activeAlarms, code: code, to: level, value: value, limit: limit(level).map(clinic), unit: unit, message: message(level),
                stamp: stamp)
        }
        guard let index = activeAlarms.firstIndex(where: { $0.code == code }) else { return nil }
        let left = activeAlarms[index].level
        activeAlarms.remove(at: index)
        return AlarmTransition(
            code: code, kind: .cleared(reason: "back within limits"), level: left, value: value, limit: limit(left).map(clinic),
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
    /// An acknowledged latched alarm still active (acknowledged before acknowledgements ended them,
    /// or adopted from the store after a restart) that is seen again ends, and a new alarm is raised:
    /// staff must see the new occurrence, and the store keeps it as its own row.
    private mutating func raiseLatched(
        _ code: AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String, stamp: Stamp
    ) -> [AlarmTransition] {
        var out: [AlarmTransition] = []
        if let index = activeAlarms.firstIndex(where: { $0.code == code }), let by = activeAlarms[index].acknowledgedBy {
            let ended = activeAlarms.remove(at: index)
            out.append(Self.cleared(ended, reason: "acknowledged by \(by); seen again", stamp: stamp))
        }
        if let t = raiseLatchedOnce(code, level: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp) {
            out.append(t)
        }
        return out
    }

    private mutating func raiseLatchedOnce(
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
    /// pulled cable or a lost ACK). Without RUN_TIME the daemon's clock alone
    /// cannot tell a jump from messages delivered faster than real time (a
    /// backlog, a replayed export, a fast simulator), so the device's own TICK
    /// spacing is the second reference then.
    static func isClockJump(device: Seconds, runTime: Seconds?, received: Seconds, spacing: Seconds) -> Bool {
        if device.value < 0 { return true }
        let offReceived = abs(device.value - received.value) > clockJumpTolerance.value
        if let runTime { return offReceived && abs(device.value - runTime.value) > clockJumpTolerance.value }
        return offReceived && abs(device.value - spacing.value) > clockJumpTolerance.value
    }

    /// The device's usual spacing of TICKs on its own clock: the lower median of the last few
    /// advances (one jump among them does not move it); before any, the interface's longest
    /// TICK period.
    private var deviceSpacing: Seconds {
        guard !deviceSpacingObservations.isEmpty else { return Self.longestContractTickInterval }
        let sorted = deviceSpacingObservations.sorted()
        return sorted[(sorted.count - 1) / 2]
    }

    /// The interface sends a TICK every 1-60 s.
    static let longestContractTickInterval = Seconds(60)

    private mutating func learnSpacing(deviceAdvance: Seconds?) {
        guard let deviceAdvance, deviceAdvance.value > 0 else { return }
        deviceSpacingObservations.append(deviceAdvance)
        if deviceSpacingObservations.count > Self.tickIntervalSamples { deviceSpacingObservations.removeFirst() }
    }

    /// The device's TICK period for finding gaps: its own clock's spacing of TICKs (which goes on
    /// through pauses, and is not bounded like `tickInterval`: a non-conforming device ticking every
    /// 5 min is not missing 59 of every 60 TICKs); nil until a few spacings are known.
    private var gapPeriod: Seconds? {
        deviceSpacingObservations.count >= Self.spacingSamplesForGaps ? deviceSpacing : nil
    }
    static let spacingSamplesForGaps = 3

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

    /// Keeps the newest sample at or before the longest window's start (it
    /// brackets that window) and everything after it.
    private mutating func pruneHistory() {
        guard let end = history.last?.runTime else { return }
        let longest = max(profile.ratioWindow, profile.acInfusionWindow, profile.predictionWindow)
        let windowStart = end - longest + Self.runTimeTolerance
        guard let keep = history.dropLast().lastIndex(where: { ($0.runTime ?? end) <= windowStart }), keep > 0 else { return }
        history.removeFirst(keep)
    }
}

/// "60 s", "5 min": a span of run time as the sentence names it.
func spanText(_ span: Seconds) -> String {
    span.value < 120 ? "\(display(span.value, decimals: 1)) s" : "\(display(span.minutes, decimals: 1)) min"
}

/// The span actually used, named as the window when it is the window (to
/// within half a second: RUN_TIME's 0.001 min resolution is 0.06 s).
func spanText(_ span: Seconds, naming window: Seconds) -> String {
    abs(span.value - window.value) <= 0.5 ? spanText(window) : spanText(span)
}
