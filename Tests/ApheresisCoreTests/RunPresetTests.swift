import ApheresisCore
import Quantities
import Testing

@Suite("Presets changed for one run")
struct RunPresetTests {
    let tbv = Volume.millilitres(2400)

    @Test func valuesLandInTheProfileInSI() throws {
        let profile = try LimitProfile.standard.applying(
            [.acInfusionRateWarn: 0.9, .citrateLoadAlarm: 2.2, .collectTarget: 150, .collectMaximum: 300, .ratioWarnDeviation: 1.5],
            totalBloodVolume: tbv)
        // 0.9 mL/min/L = 0.9e-3 / 60 per second.
        #expect(abs(profile.acInfusionRateWarn.perSecond - 0.9e-3 / 60) < 1e-15)
        #expect(abs(profile.citrateLoadAlarm.milligramsPerKilogramPerMinute - 2.2) < 1e-12)
        #expect(profile.collectTarget == .millilitres(150))
        // 300 mL of 2400 mL: the profile keeps the maximum as a fraction of TBV.
        #expect(abs(profile.collectAlarmFractionOfTBV - 0.125) < 1e-12)
        #expect(profile.ratioWarnDeviation == 1.5)
        // What is not named stays.
        #expect(profile.ratioAlarmDeviation == LimitProfile.standard.ratioAlarmDeviation)
        #expect(RunPreset.collectMaximum.read(profile, totalBloodVolume: tbv).map { abs($0 - 300) < 1e-9 } == true)
    }

    @Test func outOfRangeAndNonFiniteAreRefusedByName() {
        #expect(throws: PresetChangeError.self) { try LimitProfile.standard.applying([.collectTarget: 0], totalBloodVolume: tbv) }
        do {
            _ = try LimitProfile.standard.applying([.citrateLoadWarn: 25], totalBloodVolume: tbv)
            Issue.record("25 mg/kg/min accepted")
        } catch {
            #expect(error.preset == .citrateLoadWarn)
            #expect(error.message.contains("citrate_load_warn_mg_per_kg_per_min") && error.message.contains("0.01...20"), "\(error)")
        }
        #expect(throws: PresetChangeError.self) { try LimitProfile.standard.applying([.ratioWarnDeviation: .nan], totalBloodVolume: tbv) }
    }

    @Test func aWarningMustStayBelowItsAlarmIncludingAnUnchangedOne() {
        do {
            _ = try LimitProfile.standard.applying([.ratioWarnDeviation: 2.5], totalBloodVolume: tbv)
            Issue.record("warning above the unchanged alarm accepted")
        } catch {
            #expect(error.message.contains("ratio_alarm_deviation = 2 ratio units (unchanged)"), "\(error)")
        }
        // Both moved together is fine.
        #expect((try? LimitProfile.standard.applying([.ratioWarnDeviation: 2.5, .ratioAlarmDeviation: 3], totalBloodVolume: tbv)) != nil)
        // The collect target must stay below the maximum (15 % of 2400 mL = 360 mL).
        #expect(throws: PresetChangeError.self) { try LimitProfile.standard.applying([.collectTarget: 400], totalBloodVolume: tbv) }
    }

    @Test func theMaximumInMillilitresNeedsTheBloodVolume() {
        #expect(throws: PresetChangeError.self) { try LimitProfile.standard.applying([.collectMaximum: 300], totalBloodVolume: nil) }
    }

    @Test func theWatcherJudgesByTheNewLinesFromTheNextSample() throws {
        var h = Harness(profile: .pediatricCMNC)  // collect target 250 mL
        h.ticks(20, collectML: 5)  // 100 mL
        #expect(h.of(.collectedVolume).isEmpty)
        try h.monitor.changePresets([.collectTarget: 90])
        #expect(h.monitor.presetChanges == [.collectTarget: 90])
        #expect(h.monitor.baseProfile.collectTarget == .millilitres(250))
        h.ticks(1, collectML: 5)
        #expect(h.level(.collectedVolume) == .warning)
        #expect(abs((h.of(.collectedVolume).last?.limit ?? 0) - 90) < 1e-9)
    }

    @Test func aRefusedChangeChangesNothing() throws {
        var h = Harness(profile: .pediatricCMNC)
        try h.monitor.changePresets([.collectTarget: 200])
        #expect(throws: PresetChangeError.self) { try h.monitor.changePresets([.ratioWarnDeviation: 5]) }
        #expect(h.monitor.presetChanges == [.collectTarget: 200])
        #expect(h.monitor.profile.ratioWarnDeviation == 1)
        // Changes merge: a second change keeps the first.
        try h.monitor.changePresets([.ratioWarnDeviation: 1.5])
        #expect(h.monitor.presetChanges == [.collectTarget: 200, .ratioWarnDeviation: 1.5])
        #expect(h.monitor.profile.collectTarget == .millilitres(200))
    }

    @Test func raisingAnyLineIsNamedLoweringIsNot() {
        let profile = LimitProfile.pediatricCMNC  // collect target 250 mL, maximum 15 % of TBV
        #expect(profile.raisedLines([.collectTarget: 150, .citrateLoadAlarm: 2.0], totalBloodVolume: tbv).isEmpty)
        #expect(profile.raisedLines([.collectTarget: 260, .ratioWarnDeviation: 1], totalBloodVolume: tbv) == [.collectTarget])
        #expect(profile.raisedLines([.acInfusionRateAlarm: 1.3, .acInfusionRateWarn: 0.5], totalBloodVolume: tbv) == [.acInfusionRateAlarm])
        // 15 % of 2400 mL is 360 mL: 361 raises it. Without a TBV the maximum has no value in mL: any is a raise.
        #expect(profile.raisedLines([.collectMaximum: 361], totalBloodVolume: tbv) == [.collectMaximum])
        #expect(profile.raisedLines([.collectMaximum: 300], totalBloodVolume: tbv).isEmpty)
        #expect(LimitProfile.standard.raisedLines([.collectTarget: 100], totalBloodVolume: tbv) == [.collectTarget])
    }
}
