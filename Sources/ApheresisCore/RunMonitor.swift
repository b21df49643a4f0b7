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
///
/// The coordinator: `TelemetryReader` reads a sample, `TickTiming` checks its clock,
/// `RunDerivation` recomputes the values, `LimitJudge` judges them, `AlarmBook` keeps the alarms.
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
    public var activeAlarms: [ActiveAlarm] { alarms.active }
    /// False after RUN_END (or `close`).
    public private(set) var isOpen = true
    public private(set) var latestDerived = DerivedValues()
    public private(set) var latestPredictions = Predictions()
    /// The TICK period the staleness check uses: learned from the spacing of
    /// the device's TICKs, else the profile's expectation.
    public var tickInterval: Seconds { timing.tickInterval }
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

    private var alarms = AlarmBook()
    private var reader = TelemetryReader()
    private var timing: TickTiming
    private var derivation = RunDerivation()
    /// The newest daemon clock reading seen, to stamp alarms adopted in `reconcile`.
    private var latestClock: Duration

    /// The limits as they stand now (profile, start values, inferred TBV).
    private var judge: LimitJudge {
        LimitJudge(profile: profile, start: start, hasRunStart: hasRunStart, inferredTotalBloodVolume: inferredTotalBloodVolume)
    }

    // MARK: - Start

    public static func profile(for runStart: SeparatorMessage, from profiles: [LimitProfile]) -> LimitProfile {
        LimitProfile.select(
            from: profiles, procedure: runStart.order.procedure,
            weight: runStart.patient?.weightKilograms.map { Mass(kilograms: $0) })
    }

    private init(
        values: RunStartValues, hasRunStart: Bool, profile: LimitProfile, receivedAt: Duration, reference: TickTiming.ClockReference?
    ) {
        self.profile = profile
        self.baseProfile = profile
        self.start = values
        self.hasRunStart = hasRunStart
        self.timing = TickTiming(expectedTickInterval: profile.expectedTickInterval, reference: reference, receivedAt: receivedAt)
        self.latestClock = receivedAt
    }

    public init(runStart: SeparatorMessage, profile: LimitProfile, receivedAt: Duration) {
        self.init(
            values: RunStartValues(runStart), hasRunStart: true, profile: profile, receivedAt: receivedAt,
            reference: TickTiming.ClockReference(deviceTimestamp: runStart.timestamp, receivedAt: receivedAt, runTime: .zero))
        latestDerived.runTime = .zero
        _ = continuity.see(sequence: runStart.sequenceNumber)
        initialTransitions = judgeStart(stamp: AlarmStamp(at: receivedAt, runTime: .zero, deviceTimestamp: runStart.timestamp))
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
        let stamp = AlarmStamp(at: receivedAt, runTime: runTime, deviceTimestamp: first.timestamp)
        initialTransitions =
            alarms.raiseLatched(.dataRunStartMissing, level: .alarm, value: nil, limit: nil, unit: "", message: message, stamp: stamp)
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
    private mutating func judgeStart(stamp: AlarmStamp) -> [AlarmTransition] {
        guard let fraction = RunDerivation.extracorporealFraction(start) else { return [] }
        latestDerived.extracorporealFractionOfTBV = fraction
        return alarms.enact(judge.extracorporealVolume(fraction: fraction), stamp: stamp)
    }

    // MARK: - What is known

    /// TBV from RUN_START, else inferred from the telemetry.
    public var totalBloodVolume: Volume? { judge.totalBloodVolume }

    /// The set point the ratio is judged against: AC_RATIO_SET, or the profile's default while
    /// the run is watched without RUN_START; nil when RUN_START came without one.
    public var ratioSet: Double? { judge.ratioSet }

    /// True when `ratioSet` is the profile's assumption, not the device's setting.
    public var isRatioSetAssumed: Bool { judge.isRatioSetAssumed }

    /// The present value of the quantity an alarm code judges, in the alarm's unit (the
    /// recomputed ratio for AC_RATIO, % for the agreement and ECV, mL/min/L, mg/kg/min, mL,
    /// blood volumes, min), so that it can be shown beside the value at raise. Nil when it has
    /// no present value (not judged now, or not a measured quantity).
    public func currentValue(of code: AlarmCode) -> Double? {
        LimitJudge.presentValue(of: code, in: latestDerived).map(clinic)
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
            let stamp = AlarmStamp(at: receivedAt, runTime: latestDerived.runTime, deviceTimestamp: message.timestamp)
            gapTransitions = alarms.enact(LimitJudge.gaps(sequenceGaps, completeness: completeness), stamp: stamp)
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
        let stamp = AlarmStamp(at: receivedAt, runTime: latestDerived.runTime, deviceTimestamp: message.timestamp)
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
            evaluation.transitions += alarms.raiseLatched(
                .device(comment.code), level: level, value: nil, limit: nil, unit: "", message: sentence, stamp: stamp)
        }
        return evaluation
    }

    private mutating func ingestTelemetry(
        _ message: SeparatorMessage, receivedAt: Duration, ending: Bool, sequenceGaps: [TelemetryGap]
    ) -> Evaluation {
        let read = reader.read(message, receivedAt: receivedAt)
        let sample = read.sample
        var flags = read.flags
        // Device clock against RUN_TIME and the daemon's clock.
        let advance = timing.check(deviceTimestamp: message.timestamp, receivedAt: receivedAt, runTime: sample.runTime)
        if let jump = advance.jump { flags.append(jump) }

        let stamp = AlarmStamp(at: receivedAt, runTime: sample.runTime, deviceTimestamp: message.timestamp)
        var transitions: [AlarmTransition] = []

        let previousRunTime = derivation.latestRunTime
        derivation.append(sample, longestWindow: max(profile.ratioWindow, profile.acInfusionWindow, profile.predictionWindow))
        if start.totalBloodVolume == nil, let tbv = RunDerivation.inferredTotalBloodVolume(from: sample) { inferredTotalBloodVolume = tbv }

        // Run-time gaps, judged against the device's own TICK spacing once a few are known (at
        // RUN_END with the best estimate); this sample's advance is learned first.
        if !ending { timing.learn(advance) }
        var gaps = sequenceGaps
        if let runTime = sample.runTime {
            gaps += continuity.see(
                runTime: runTime, deviceAdvance: advance.device, period: timing.gapPeriod, tolerance: RunDerivation.runTimeTolerance)
        }
        if ending { gaps += continuity.settle(period: timing.finalGapPeriod) }
        transitions += alarms.enact(LimitJudge.gaps(gaps, completeness: completeness), stamp: stamp)

        if !ending {
            timing.tickReceived(at: receivedAt)
            if let t = alarms.clear(.staleTelemetry, reason: "telemetry resumed", stamp: stamp) { transitions.append(t) }
            transitions += alarms.enact(LimitJudge.dataQuality(flags), stamp: stamp)
            // The ECV check, once the start values are known (a RUN_START adopted late).
            if latestDerived.extracorporealFractionOfTBV == nil, hasRunStart { transitions += judgeStart(stamp: stamp) }
        }

        let (derived, windowJudging) = derivation.derive(
            from: sample, previous: latestDerived, profile: profile, bodyMass: start.bodyMass, totalBloodVolume: totalBloodVolume)
        latestDerived = derived
        latestPredictions = derivation.predict(
            derived: derived, windowed: sample.runTime != nil, profile: profile, start: start, totalBloodVolume: totalBloodVolume)

        if ending {
            // RUN_END: final values recorded, not judged; the run is closed.
            isOpen = false
            transitions += alarms.clearAll(reason: "run ended", stamp: stamp)
            return Evaluation(transitions: transitions, sampleQuality: flags, derived: derived, predictions: latestPredictions, gaps: gaps)
        }

        var judging = judge.structuralJudging(derived)
        // Rates and ratios are judged only when RUN_TIME moved: during a
        // pause the window holds the same volumes, so the state is kept.
        let runTimeAdvanced = sample.runTime.map { now in previousRunTime.map { now > $0 } ?? true } ?? false
        if runTimeAdvanced {
            transitions += alarms.enact(judge.ratio(derived) + judge.rates(derived), stamp: stamp)
            judging.merge(windowJudging) { structural, _ in structural }
        } else if sample.runTime == nil {
            let reason = "RUN_TIME missing or unusable in the latest TICK"
            for code in [AlarmCode.acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad] {
                judging[code] = judging[code] ?? .notJudged(reason)
            }
        }
        transitions += alarms.enact(judge.progress(derived), stamp: stamp)
        let judgements = LimitJudge.record(judging, into: &unjudged, runTime: derived.runTime)
        return Evaluation(
            transitions: transitions, sampleQuality: flags, derived: derived, predictions: latestPredictions, judgements: judgements,
            gaps: gaps)
    }

    // MARK: - Staleness and link

    public mutating func checkStaleness(now: Duration) -> [AlarmTransition] {
        guard isOpen else { return [] }
        latestClock = max(latestClock, now)
        let silent = timing.silence(at: now)
        let limit = tickInterval * profile.staleAfterTickIntervals
        guard silent >= limit, !alarms.isActive(.staleTelemetry) else { return [] }
        let stamp = AlarmStamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        let message =
            "No telemetry from the separator for \(display(silent.value)) s "
            + "(\(display(profile.staleAfterTickIntervals)) tick intervals of \(display(tickInterval.value)) s)."
        return alarms.apply(
            .staleTelemetry, to: .alarm, value: silent.value, limit: clinic(limit.value), unit: "s", message: message, stamp: stamp
        ).map { [$0] } ?? []
    }

    public mutating func linkChanged(up: Bool, now: Duration) -> [AlarmTransition] {
        isLinkUp = up
        guard isOpen else { return [] }
        latestClock = max(latestClock, now)
        let stamp = AlarmStamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        if up {
            return alarms.clear(.linkDown, reason: "link restored", stamp: stamp).map { [$0] } ?? []
        }
        guard !alarms.isActive(.linkDown) else { return [] }
        return alarms.apply(
            .linkDown, to: .alarm, value: nil, limit: nil, unit: "",
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
        let stamp = AlarmStamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil)
        let transitions = alarms.acknowledge(code, by: user, stamp: stamp)
        if !transitions.isEmpty { latestClock = max(latestClock, now) }
        return transitions
    }

    /// Closes the run without RUN_END (the daemon's open-run timeout): every active alarm is
    /// cleared with `reason`; nothing is judged afterwards. Empty when already closed.
    public mutating func close(reason: String, now: Duration) -> [AlarmTransition] {
        guard isOpen else { return [] }
        isOpen = false
        latestClock = max(latestClock, now)
        return alarms.clearAll(reason: reason, stamp: AlarmStamp(at: now, runTime: latestDerived.runTime, deviceTimestamp: nil))
    }

    /// Makes the active alarms those the store holds (after a restart, the watcher is rebuilt
    /// by replaying the run's messages; the store is the record). An alarm the replay also
    /// raised keeps its history and takes the stored level and acknowledgement; one only the
    /// store holds (stale telemetry, link down, anything raised under circumstances the replay
    /// does not repeat) is adopted as it was stored, so that it clears by its condition later;
    /// one only the replay raised is dropped. No transitions: the store already has them.
    public mutating func reconcile(with stored: [StoredAlarmState]) {
        alarms.reconcile(with: stored, clock: latestClock)
    }
}
