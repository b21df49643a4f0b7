import ApheresisCore
import Foundation
import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

// The real simulator engine (pure) drives a RunMonitor; the monotonic clock
// is the simulated elapsed time. Minutes below are docs/simulator-scenarios.md's.

let scenarioDirectory: String = {
    // Tests/ApheresisCoreTests/ScenarioTests.swift -> ../../simulator/scenarios
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/") + "/simulator/scenarios"
}()

let scenarioNames: [String] = {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: scenarioDirectory)) ?? []
    return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
}()

struct Replay {
    var transitions: [AlarmTransition] = []
    var judgements: [JudgementChange] = []
    var monitor: RunMonitor?
    var messages = 0

    func of(_ code: AlarmCode) -> [AlarmTransition] { transitions.filter { $0.code == code } }
    var codes: Set<AlarmCode> { Set(transitions.map(\.code)) }
}

func minutes(_ d: Duration) -> Double { RunMonitorTestClock.seconds(d) / 60 }
enum RunMonitorTestClock {
    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// Plays a scenario to its end. With `simulateLink`, a cable pull takes the
/// link down and queues the device's messages until it is back.
func replay(_ name: String, simulateLink: Bool = false) throws -> Replay {
    let scenario = try ScenarioLoader.load(path: scenarioDirectory + "/" + name + ".toml")
    var engine = RunEngine(scenario: scenario, runID: "RUN-" + name, seed: 7)
    var r = Replay()
    var sequence: UInt64 = 0
    var now = 0.0
    var linkUpAt: Double?
    var queue: [SeparatorMessage] = []
    let horizon = Seconds.hours(13).value

    func at(_ seconds: Double) -> Duration { .nanoseconds(Int64((seconds * 1e9).rounded())) }
    func deliver(_ message: SeparatorMessage, _ t: Double) {
        var m = message
        sequence += 1
        m.sequenceNumber = sequence
        r.messages += 1
        if m.kind == .runStart {
            let profile = RunMonitor.profile(for: m, from: [.pediatricCMNC, .standard])
            let monitor = RunMonitor(runStart: m, profile: profile, receivedAt: at(t))
            r.transitions += monitor.initialTransitions
            r.monitor = monitor
        } else {
            let e = r.monitor!.ingest(m, receivedAt: at(t))
            r.transitions += e.transitions
            r.judgements += e.judgements
        }
    }
    func checkStale(_ t: Double) {
        if r.monitor != nil { r.transitions += r.monitor!.checkStaleness(now: at(t)) }
    }

    while true {
        let nextEvent = engine.isFinished ? nil : engine.nextEventTime?.value
        guard let target = [nextEvent, linkUpAt].compactMap({ $0 }).min(), target <= horizon else { break }
        var s = now.rounded(.down) + 1
        while s < target {
            checkStale(s)
            s += 1
        }
        now = target
        if let up = linkUpAt, up <= now {
            r.transitions += r.monitor?.linkChanged(up: true, now: at(now)) ?? []
            for m in queue { deliver(m, now) }
            queue.removeAll()
            linkUpAt = nil
        }
        if nextEvent == target {
            for output in engine.advance(to: Seconds(target)) {
                switch output {
                case .message(let m):
                    if linkUpAt != nil { queue.append(m) } else { deliver(m, now) }
                case .wireFault(.cablePull(let duration)) where simulateLink:
                    r.transitions += r.monitor?.linkChanged(up: false, now: at(now)) ?? []
                    linkUpAt = now + duration.value
                case .wireFault:
                    break
                }
            }
        }
        checkStale(now)
    }
    return r
}

func near(_ t: AlarmTransition?, _ minute: Double, within tolerance: Double = 1.0) -> Bool {
    guard let t else { return false }
    return abs(minutes(t.at) - minute) <= tolerance
}

@Suite struct ScenarioReplays {
    static let quiet = [
        "normal-boy-10y", "normal-girl-15y", "normal-girl-5y", "framing-record-per-frame", "fault-checksum", "fault-garbage",
        "fault-lost-ack", "fault-early-stop",
    ]
    static let described = Set(quiet + [
        "fault-ratio-drift", "fault-stall-pump", "overrun", "fault-clock-jump", "alarm-pause-resume", "fault-cable-pull",
    ])

    @Test func everyScenarioIsCoveredAndEndsClosed() throws {
        #expect(scenarioNames.count >= 14)
        for name in scenarioNames {
            #expect(Self.described.contains(name), "no expectation written for scenario \(name)")
            let r = try replay(name)
            #expect(r.monitor?.isOpen == false, "\(name) did not close")
            #expect(r.monitor?.activeAlarms.isEmpty == true, "\(name) left alarms active")
        }
    }

    @Test(arguments: quiet) func raisesNothing(_ name: String) throws {
        let r = try replay(name)
        #expect(r.messages > 100)
        #expect(r.transitions.isEmpty, "\(name): \(r.transitions.map { "\($0.code) \($0.kind) @\(minutes($0.at)) \($0.message)" })")
        // Every limit judged throughout: nothing for the run's record.
        #expect(r.judgements.isEmpty, "\(name): \(r.judgements)")
    }

    @Test func ratioDrift() throws {
        let r = try replay("fault-ratio-drift")
        let ratio = r.of(.acRatio)
        #expect(ratio.first?.kind == .raised && ratio.first?.level == .warning)
        #expect(near(ratio.first, 25.5))
        let alarm = ratio.first { $0.kind == .escalated }
        #expect(near(alarm, 30.5))
        let agreement = r.of(.acRatioAgreement).first
        #expect(agreement?.level == .alarm)
        #expect(near(agreement, 26.5))
        #expect(r.codes == [.acRatio, .acRatioAgreement])
    }

    @Test func stalledPump() throws {
        let r = try replay("fault-stall-pump")
        let ratio = r.of(.acRatio)
        #expect(near(ratio.first, 30.1, within: 0.1))
        let alarm = ratio.first { $0.level == .alarm && $0.kind != .cleared(reason: "run ended") }
        #expect(near(alarm, 30.2, within: 0.1))
        #expect(near(r.of(.acRatioAgreement).first, 30.2, within: 0.1))
        // Clean from minute 34: both cleared between the stall's end and 34.
        for code in [AlarmCode.acRatio, .acRatioAgreement] {
            let cleared = r.of(code).last
            #expect(cleared?.kind == .cleared(reason: "back within limits"))
            #expect(cleared.map { minutes($0.at) > 33 && minutes($0.at) <= 34 + 1e-9 } == true)
        }
        #expect(r.transitions.allSatisfy { minutes($0.at) <= 34 + 1e-9 })
    }

    @Test func overrun() throws {
        let r = try replay("overrun")
        let runTime = r.of(.runTime)
        #expect(runTime.first?.level == .warning && near(runTime.first, 90, within: 0.05))
        #expect(near(runTime.first { $0.kind == .escalated }, 120, within: 0.05))
        let collect = r.of(.collectedVolume)
        // The pediatric profile's 250 mL collect target: 3.0 mL/min from minute 5.
        #expect(collect.first?.level == .warning && near(collect.first, 5 + 250.0 / 3, within: 0.1))
        #expect(near(collect.first { $0.kind == .escalated }, 125, within: 0.1))
        let wb = r.of(.wholeBloodProcessed)
        #expect(wb.first?.level == .warning && near(wb.first, 102.2, within: 0.1))
        #expect(near(wb.first { $0.kind == .escalated }, 127.4, within: 0.1))
        #expect(r.of(.bloodVolumesProcessed).isEmpty)  // TARGET_TBV not set
        #expect(r.codes == [.runTime, .collectedVolume, .wholeBloodProcessed])
        #expect(r.transitions.filter { $0.kind.isCleared }.allSatisfy { $0.kind.clearReason == "run ended" && near($0, 135, within: 0.01) })
    }

    @Test func clockJump() throws {
        let r = try replay("fault-clock-jump")
        let jumps = r.of(.dataClockJump).filter { !$0.kind.isCleared }
        #expect(jumps.count == 2)
        #expect(near(jumps.first, 20, within: 0.1))
        #expect(near(jumps.last, 40, within: 0.1))
        #expect(jumps.first?.value == 3605)
        #expect(r.codes == [.dataClockJump])
    }

    @Test func pauseResumeWithDeviceAlarms() throws {
        let r = try replay("alarm-pause-resume")
        let warning = r.of(.device("ACCESS_PRESS_LOW")).first
        #expect(warning?.level == .warning && near(warning, 25, within: 0.01))
        let alarm = r.of(.device("AIR_IN_RETURN")).first
        #expect(alarm?.level == .alarm && near(alarm, 45, within: 0.01))
        #expect(r.codes == [.device("ACCESS_PRESS_LOW"), .device("AIR_IN_RETURN")])
        #expect(r.of(.staleTelemetry).isEmpty)
        // Pauses hold the state silently; the rinseback (run time runs, pumps still) is recorded once.
        #expect(r.judgements.map(\.code) == [.acRatio, .acRatioAgreement])
        #expect(r.judgements.allSatisfy { !$0.judged && $0.reason?.hasPrefix("no inlet flow") == true })
        #expect(r.judgements.first?.runTimeMinutes == 61.5)
    }

    @Test func cablePull() throws {
        let r = try replay("fault-cable-pull", simulateLink: true)
        let link = r.of(.linkDown)
        #expect(link.count == 4)
        #expect(near(link.first, 20, within: 0.01) && near(link.dropFirst().first, 21.5, within: 0.01))
        let stale = r.of(.staleTelemetry)
        #expect(stale.count == 2)  // once, for the long pull only
        #expect(near(stale.first, 20.2, within: 0.1))
        #expect(stale.last?.kind.clearReason == "telemetry resumed" && near(stale.last, 21.5, within: 0.01))
        #expect(r.codes == [.linkDown, .staleTelemetry])
    }
}
