import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

@Suite("Run engine")
struct EngineTests {
    @Test("same scenario and seed give identical outputs; another seed changes the noise only")
    func determinism() throws {
        let scenario = try Fixtures.load("normal-girl-5y")
        let a = Fixtures.run(scenario, seed: 7)
        let b = Fixtures.run(scenario, seed: 7)
        let c = Fixtures.run(scenario, seed: 8)
        #expect(a == b)
        #expect(a != c)
        let volumesA = samples(a).map { $0[.collectVolume] }
        let volumesC = samples(c).map { $0[.collectVolume] }
        #expect(volumesA == volumesC)
    }

    @Test("chunked advancing and fast-forward reproduce the straight run", arguments: ["fault-ratio-drift", "alarm-pause-resume", "normal-boy-10y"])
    func fastForward(name: String) throws {
        let scenario = try Fixtures.load(name)
        let straight = Fixtures.run(scenario, seed: 99)

        var chunked = RunEngine(scenario: scenario, runID: "RUN-TEST-0001", seed: 99)
        var pieces: [EngineOutput] = []
        var rng = SeededGenerator(seed: 1)
        var t = 0.0
        while !chunked.isFinished {
            pieces += chunked.advance(to: Seconds(t))
            t += rng.nextUnit() * 37
        }
        #expect(pieces == straight)

        // A restarted simulator replays to its saved time, discards, continues.
        for cut in [0.0, 1234.5, 1800, 2010.25] {
            var first = RunEngine(scenario: scenario, runID: "RUN-TEST-0001", seed: 99)
            let before = first.advance(to: Seconds(cut))
            var resumed = RunEngine(scenario: scenario, runID: "RUN-TEST-0001", seed: 99)
            _ = resumed.advance(to: Seconds(cut))
            #expect(resumed.simulatedTime == Seconds(cut))
            #expect(resumed.nextEventTime == first.nextEventTime)
            let after = resumed.advance(to: Seconds.hours(13))
            #expect(before + after == straight)
        }
    }

    @Test("nextEventTime is when the next output comes, including the target reached between TICKs")
    func nextEventTime() throws {
        let scenario = try Fixtures.load("normal-girl-5y")
        let straight = Fixtures.run(scenario)
        var engine = RunEngine(scenario: scenario, runID: "RUN-TEST-0001", seed: 42)
        #expect(engine.nextEventTime == .zero)
        var collected: [EngineOutput] = []
        var steps = 0
        while let next = engine.nextEventTime {
            #expect(next >= engine.simulatedTime)
            let out = engine.advance(to: next)
            #expect(!out.isEmpty)
            collected += out
            steps += 1
        }
        #expect(engine.isFinished)
        #expect(collected == straight)
        // The run ends when WB reaches the target, not on a TICK.
        let end = try #require(straight.last?.message)
        #expect(end.kind == .runEnd)
        #expect(abs(end.number(.wholeBloodVolume)! - scenario.targetWholeBloodVolume.millilitres) <= 0.01)
        #expect(steps == straight.count - 1)  // RUN_START and the note at 0 s come in one step
    }

    @Test("RUN_START at time 0 and nothing before; nothing after RUN_END")
    func boundaries() throws {
        let scenario = try Fixtures.load("normal-boy-10y")
        var engine = RunEngine(scenario: scenario, runID: "RUN-X", seed: 1)
        #expect(engine.advance(to: Seconds(-1)).isEmpty)
        let first = engine.advance(to: .zero)
        #expect(first.count == 1)
        #expect(first.first?.message?.kind == .runStart)
        #expect(first.first?.message?.order.runID == "RUN-X")
        #expect(first.first?.message?.timestamp == scenario.settings.start)
        #expect(engine.advance(to: Seconds(4.999)).isEmpty)
        #expect(engine.advance(to: Seconds(5)).first?.message?.kind == .tick)
        _ = engine.advance(to: Seconds.hours(13))
        #expect(engine.isFinished)
        #expect(engine.nextEventTime == nil)
        #expect(engine.advance(to: Seconds.hours(14)).isEmpty)
    }

    @Test("SeededGenerator is reproducible, and streams are independent")
    func generator() {
        var a = SeededGenerator(seed: 2026)
        var b = SeededGenerator(seed: 2026)
        let xs = (0..<100).map { _ in a.next() }
        #expect(xs == (0..<100).map { _ in b.next() })
        var s1 = SeededGenerator(seed: 2026, stream: 1)
        var s2 = SeededGenerator(seed: 2026, stream: 2)
        #expect(s1.next() != s2.next())
        var u = SeededGenerator(seed: 5)
        let units = (0..<10_000).map { _ in u.nextUnit() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = units.reduce(0, +) / Double(units.count)
        #expect(abs(mean - 0.5) < 0.02)
        var n = SeededGenerator(seed: 6)
        #expect((0..<1000).allSatisfy { _ in abs(n.noise(sigma: 2)) <= 6 })
    }
}
