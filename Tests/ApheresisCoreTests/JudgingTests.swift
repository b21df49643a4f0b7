import ApheresisCore
import Quantities
import SeparatorProtocol
import Testing

// Defects reported by testers: windows that never judged sparse TICKs, an agreement alarm that
// compared unlike things, clock jumps past 24 h of run time, and crossings decided on binary noise.

@Suite struct SparseTicks {
    @Test func ticksFurtherApartThanTheRatioWindowAreJudged() {
        var profile = LimitProfile.standard
        profile.ratioWindow = Seconds(30)
        var h = Harness(profile: profile)
        h.feed.tickSeconds = 60
        h.ticks(10, inletML: 36, acML: 4.5)  // 8:1 against 12:1
        #expect(h.level(.acRatio) == .alarm)
        let raised = h.of(.acRatio).first
        // The message names the span actually used, not the 30 s window.
        #expect(raised?.message.contains("over the last 60 s of run time") == true, "\(raised?.message ?? "")")
        #expect(h.monitor.latestDerived.windowRatio == 8)
    }

    @Test func fiveMinuteTicksAreJudgedForRatioInfusionAndCitrate() throws {
        var h = Harness()
        h.feed.tickSeconds = 300
        // 150 minutes at 8:1; 11.25 mL of ACD-A to the patient per 5 min = 2.25 mL/min.
        h.ticks(30, inletML: 180, acML: 22.5)
        #expect(h.level(.acRatio) == .alarm)
        #expect(h.of(.acRatio).first?.message.contains("over the last 5 min of run time") == true)
        let d = h.monitor.latestDerived
        #expect(d.windowRatio == 8)
        let rate = try #require(d.acInfusionRate).millilitresPerMinutePerLitre
        #expect(abs(rate - 2.25 / 2.4) < 1e-9)
        let citrate = try #require(d.citrateLoadRate).milligramsPerKilogramPerMinute
        #expect(abs(citrate - 2.25 * 21.3 / 32) < 1e-9)
        // No stale alarm from the sparse spacing is asked here; only no clock jump or range noise.
        #expect(h.of(.dataClockJump).isEmpty && h.of(.dataRange).isEmpty)
    }

    @Test func aHighCitrateLoadAtSparseTicksIsRaised() {
        var h = Harness(start: runStartMessage(tbv: 10_000))
        h.feed.tickSeconds = 120
        // 6 mL to the patient per 2 min: 3 mL/min x 21.3 mg/mL / 32 kg = 2.0 mg/kg/min.
        h.ticks(10, inletML: 72, acML: 6, acToPatientML: 6)
        #expect(h.level(.citrateLoad) == .warning)
    }
}

@Suite struct RatioAgreementLikeForLike {
    @Test func anHonestDeviceChangingItsRatioRaisesNoAgreementAlarm() {
        var h = Harness()
        h.ticks(20)  // 12:1, reported 12
        h.ticks(30, inletML: 3, acML: 0.375, overrides: [.acRatio: 8])  // 8:1, reported 8 from the change on
        #expect(h.of(.acRatioAgreement).isEmpty, "\(h.of(.acRatioAgreement).map(\.message))")
        #expect(h.level(.acRatio) == .alarm)  // the ratio itself is 4 off its set point
    }

    @Test func aDeviceReportingTwelveWhileItsVolumesGiveEightIsCaught() {
        var h = Harness()
        h.ticks(20)
        h.ticks(30, inletML: 3, acML: 0.375)  // reported 12 throughout
        #expect(h.level(.acRatioAgreement) == .alarm)
        let message = h.of(.acRatioAgreement).first?.message ?? ""
        #expect(message.contains("Do not trust the displayed ratio"), "\(message)")
    }
}

@Suite struct LongRunsAndFastDelivery {
    /// An export file replayed at 1 s per message, 5-minute TICKs (a non-conforming device),
    /// across RUN_TIME 1440 min.
    @Test func runTimeBeyondADayIsNeitherOutOfRangeNorAClockJump() {
        var h = Harness()
        h.feed.tickSeconds = 300
        h.feed.runTime = 1400 * 60
        h.feed.elapsed = 1400 * 60
        var index = 0
        while h.feed.runTime < 1500 * 60 {
            index += 1
            let m = h.feed.tick(inletML: 180, acML: 15)
            h.transitions += h.monitor.ingest(m, receivedAt: .seconds(index)).transitions
        }
        #expect(h.monitor.latestDerived.runTime == Seconds.minutes(1500))
        #expect(h.of(.dataRange).isEmpty, "\(h.of(.dataRange).map(\.message))")
        #expect(h.of(.dataClockJump).isEmpty, "\(h.of(.dataClockJump).map(\.message))")
    }

    /// TICKs without RUN_TIME, delivered faster than real time (a simulator at 60x): the
    /// daemon's clock disagrees with the device's, but nothing says the device clock moved.
    @Test func withoutRunTimeFastDeliveryIsNotAClockJump() {
        var h = Harness()
        h.feed.tickSeconds = 120
        func tickWithoutRunTime(_ h: inout Harness) -> SeparatorMessage {
            var m = h.feed.tick()
            m.results.removeAll { $0.code == .runTime }
            return m
        }
        for _ in 0..<20 {
            let m = tickWithoutRunTime(&h)
            h.transitions += h.monitor.ingest(m, receivedAt: .milliseconds(Int64(h.feed.elapsed * 1000 / 60))).transitions
        }
        #expect(h.of(.dataClockJump).isEmpty, "\(h.of(.dataClockJump).map(\.message))")
        // A real jump is still one.
        h.feed.deviceClockOffset = 3600
        let m = tickWithoutRunTime(&h)
        h.transitions += h.monitor.ingest(m, receivedAt: .milliseconds(Int64(h.feed.elapsed * 1000 / 60))).transitions
        #expect(h.of(.dataClockJump).count == 1)
    }
}

@Suite struct CrossingsWithoutNoise {
    /// 1.23 mL inlet and 0.12 mL ACD-A per tick is 10.25:1; the device says 11.275:1, 10 % more.
    /// At the 33rd tick the arithmetic gives 10.000000000000233 %: AT the line, not above it.
    @Test func agreementExactlyAtTenPercentIsNotAboveIt() {
        var h = Harness(start: runStartMessage(ratio: 10.25))
        h.ticks(33, inletML: 1.23, acML: 0.12, overrides: [.acRatio: 11.275])
        #expect(h.monitor.latestDerived.ratioDisagreementFraction.map { $0 * 100 } == 10.000000000000233)
        h.ticks(7, inletML: 1.23, acML: 0.12, overrides: [.acRatio: 11.275])
        #expect(h.of(.acRatioAgreement).isEmpty, "\(h.of(.acRatioAgreement).map(\.message))")
        // 11.4 is 11.2 % off: above.
        h.ticks(13, inletML: 1.23, acML: 0.12, overrides: [.acRatio: 11.4])
        #expect(h.level(.acRatioAgreement) == .alarm)
    }

    /// 0.15 mL a tick to a 21.3 kg patient is 1.8 mg/kg/min exactly; over the first full
    /// window of it the arithmetic gives 1.7999999999999996. "Warn at 1.8" means at it.
    @Test func citrateExactlyAtTheWarningIsAtIt() {
        var h = Harness(start: runStartMessage(tbv: 10_000, weight: 21.3))
        h.ticks(12, acToPatientML: 0)
        h.ticks(11, acToPatientML: 0.15)
        #expect(h.of(.citrateLoad).isEmpty)
        h.ticks(1, acToPatientML: 0.15)
        #expect(h.level(.citrateLoad) == .warning)
    }

    /// 192 mL of 1280 mL is 15 % (computed 0.15000000000000002): not above 15 %.
    @Test func ecvExactlyAtFifteenPercentIsNotAbove() {
        let monitor = RunMonitor(runStart: runStartMessage(tbv: 1280, ecv: 192), profile: .standard, receivedAt: .zero)
        #expect(monitor.initialTransitions.isEmpty)
        #expect(monitor.activeAlarms.isEmpty)
    }
}

@Suite struct LimitsAsConfigured {
    @Test func citrateLimitComesBackAsExactlyOnePointEight() throws {
        var h = Harness(start: runStartMessage(tbv: 10_000))
        h.ticks(13, acToPatientML: 0.23)  // 1.837 mg/kg/min
        let raised = try #require(h.of(.citrateLoad).first)
        #expect(raised.limit == 1.8)
        #expect(raised.message.contains("warning at 1.8,"))
        h.ticks(13, acToPatientML: 0.33)  // 2.636
        #expect(h.of(.citrateLoad).last?.limit == 2.6)
        #expect(RunPreset.citrateLoadWarn.read(.standard, totalBloodVolume: nil) == 1.8)
        #expect(RunPreset.acInfusionRateAlarm.read(.standard, totalBloodVolume: nil) == 1.2)
    }

    @Test func aPresetSetToItsPresentValueDoesNotRaiseTheLine() {
        #expect(LimitProfile.standard.raisedLines([.citrateLoadWarn: 1.8], totalBloodVolume: nil).isEmpty)
    }
}
