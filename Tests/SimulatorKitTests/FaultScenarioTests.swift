import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

@Suite("Fault and special scenarios")
struct FaultScenarioTests {
    @Test("ratio drift: the recomputed ratio leaves 12 +/- 2.0 at minute 30-31; AC_RATIO stays 12.0")
    func ratioDrift() throws {
        let scenario = try Fixtures.load("fault-ratio-drift")
        let s = samples(Fixtures.run(scenario))
        let ratios = windowRatios(s, windowTicks: 12)
        #expect(ratios.filter { $0.minute <= 20 }.allSatisfy { abs($0.ratio - 12) <= 1.0 })
        let firstWarning = try #require(ratios.first { abs($0.ratio - 12) > 1.0 })
        let firstAlarm = try #require(ratios.first { abs($0.ratio - 12) > 2.0 })
        #expect((25.0...26.0).contains(firstWarning.minute))
        #expect((30.0...31.0).contains(firstAlarm.minute))
        // It holds at 16:1 once the drift is over.
        #expect(ratios.filter { $0.minute > 41 }.allSatisfy { abs($0.ratio - 16) < 0.3 })
        #expect(s.allSatisfy { $0[.acRatio] == 12.0 })
        #expect(s.filter { $0.kind == .tick }.allSatisfy { abs($0[.acFlow] - 28.0 / 12) < 0.051 })
    }

    @Test("stalled AC pump: AC_VOL flat from minute 30 to 33 while the inlet draws")
    func stalledPump() throws {
        let scenario = try Fixtures.load("fault-stall-pump")
        let s = samples(Fixtures.run(scenario))
        let during = s.filter { $0[.runTime] >= 30 && $0[.runTime] <= 33 }
        #expect(during.count >= 36)
        #expect(Set(during.map { $0[.acVolume] }).count == 1)
        #expect(Set(during.map { $0[.acToPatient] }).count == 1)
        let stallStart = try #require(during.first)
        let stallEnd = try #require(during.last)
        #expect(stallEnd[.inletVolume] - stallStart[.inletVolume] > 80)
        #expect(during.allSatisfy { $0[.acFlow] > 2 })  // the device does not know
        let before = s.filter { $0[.runTime] > 29 && $0[.runTime] < 30 }
        let after = s.filter { $0[.runTime] > 33.1 && $0[.runTime] < 34 }
        #expect(Set(before.map { $0[.acVolume] }).count == before.count)
        #expect(Set(after.map { $0[.acVolume] }).count == after.count)
        let ratios = windowRatios(s, windowTicks: 12)
        let alarm = try #require(ratios.first { abs($0.ratio - 12) > 2.0 })
        #expect((30.1...30.3).contains(alarm.minute))
        #expect(ratios.filter { $0.minute >= 34.01 }.allSatisfy { abs($0.ratio - 12) <= 1.0 })
    }

    @Test("clock jump: the H timestamp moves by +3600 s at minute 20 and -300 s at minute 40")
    func clockJump() throws {
        let scenario = try Fixtures.load("fault-clock-jump")
        let ticks = Fixtures.run(scenario).compactMap(\.message).filter { $0.kind == .tick }
        let steps = zip(ticks, ticks.dropFirst()).map { $1.timestamp.secondsSinceEpoch - $0.timestamp.secondsSinceEpoch }
        #expect(steps.filter { $0 == 5 + 3600 }.count == 1)
        #expect(steps.filter { $0 == 5 - 300 }.count == 1)
        #expect(steps.filter { $0 == 5 }.count == steps.count - 2)
        let start = scenario.settings.start.secondsSinceEpoch
        let at20 = try #require(ticks.first { $0.number(.runTime)! >= 20 })
        #expect(at20.timestamp.secondsSinceEpoch == start + 1200 + 3600)
        #expect(at20.order.runStart == scenario.settings.start)
    }

    @Test("early stop: RUN_END at minute 75, before the target")
    func earlyStop() throws {
        let scenario = try Fixtures.load("fault-early-stop")
        let outputs = Fixtures.run(scenario)
        let end = try #require(samples(outputs).last)
        #expect(end.kind == .runEnd)
        #expect(abs(end[.runTime] - 75) < 0.001)
        #expect(end[.wholeBloodVolume] < scenario.targetWholeBloodVolume.millilitres * 0.5)
        let start = try #require(runStart(outputs))
        #expect(end[.bloodVolumesProcessed] < start.number(.targetBloodVolumesProcessed)!)
        let kinds = outputs.compactMap(\.message).filter { $0.kind != .tick }.suffix(3).map(\.kind)
        #expect(kinds == [.alarm, .event, .runEnd])
    }

    @Test("overrun: run time, collect volume and blood processed pass their alarm lines")
    func overrun() throws {
        let scenario = try Fixtures.load("overrun")
        let outputs = Fixtures.run(scenario)
        let start = try #require(runStart(outputs))
        #expect(start.number(.targetWholeBloodVolume) == 2400)
        #expect(start.number(.targetBloodVolumesProcessed) == 0)
        #expect(start.number(.targetRunTime) == 90)
        let s = samples(outputs)
        let end = try #require(s.last)
        #expect(abs(end[.runTime] - 135) < 0.001)
        #expect(end[.runTime] > 90 + 30)
        #expect(end[.collectVolume] > 0.15 * 2400)
        #expect(end[.wholeBloodVolume] > 1.25 * 2400)
        // Minutes announced in the file's header.
        func firstMinute(_ test: (Sample) -> Bool) -> Double? { s.first(where: test)?[.runTime] }
        #expect((101.5...102.5).contains(try #require(firstMinute { $0[.wholeBloodVolume] >= 2400 })))
        #expect((124.9...125.2).contains(try #require(firstMinute { $0[.collectVolume] >= 360 })))
        #expect((127.0...127.8).contains(try #require(firstMinute { $0[.wholeBloodVolume] >= 3000 })))
    }

    @Test("pause: TICKs continue with flows 0 and RUN_TIME frozen; events in order; rinseback ends the run")
    func pauseResume() throws {
        let scenario = try Fixtures.load("alarm-pause-resume")
        let outputs = Fixtures.run(scenario)
        let notes = outputs.compactMap(\.message).filter { $0.kind == .alarm || $0.kind == .event }
            .map { "\($0.kind.rawValue):\($0.comments[0].code):\($0.comments[0].severity.rawValue)" }
        #expect(notes == [
            "ALARM:ACCESS_PRESS_LOW:WARNING", "EVENT:PAUSE:INFO", "EVENT:OPERATOR_NOTE:INFO", "EVENT:RESUME:INFO",
            "ALARM:AIR_IN_RETURN:ALARM", "EVENT:PAUSE:INFO", "EVENT:RESUME:INFO", "EVENT:RINSEBACK:INFO",
        ])
        let ticks = samples(outputs).filter { $0.kind == .tick }
        let start = scenario.settings.start.secondsSinceEpoch
        func elapsed(_ x: Sample) -> Int64 { x.timestamp.secondsSinceEpoch - start }
        let firstPause = ticks.filter { elapsed($0) > 1530 && elapsed($0) < 1740 }
        #expect(firstPause.count == 41)
        #expect(Set(firstPause.map { $0[.runTime] }) == [25.5])
        #expect(firstPause.allSatisfy { $0[.inletFlow] == 0 && $0[.acFlow] == 0 && $0[.returnFlow] == 0 })
        #expect(Set(firstPause.map { $0[.inletVolume] }).count == 1)
        let end = try #require(samples(outputs).last)
        #expect(end.timestamp.secondsSinceEpoch - start == 69 * 60)
        #expect(abs(end[.runTime] - 63.5) < 0.001)
    }

    @Test("wire faults come out at their minute, before that instant's TICK")
    func wireFaults() throws {
        let cable = Fixtures.run(try Fixtures.load("fault-cable-pull"))
        let pulls = cable.enumerated().filter { $0.element.wireFault != nil }
        #expect(pulls.map(\.element.wireFault) == [.cablePull(duration: Seconds(90)), .cablePull(duration: Seconds(10))])
        let ticksBefore = cable[..<pulls[0].offset].compactMap(\.message).filter { $0.kind == .tick }.count
        #expect(ticksBefore == 239)  // TICKs at 5 ... 1195 s
        #expect(cable[pulls[0].offset + 1].message?.kind == .tick)

        let garbage = Fixtures.run(try Fixtures.load("fault-garbage")).compactMap(\.wireFault)
        #expect(garbage == [.garbage(byteCount: 64), .garbage(byteCount: 300), .garbage(byteCount: 1)])
    }

    @Test("fault rates, framing and tick interval are exposed to the I/O layer")
    func exposedSettings() throws {
        #expect(try Fixtures.load("fault-checksum").faults == FaultRates(corruptChecksum: 0.05, lostAck: 0, garbage: 0))
        #expect(try Fixtures.load("fault-lost-ack").faults.lostAck == 0.03)
        #expect(try Fixtures.load("fault-garbage").faults.garbage == 0.01)
        let framing = try Fixtures.load("framing-record-per-frame")
        #expect(framing.framing == .recordPerFrame)
        #expect(framing.tickInterval == Seconds(10))
        let normal = try Fixtures.load("normal-boy-10y")
        #expect(normal.framing == .wholeMessage)
        #expect(normal.faults == .none)
        #expect(normal.device == DeviceIdentity(model: "OPTIA-SIM", softwareVersion: "11.3", serialNumber: "1OPT00417"))
    }

    @Test("the 5-year-old's ECV is 13.3 % of TBV: under the 15 % alarm")
    func smallChildECV() throws {
        let scenario = try Fixtures.load("normal-girl-5y")
        let start = try #require(runStart(Fixtures.run(scenario)))
        let fraction = start.number(.extracorporealVolume)! / start.number(.totalBloodVolume)!
        #expect(start.number(.totalBloodVolume) == 1440)
        #expect(abs(fraction - 0.1326) < 0.001)
    }
}
