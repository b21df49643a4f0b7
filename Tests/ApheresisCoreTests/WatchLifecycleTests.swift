import ApheresisCore
import Quantities
import SeparatorProtocol
import Testing

extension Harness {
    /// One tick, its evaluation.
    mutating func step(
        inletML: Double = 3, acML: Double = 0.25, acToPatientML: Double? = nil, collectML: Double = 0,
        overrides: [ParameterCode: Double] = [:]
    ) -> Evaluation {
        send(feed.tick(inletML: inletML, acML: acML, acToPatientML: acToPatientML, collectML: collectML, overrides: overrides))
    }
}

/// A feed already an hour into the run: 36 mL/min inlet at 12:1, 2.75 mL of whole blood a tick.
func feedAnHourIn() -> Feed {
    var feed = Feed()
    feed.elapsed = 3600
    feed.runTime = 3600
    feed.inlet = 2160
    feed.ac = 180
    feed.wholeBlood = 1980
    feed.acToPatient = 90
    return feed
}

/// A watch started from a TICK, the way the daemon does it: init, then ingest the same message.
func midRunHarness(profile: LimitProfile = .standard, feed: Feed = feedAnHourIn()) -> (Harness, Evaluation) {
    var h = Harness(profile: profile)
    h.feed = feed
    let first = h.feed.tick()
    h.monitor = RunMonitor(midRun: first, profile: profile, receivedAt: h.feed.now)
    h.transitions = h.monitor.initialTransitions
    let e = h.send(first)
    return (h, e)
}

@Suite struct NotJudged {
    @Test func aDenseRunIsJudgedThroughoutAndSaysNothing() throws {
        var h = Harness()
        var judgements: [JudgementChange] = []
        for _ in 0..<40 { judgements += h.step().judgements }
        #expect(judgements.isEmpty)  // the warm-up is not a "not judged"
        #expect(h.monitor.unjudged.isEmpty)
        #expect(h.monitor.latestDerived.ratioSpan == Seconds(60))
        #expect(h.monitor.latestDerived.acInfusionSpan == Seconds(60))
    }

    @Test func aMissingWeightIsReportedFromTheFirstTickOnceAndStays() throws {
        var h = Harness(start: runStartMessage(weight: nil))
        let first = h.step().judgements
        #expect(first.map(\.code) == [.citrateLoad])
        #expect(first.first?.judged == false && first.first?.reason == "patient weight missing from RUN_START")
        #expect(first.first?.runTimeMinutes.map { abs($0 - 5.0 / 60) < 1e-12 } == true)
        var later: [JudgementChange] = []
        for _ in 0..<30 { later += h.step().judgements }
        #expect(later.isEmpty)
        #expect(h.monitor.unjudged == [.citrateLoad: "patient weight missing from RUN_START"])
    }

    @Test func runTimeLostAndBackIsRecordedOnceEachWay() throws {
        var h = Harness()
        h.ticks(20)
        let lost = h.step(overrides: [.runTime: -1]).judgements  // out of range: not used
        #expect(lost.map(\.code) == [.acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad])
        #expect(lost.allSatisfy { !$0.judged && $0.reason == "RUN_TIME missing or unusable in the latest TICK" })
        let stillLost = h.step(overrides: [.runTime: -1]).judgements
        #expect(stillLost.isEmpty)
        let back = h.step().judgements
        #expect(back.map(\.code) == [.acRatio, .acRatioAgreement, .acInfusionRate, .citrateLoad])
        #expect(back.allSatisfy { $0.judged && $0.reason == nil })
        #expect(h.monitor.unjudged.isEmpty)
    }

    @Test func noInletFlowIsNotJudgedAndKeepsTheAlarm() throws {
        var h = Harness()
        h.ticks(13, inletML: 3.25)
        #expect(h.level(.acRatio) == .warning)
        var judgements: [JudgementChange] = []
        for _ in 0..<20 { judgements += h.step(inletML: 0, acML: 0, acToPatientML: 0).judgements }
        #expect(judgements.map(\.code) == [.acRatio, .acRatioAgreement])
        #expect(h.monitor.unjudged[.acRatio] == "no inlet flow over the last 60 s of run time")
        #expect(h.level(.acRatio) == .warning)
    }

    @Test func noSetPointOnlyWatchesForAStalledPump() throws {
        var h = Harness(start: runStartMessage(ratio: 0))
        let first = h.step().judgements
        #expect(first.map(\.code) == [.acRatio])
        h.ticks(20, inletML: 4)  // 16:1: not judged against anything
        #expect(h.of(.acRatio).isEmpty)
        h.ticks(13, acML: 0)
        #expect(h.level(.acRatio) == .alarm)
    }
}

@Suite struct MidRunWatch {
    @Test func startsWithALatchedAlarmAndTakesTheFirstMessageLikeAnyOther() {
        let (h, e) = midRunHarness()
        #expect(h.monitor.initialTransitions.map(\.code) == [.dataRunStartMissing])
        #expect(h.monitor.initialTransitions.first?.kind == .raised && h.monitor.initialTransitions.first?.level == .alarm)
        #expect(h.monitor.initialTransitions.first?.runTimeMinutes.map { abs($0 - (60 + 5.0 / 60)) < 1e-9 } == true)
        #expect(AlarmCode.dataRunStartMissing.isLatched)
        #expect(!h.monitor.hasRunStart)
        #expect(e.sampleQuality.isEmpty)  // no clock jump, nothing "decreasing" against a made-up start
        #expect(e.derived.runTime.map { abs($0.value - 3605) < 1e-9 } == true)
        #expect(h.monitor.activeAlarms.map(\.code) == [.dataRunStartMissing])
        #expect(h.monitor.start.runID == "RUN-1")
    }

    @Test func judgesAgainstTheAssumedSetPointAndSaysSo() {
        var (h, _) = midRunHarness()
        h.ticks(13, inletML: 3, acML: 0.375)  // 8:1
        #expect(h.level(.acRatio) == .alarm)
        let message = h.of(.acRatio).first?.message ?? ""
        #expect(message.contains("set point 12:1 assumed: RUN_START missing"), "\(message)")
        #expect(h.monitor.ratioSet == 12 && h.monitor.isRatioSetAssumed)
    }

    @Test func theDefaultSetPointIsTheProfiles() {
        var profile = LimitProfile.standard
        profile.defaultRatioSet = 8
        var (h, _) = midRunHarness(profile: profile)
        h.ticks(13, inletML: 3, acML: 0.375)
        #expect(h.of(.acRatio).isEmpty)
    }

    @Test func infersTheBloodVolumeAndLeavesCitratePerKgUnjudged() throws {
        var (h, e) = midRunHarness()
        // 1982.75 mL processed / (1982.75 / 2400) blood volumes.
        let tbv = try #require(h.monitor.inferredTotalBloodVolume).millilitres
        #expect(abs(tbv - 2400) < 1e-6)
        #expect(h.monitor.totalBloodVolume == h.monitor.inferredTotalBloodVolume)
        #expect(e.judgements.filter { !$0.judged }.map(\.code) == [
            .citrateLoad, .extracorporealVolume, .wholeBloodProcessed, .bloodVolumesProcessed, .runTime,
        ])
        #expect(h.monitor.unjudged[.citrateLoad] == "patient weight unknown (RUN_START missing)")
        h.ticks(13, acToPatientML: 0.25)  // 3 mL/min over 2.4 L = 1.25 mL/min/L
        #expect(h.level(.acInfusionRate) == .alarm)
        let message = h.of(.acInfusionRate).first?.message ?? ""
        #expect(message.contains("inferred from WB_VOL / TBV_PROCESSED"), "\(message)")
        #expect(h.monitor.latestDerived.citrateLoadRate == nil)
    }

    @Test func tooEarlyToInferTheBloodVolumeIsSaidThenJudged() throws {
        var feed = Feed()
        feed.elapsed = 60
        feed.runTime = 60
        var (h, e) = midRunHarness(feed: feed)  // 2.75 mL processed: 0.001 blood volumes
        #expect(h.monitor.inferredTotalBloodVolume == nil)
        #expect(e.judgements.first { $0.code == .acInfusionRate }?.reason?.contains("not yet inferable") == true)
        var judgements: [JudgementChange] = []
        for _ in 0..<50 { judgements += h.step().judgements }  // 0.05 blood volumes at 120 mL
        #expect(judgements.contains { $0.code == .acInfusionRate && $0.judged })
        #expect(h.monitor.inferredTotalBloodVolume != nil)
        #expect(h.monitor.unjudged[.acInfusionRate] == nil)
    }

    @Test func aLateRunStartFillsInTheStartValues() throws {
        var (h, _) = midRunHarness()
        h.ticks(13, inletML: 3, acML: 0.375)  // 8:1 against the assumed 12:1
        #expect(h.level(.acRatio) == .alarm)
        let start = runStartMessage(tbv: 1200, ratio: 8)
        let adopted = h.monitor.adoptRunStart(start)
        let adoptedTwice = h.monitor.adoptRunStart(start)
        #expect(adopted && !adoptedTwice)  // once
        #expect(h.monitor.hasRunStart && !h.monitor.isRatioSetAssumed && h.monitor.ratioSet == 8)
        #expect(h.monitor.inferredTotalBloodVolume == nil)
        let e = h.step(inletML: 3, acML: 0.375)
        // The ECV check of the start (191 mL of 1200 mL), with the first TICK after it.
        #expect(e.transitions.contains { $0.code == .extracorporealVolume && $0.kind == .raised })
        #expect(e.transitions.contains { $0.code == .acRatio && $0.kind.isCleared })  // 8:1 is the set point
        #expect(Set(e.judgements.filter(\.judged).map(\.code)) == [
            .citrateLoad, .extracorporealVolume, .wholeBloodProcessed, .bloodVolumesProcessed, .runTime,
        ])
        #expect(h.monitor.unjudged.isEmpty)
        #expect(h.level(.dataRunStartMissing) == .alarm)  // part of the run was watched on assumptions
    }

    @Test func aRunStartPassedToIngestIsAdoptedToo() {
        var (h, _) = midRunHarness()
        h.send(runStartMessage(ratio: 10))
        #expect(h.monitor.hasRunStart && h.monitor.ratioSet == 10)
        // Another run's RUN_START is not this run's.
        var (other, _) = midRunHarness()
        let adopted = other.monitor.adoptRunStart(runStartMessage(runID: "RUN-2"))
        #expect(!adopted && !other.monitor.hasRunStart)
    }

    @Test func startedFromARunStartIsAnOrdinaryWatch() {
        let monitor = RunMonitor(midRun: runStartMessage(), profile: .standard, receivedAt: .zero)
        #expect(monitor.hasRunStart)
        #expect(monitor.initialTransitions.isEmpty)
        #expect(monitor.ratioSet == 12)
    }
}

@Suite struct ClosingAndAcknowledging {
    @Test func closeClearsEverythingWithTheReason() {
        var h = Harness()
        h.ticks(13, inletML: 3.5, overrides: [.acRatio: 14])
        h.send(commentMessage(kind: .alarm, code: "AIR_IN_RETURN", severity: .alarm, at: h.feed))
        let closed = h.monitor.close(reason: "closed by timeout", now: h.feed.now + .seconds(600))
        #expect(Set(closed.map(\.code)) == [.acRatio, .device("AIR_IN_RETURN")])
        #expect(closed.allSatisfy { $0.kind == .cleared(reason: "closed by timeout") && $0.at == h.feed.now + .seconds(600) })
        #expect(!h.monitor.isOpen && h.monitor.activeAlarms.isEmpty)
        #expect(h.monitor.close(reason: "again", now: h.feed.now).isEmpty)
        #expect(h.monitor.ingest(h.feed.tick(), receivedAt: h.feed.now).transitions.isEmpty)
    }

    @Test func acknowledgingALatchedAlarmEndsItAndTheNextOneIsNew() {
        var h = Harness()
        h.ticks(2)
        h.send(commentMessage(kind: .alarm, code: "AIR_IN_RETURN", text: "Air", severity: .alarm, at: h.feed))
        let ended = h.monitor.acknowledge(code: .device("AIR_IN_RETURN"), by: "RN-A", now: h.feed.now)
        #expect(ended.map(\.kind) == [.acknowledged(by: "RN-A"), .cleared(reason: "acknowledged by RN-A")])
        #expect(ended.allSatisfy { $0.code == .device("AIR_IN_RETURN") && $0.level == .alarm })
        #expect(h.level(.device("AIR_IN_RETURN")) == nil)
        #expect(h.monitor.acknowledge(code: .device("AIR_IN_RETURN"), by: "RN-A", now: h.feed.now).isEmpty)
        h.ticks(1)
        let again = h.send(commentMessage(kind: .alarm, code: "AIR_IN_RETURN", text: "Air", severity: .alarm, at: h.feed))
        #expect(again.transitions.map(\.kind) == [.raised])
    }
}

@Suite struct Restoring {
    /// A separator alarm acknowledged but still active in the store (written by an earlier build, or
    /// adopted after a restart) that the separator raises again is a new alarm, never a silent repeat.
    @Test func anAcknowledgedLatchedAlarmFromTheStoreSeenAgainIsANewAlarm() {
        var h = Harness()
        h.ticks(2)
        h.monitor.reconcile(with: [
            StoredAlarmState(
                code: .device("AIR_IN_RETURN"), level: .alarm, acknowledgedBy: "RN-A", value: nil, limit: nil, unit: "",
                message: "Separator alarm AIR_IN_RETURN: Air.", runTimeMinutes: 0.1)
        ])
        let again = h.send(commentMessage(kind: .alarm, code: "AIR_IN_RETURN", text: "Air", severity: .alarm, at: h.feed))
        #expect(again.transitions.map(\.kind) == [.cleared(reason: "acknowledged by RN-A; seen again"), .raised])
        #expect(h.monitor.activeAlarms.first { $0.code == .device("AIR_IN_RETURN") }?.acknowledgedBy == nil)
    }

    /// The live watch saw stale telemetry and a link down; the replay cannot (it has only messages).
    @Test func theStoreDecidesWhatIsActive() throws {
        var live = Harness()
        live.ticks(13, inletML: 3.25)  // ratio warning
        let silentSince = live.feed.now
        live.transitions += live.monitor.checkStaleness(now: silentSince + .seconds(20))
        live.transitions += live.monitor.linkChanged(up: false, now: silentSince + .seconds(21))
        #expect(Set(live.monitor.activeAlarms.map(\.code)) == [.acRatio, .staleTelemetry, .linkDown])
        let acknowledged = live.monitor.acknowledge(code: .acRatio, by: "RN-A", now: silentSince + .seconds(22))
        #expect(acknowledged.count == 1)
        let stored = live.monitor.activeAlarms.map {
            StoredAlarmState(
                code: $0.code, level: $0.level, acknowledgedBy: $0.acknowledgedBy, value: $0.raised.value, limit: $0.raised.limit,
                unit: $0.raised.unit, message: $0.raised.message, runTimeMinutes: $0.raised.runTimeMinutes)
        }

        // Rebuilt by replay, with one alarm the store does not hold (acknowledged and ended before the restart).
        var rebuilt = Harness()
        rebuilt.ticks(13, inletML: 3.25)
        rebuilt.send(commentMessage(kind: .alarm, code: "ACCESS_PRESS_LOW", severity: .warning, at: rebuilt.feed))
        rebuilt.monitor.reconcile(with: stored)
        #expect(rebuilt.monitor.activeAlarms.map(\.code) == [.acRatio, .staleTelemetry, .linkDown])
        #expect(rebuilt.monitor.activeAlarms.map(\.level) == [.warning, .alarm, .alarm])
        #expect(rebuilt.monitor.activeAlarms.first?.acknowledgedBy == "RN-A")
        #expect(rebuilt.monitor.acknowledge(code: .acRatio, by: "RN-B", now: rebuilt.feed.now).isEmpty)

        // Adopted alarms clear by their conditions.
        let resumed = rebuilt.step(inletML: 3.25)
        #expect(resumed.transitions.map(\.code) == [.staleTelemetry])
        #expect(resumed.transitions.first?.kind == .cleared(reason: "telemetry resumed"))
        #expect(rebuilt.monitor.linkChanged(up: true, now: rebuilt.feed.now).map(\.kind) == [.cleared(reason: "link restored")])
        #expect(rebuilt.monitor.activeAlarms.map(\.code) == [.acRatio])
    }

    @Test func theStoredLevelHoldsAndMovesOnByTheNextJudgement() throws {
        var h = Harness()
        h.ticks(13, inletML: 3.5, overrides: [.acRatio: 14])  // 14:1, alarm
        #expect(h.level(.acRatio) == .alarm)
        let raised = try #require(h.monitor.activeAlarms.first?.raised)
        h.monitor.reconcile(with: [
            StoredAlarmState(
                code: .acRatio, level: .warning, acknowledgedBy: nil, value: raised.value, limit: 13, unit: "{ratio}",
                message: "stored", runTimeMinutes: raised.runTimeMinutes)
        ])
        #expect(h.level(.acRatio) == .warning)
        #expect(h.monitor.activeAlarms.first?.raised == raised)  // the replay's history is kept
        let next = h.step(inletML: 3.5, overrides: [.acRatio: 14])
        #expect(next.transitions.map(\.kind) == [.escalated])
        h.monitor.reconcile(with: [])
        #expect(h.monitor.activeAlarms.isEmpty)
    }
}

@Suite struct ValuesNowBesideValuesAtRaise {
    @Test func theCurrentValueOfEachActiveLimit() throws {
        var h = Harness(profile: .pediatricCMNC)
        h.ticks(13, inletML: 3.625, collectML: 20)  // 14.5:1
        let alarm = try #require(h.monitor.activeAlarms.first { $0.code == .acRatio })
        #expect(alarm.level == .alarm && alarm.raised.value == 14.5)
        h.ticks(13, inletML: 3.5625, collectML: 20)  // 14.25:1, still 2.25 off
        #expect(h.level(.acRatio) == .alarm)
        #expect(h.monitor.currentValue(of: .acRatio) == 14.25)
        #expect(h.monitor.activeAlarms.first { $0.code == .acRatio }?.raised.value == 14.5)
        #expect(h.monitor.currentValue(of: .collectedVolume) == 520)
        let runTime = try #require(h.monitor.currentValue(of: .runTime))
        #expect(abs(runTime - 26 * 5 / 60.0) < 1e-9)
        // The device keeps saying 12:1: 2.25 / 14.25 apart.
        #expect(h.level(.acRatioAgreement) == .alarm)
        let agreement = try #require(h.monitor.currentValue(of: .acRatioAgreement))
        #expect(abs(agreement - 2.25 / 14.25 * 100) < 1e-9)
        #expect(h.monitor.currentValue(of: .device("AIR_IN_RETURN")) == nil)
        let rate = try #require(h.monitor.currentValue(of: .acInfusionRate))
        #expect(abs(rate - 0.625) < 1e-12)
    }
}
