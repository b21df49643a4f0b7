import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

@Suite("Every scenario file")
struct ScenarioRunTests {
    @Test("the scenario directory holds the expected scenarios")
    func inventory() {
        let expected = [
            "alarm-pause-resume", "fault-cable-pull", "fault-checksum", "fault-clock-jump", "fault-early-stop",
            "fault-garbage", "fault-lost-ack", "fault-ratio-drift", "fault-stall-pump", "framing-record-per-frame",
            "normal-boy-10y", "normal-girl-15y", "normal-girl-5y", "overrun",
        ]
        #expect(Fixtures.scenarioNames == expected)
    }

    @Test("parses, starts with RUN_START, ends with RUN_END, keeps the wire model", arguments: Fixtures.scenarioNames)
    func runShape(name: String) throws {
        let scenario = try Fixtures.load(name)
        #expect(scenario.name == name)
        let outputs = Fixtures.run(scenario)
        let messages = outputs.compactMap(\.message)
        #expect(messages.first?.kind == .runStart)
        #expect(messages.last?.kind == .runEnd)
        #expect(outputs.last?.message?.kind == .runEnd)
        #expect(messages.filter { $0.kind == .runStart }.count == 1)
        #expect(messages.filter { $0.kind == .runEnd }.count == 1)
        #expect(messages.allSatisfy { $0.sequenceNumber == 0 && $0.device == scenario.device })

        let start = try #require(messages.first)
        #expect(start.patient?.id == scenario.patient.id)
        #expect(start.results.map(\.code) == ParameterDefinition.settings.map(\.code))
        #expect(start.results.map(\.unit) == ParameterDefinition.settings.map(\.unit))
        #expect(start.number(.totalBloodVolume) == scenario.totalBloodVolume.millilitres.rounded())
        #expect(start.number(.acRatioSet) == scenario.settings.acRatio)

        for m in messages where m.kind == .tick || m.kind == .runEnd {
            #expect(m.results.map(\.code) == ParameterDefinition.telemetry.map(\.code))
            #expect(m.results.map(\.unit) == ParameterDefinition.telemetry.map(\.unit))
            #expect(m.results.map(\.sequence) == Array(1...17))
            #expect(m.results.allSatisfy { $0.timestamp == m.timestamp })
        }
        #expect(messages.last?.patient != nil)
        for m in messages where m.kind == .alarm || m.kind == .event {
            #expect(m.comments.count == 1)
            if m.kind == .event {
                #expect(CommentRecord.eventCodes.contains(m.comments[0].code))
                #expect(m.comments[0].severity == .info)
            }
        }
    }

    @Test("TICKs come every tick interval (device clock)", arguments: Fixtures.scenarioNames.filter { $0 != "fault-clock-jump" })
    func tickSpacing(name: String) throws {
        let scenario = try Fixtures.load(name)
        let ticks = Fixtures.run(scenario).compactMap(\.message).filter { $0.kind == .tick }
        let start = scenario.settings.start.secondsSinceEpoch
        let interval = Int64(scenario.tickInterval.value)
        #expect(ticks.first?.timestamp.secondsSinceEpoch == start + interval)
        for (a, b) in zip(ticks, ticks.dropFirst()) {
            #expect(b.timestamp.secondsSinceEpoch - a.timestamp.secondsSinceEpoch == interval)
        }
    }

    @Test("cumulative values never decrease; INLET = WB + AC; TBV_PROCESSED = WB / TBV", arguments: Fixtures.scenarioNames)
    func conservation(name: String) throws {
        let scenario = try Fixtures.load(name)
        let s = samples(Fixtures.run(scenario))
        let tbv = scenario.totalBloodVolume.millilitres
        let cumulative = ParameterDefinition.telemetry.filter { $0.kind == .cumulative }.map(\.code)
        for (a, b) in zip(s, s.dropFirst()) {
            for code in cumulative { #expect(b[code] >= a[code], "\(code) decreased at \(b.timestamp)") }
        }
        for x in s {
            #expect(abs(x[.inletVolume] - (x[.wholeBloodVolume] + x[.acVolume])) <= 0.0101)
            #expect(abs(x[.bloodVolumesProcessed] - x[.wholeBloodVolume] / tbv) <= 0.0005 + 0.01 / tbv)
            #expect(x[.acToPatient] <= x[.acVolume])
            #expect(x[.collectVolume] + x[.plasmaVolume] <= x[.inletVolume])
        }
    }

    @Test("normal runs stay inside the daemon's warning limits", arguments: Fixtures.normalScenarioNames)
    func normalLimits(name: String) throws {
        let scenario = try Fixtures.load(name)
        let outputs = Fixtures.run(scenario)
        let s = samples(outputs)
        let windowTicks = Int(60 / scenario.tickInterval.value)
        let setRatio = scenario.settings.acRatio
        let tbvLitres = scenario.totalBloodVolume.litres
        let kg = scenario.patient.weight.kilograms
        let ratios = windowRatios(s, windowTicks: windowTicks)
        #expect(ratios.count > 100)
        for w in ratios { #expect(abs(w.ratio - setRatio) <= 1.0, "ratio \(w.ratio) at minute \(w.minute)") }
        for i in windowTicks..<s.count {
            let minutes = s[i][.runTime] - s[i - windowTicks][.runTime]
            let acPerMinute = (s[i][.acToPatient] - s[i - windowTicks][.acToPatient]) / minutes
            #expect(acPerMinute / tbvLitres < 1.0, "AC infusion at minute \(s[i][.runTime])")
            #expect(acPerMinute * 21.3 / kg < 1.8, "citrate load at minute \(s[i][.runTime])")
        }
        #expect(s.allSatisfy { $0[.acInfusionRate] < 1.0 && $0[.acRatio] == setRatio })
        let end = try #require(s.last)
        #expect(end.kind == .runEnd)
        #expect(end[.collectVolume] >= 160)
        #expect(end[.collectVolume] < 0.15 * scenario.totalBloodVolume.millilitres)
        #expect(abs(end[.wholeBloodVolume] - scenario.targetWholeBloodVolume.millilitres) <= 0.01)
        #expect((120...210).contains(end[.runTime]))
        let targetRunTime = try #require(scenario.settings.targetRunTime)
        #expect(end[.runTime] < targetRunTime.minutes)
        let ratioBand = (2.0...3.0)
        #expect(ratioBand.contains(end[.bloodVolumesProcessed]))
    }
}
