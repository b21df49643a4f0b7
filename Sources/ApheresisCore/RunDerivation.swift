import Quantities
import SeparatorProtocol

/// Recomputes a run's values from its samples: the ACD-A ratio, rates and citrate over their
/// windows of RUN_TIME, and the predictions. Keeps the samples the windows need.
struct RunDerivation: Sendable {
    /// RUN_TIME samples back to the one that brackets the longest window.
    private var history: [TelemetrySample] = []
    /// RUN_TIME of the first sample with one: the warm-up is measured from it.
    private var firstRunTime: Seconds?

    /// RUN_TIME travels as decimal minutes (0.001 min); window edges compare
    /// with this tolerance so that the binary error of a decimal does not
    /// drop a sample that lies exactly on the edge.
    static let runTimeTolerance = Seconds(0.001)
    /// TBV is inferred from TBV_PROCESSED only from this many blood volumes on:
    /// at the wire's 0.001 resolution the estimate is then within 1 %.
    static let minimumProcessedForInference = 0.05
    /// An inferred TBV outside this is not a patient's blood volume.
    static let plausibleTotalBloodVolume = Volume.millilitres(100)...Volume.millilitres(20_000)

    /// RUN_TIME of the newest sample that had one.
    var latestRunTime: Seconds? { history.last?.runTime }

    /// Takes in a sample with RUN_TIME (one without cannot be placed in a window), keeping the
    /// history `longestWindow` long.
    mutating func append(_ sample: TelemetrySample, longestWindow: Seconds) {
        guard let runTime = sample.runTime else { return }
        if firstRunTime == nil { firstRunTime = runTime }
        history.append(sample)
        prune(longestWindow: longestWindow)
    }

    /// Keeps the newest sample at or before the longest window's start (it
    /// brackets that window) and everything after it.
    private mutating func prune(longestWindow: Seconds) {
        guard let end = history.last?.runTime else { return }
        let windowStart = end - longestWindow + Self.runTimeTolerance
        guard let keep = history.dropLast().lastIndex(where: { ($0.runTime ?? end) <= windowStart }), keep > 0 else { return }
        history.removeFirst(keep)
    }

    /// TBV = WB_VOL / TBV_PROCESSED (the interface's definition), when the sample allows it.
    static func inferredTotalBloodVolume(from sample: TelemetrySample) -> Volume? {
        guard let wb = sample.wholeBlood, let processed = sample.deviceBloodVolumesProcessed,
            processed >= minimumProcessedForInference, wb > .zero
        else { return nil }
        let tbv = Volume(cubicMetres: wb.cubicMetres / processed)
        // The later the sample, the finer the estimate (TBV_PROCESSED grows, its resolution does not).
        return plausibleTotalBloodVolume.contains(tbv) ? tbv : nil
    }

    /// ECV / TBV as RUN_START gives them.
    static func extracorporealFraction(_ start: RunStartValues) -> Double? {
        guard let ecv = start.extracorporealVolume, let tbv = start.totalBloodVolume else { return nil }
        return ecv / tbv
    }

    // MARK: - Windows

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

    // MARK: - Derived values

    /// The values of `sample` (already appended when it has RUN_TIME), and whether each windowed
    /// limit can be judged on them. `previous`: the values so far (run state carried over).
    func derive(
        from sample: TelemetrySample, previous: DerivedValues, profile: LimitProfile, bodyMass: Mass?, totalBloodVolume tbv: Volume?
    ) -> (DerivedValues, [AlarmCode: Judging]) {
        var d = DerivedValues()
        var judging: [AlarmCode: Judging] = [:]
        d.runTime = sample.runTime ?? previous.runTime
        d.isPaused = previous.isPaused
        d.isRinsingBack = previous.isRinsingBack
        d.extracorporealFractionOfTBV = previous.extracorporealFractionOfTBV
        d.deviceRatio = sample.deviceRatio
        d.deviceBloodVolumesProcessed = sample.deviceBloodVolumesProcessed
        d.inletVolume = sample.inlet
        d.acVolume = sample.ac
        d.acToPatient = sample.acToPatient
        d.wholeBloodProcessed = sample.wholeBlood
        d.collectedVolume = sample.collect

        if let inlet = sample.inlet, let ac = sample.ac, ac > .zero { d.runRatio = inlet / ac }
        if let wb = sample.wholeBlood, let tbv { d.bloodVolumesProcessed = wb / tbv }
        if let collect = sample.collect, let tbv { d.collectedFractionOfTBV = collect / tbv }
        if let acToPatient = sample.acToPatient {
            let citrate = profile.citrateConcentration * acToPatient
            d.citrateInfused = citrate
            if let bodyMass { d.citrateLoadTotal = WeightNormalisedMass(mass: citrate, bodyMass: bodyMass) }
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
                if let bodyMass {
                    d.citrateLoadRate = WeightNormalisedMassRate(
                        mass: profile.citrateConcentration * (p1 - p0), per: w.span, bodyMass: bodyMass)
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
    func predict(
        derived: DerivedValues, windowed: Bool, profile: LimitProfile, start: RunStartValues, totalBloodVolume tbv: Volume?
    ) -> Predictions {
        var p = Predictions()
        var w: Window?
        if windowed, case .window(let found) = window(profile.predictionWindow) { w = found }
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
