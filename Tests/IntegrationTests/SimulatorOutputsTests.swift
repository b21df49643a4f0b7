import Foundation
import SeparatorProtocol
import SimulatorKit
import Testing

/// The simulator's other outputs: export files, replayed captures, and the
/// errors a user meets with a wrong serial port or scenario.
extension Integration {
    @Suite("Simulator outputs", .serialized)
    struct SimulatorOutputsTests {
        @Test("the export directory receives one complete CSV per run, never a partial name")
        func exportDirectory() throws {
            let directory = try Paths.temporaryDirectory("export")
            defer { try? FileManager.default.removeItem(at: directory) }
            let exports = directory.appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            let sim = try SimulatorProcess(arguments: [
                "run", Paths.scenarios.appendingPathComponent("fault-early-stop.toml").path,
                "--export-dir", exports.path, "--speed", "100000",
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            try sim.waitForExit()
            let runID = try sim.waitForLine(prefix: "run: ")
            let files = try FileManager.default.contentsOfDirectory(atPath: exports.path)
            #expect(files == ["\(runID).csv"], "export directory holds \(files)")
            let text = try String(contentsOf: exports.appendingPathComponent("\(runID).csv"), encoding: .utf8)
            let export = try ExportCSV.decode(text)
            #expect(export.runID == runID)
            #expect(export.rowCount == export.rows.count)
            #expect(text.contains("#END=\(export.rows.count)"))
            // The same run played into the engine directly has one row per TICK plus RUN_END.
            let scenario = try ScenarioLoader.load(path: Paths.scenarios.appendingPathComponent("fault-early-stop.toml").path)
            var engine = RunEngine(scenario: scenario, runID: runID, seed: 1)
            let messages = engine.advance(to: .hours(13)).compactMap { output -> SeparatorMessage? in
                if case .message(let m) = output { m } else { nil }
            }
            let ticks = messages.filter { $0.kind == .tick || $0.kind == .runEnd }
            #expect(export.rows.count == ticks.count)
            let lastVolume = try #require(export.rows.last?.values.first.flatMap { $0 })
            #expect(lastVolume == messages.last?.number(.runTime))
        }

        @Test("a shipped capture replayed over a pty reaches a host as it was recorded",
              arguments: ["short-faults", "short-record-per-frame"])
        func replayOverPseudoTerminal(name: String) throws {
            let directory = try Paths.temporaryDirectory("replay")
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("optia").path
            let lines = LineCollector()
            let host = HostLoop(endpoint: .terminal(path: link)) { lines.append(CaptureDecoder.describe($0)) }
            let sim = try SimulatorProcess(arguments: [
                "replay", Paths.captures.appendingPathComponent("\(name).capture").path,
                "--pty", "--link", link, "--speed", "20",
            ], workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "pty: ")
            let thread = BackgroundThread { host.run() }
            defer { host.stop(); thread.join() }
            try sim.waitForExit()
            let expected = try String(contentsOf: Paths.captures.appendingPathComponent("\(name).expected"), encoding: .utf8)
                .split(separator: "\n").map(String.init)
            #expect(lines.all == expected)
        }

        @Test("a serial port that does not exist is refused, naming it")
        func missingSerialPort() throws {
            let directory = try Paths.temporaryDirectory("serial")
            defer { try? FileManager.default.removeItem(at: directory) }
            let sim = try SimulatorProcess(arguments: [
                "run", Paths.scenarios.appendingPathComponent("normal-girl-5y.toml").path,
                "--serial", "/dev/ttyNOSUCH0", "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            #expect(throws: SimulatorFailure.self) { try sim.waitForExit(timeout: .seconds(20)) }
            #expect(sim.stderrText.contains("/dev/ttyNOSUCH0"), "stderr: \(sim.stderrText)")
        }

        @Test("a scenario with a typo is refused with its line and key")
        func badScenario() throws {
            let directory = try Paths.temporaryDirectory("bad-scenario")
            defer { try? FileManager.default.removeItem(at: directory) }
            let original = try String(contentsOf: Paths.scenarios.appendingPathComponent("normal-girl-5y.toml"), encoding: .utf8)
            let broken = original.replacingOccurrences(of: "weight_kg", with: "wieght_kg")
            let path = directory.appendingPathComponent("broken.toml")
            try broken.write(to: path, atomically: true, encoding: .utf8)
            let sim = try SimulatorProcess(arguments: ["check", path.path], workingDirectory: directory)
            #expect(throws: SimulatorFailure.self) { try sim.waitForExit(timeout: .seconds(20)) }
            let line = try #require(broken.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("wieght_kg") })
            let report = sim.lines.joined(separator: "\n")
            #expect(report.contains("wieght_kg"), "report: \(report)")
            #expect(report.contains(":\(line + 1)"), "report does not name line \(line + 1): \(report)")
        }
    }
}

final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }
}
