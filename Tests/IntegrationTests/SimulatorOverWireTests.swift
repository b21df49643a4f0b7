import Foundation
import SeparatorProtocol
import SimulatorKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real simulator as a child process, against a host built on the
/// protocol module, over a real pseudo-terminal and a real TCP socket.
extension Integration {
    @Suite("Simulator over the wire", .serialized)
    struct SimulatorOverWireTests {
        static let speed = "3000"
        /// Short enough that lost-ACK and cable-pull recoveries stay quick at this speed.
        static let answerTimeout = "0.25"

        @Test("the wire-fault scenarios over a pseudo-terminal", arguments: Paths.wireScenarioFiles())
        func overPseudoTerminal(scenario: String) throws {
            let directory = try Paths.temporaryDirectory("pty")
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("optia").path
            let sim = try SimulatorProcess(arguments: [
                "run", Paths.scenarios.appendingPathComponent(scenario).path, "--pty", "--link", link,
                "--speed", Self.speed, "--answer-timeout", Self.answerTimeout,
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "pty: ")
            let host = HostLoop(endpoint: .terminal(path: link))
            let thread = BackgroundThread { host.run() }
            defer { host.stop(); thread.join() }
            try sim.waitForExit()
            let last = try lastSequence(sim)
            DeliveryChecks.verify(host.snapshot, last: last, context: "\(scenario) over pty")
        }

        @Test("a cable pull, lost ACKs and a normal run over TCP", arguments: Paths.transportScenarioFiles())
        func overTCP(scenario: String) throws {
            let directory = try Paths.temporaryDirectory("tcp")
            defer { try? FileManager.default.removeItem(at: directory) }
            let sim = try SimulatorProcess(arguments: [
                "run", Paths.scenarios.appendingPathComponent(scenario).path, "--tcp", "0",
                "--speed", Self.speed, "--answer-timeout", Self.answerTimeout,
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            let port = try #require(UInt16(try sim.waitForLine(prefix: "tcp: 127.0.0.1:")))
            let host = HostLoop(endpoint: .tcp(host: "127.0.0.1", port: port))
            let thread = BackgroundThread { host.run() }
            defer { host.stop(); thread.join() }
            try sim.waitForExit()
            let last = try lastSequence(sim)
            DeliveryChecks.verify(host.snapshot, last: last, context: "\(scenario) over tcp")
        }

        @Test("a simulator killed with -9 three times resumes: nothing lost, nothing repeated (pty)")
        func simulatorRestartsOverPseudoTerminal() throws {
            let directory = try Paths.temporaryDirectory("restart-pty")
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("optia").path
            let arguments = [
                "run", Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, "--pty", "--link", link,
                "--speed", "1500", "--answer-timeout", Self.answerTimeout,
                "--state", directory.appendingPathComponent("sim.state").path,
            ]
            let host = HostLoop(endpoint: .terminal(path: link))
            try runWithRestarts(arguments: arguments, directory: directory, host: host, ready: "pty: ", context: "pty restarts")
        }

        @Test("a simulator killed with -9 three times resumes: nothing lost, nothing repeated (TCP)")
        func simulatorRestartsOverTCP() throws {
            let directory = try Paths.temporaryDirectory("restart-tcp")
            defer { try? FileManager.default.removeItem(at: directory) }
            // A fixed port, so the host reconnects to the restarted device.
            let port = UInt16.random(in: 20_000...40_000)
            let arguments = [
                "run", Paths.scenarios.appendingPathComponent("normal-girl-15y.toml").path, "--tcp", String(port),
                "--speed", "1500", "--answer-timeout", Self.answerTimeout,
                "--state", directory.appendingPathComponent("sim.state").path,
            ]
            let host = HostLoop(endpoint: .tcp(host: "127.0.0.1", port: port))
            try runWithRestarts(arguments: arguments, directory: directory, host: host, ready: "tcp: ", context: "tcp restarts")
        }

        private func runWithRestarts(arguments: [String], directory: URL, host: HostLoop, ready: String, context: String) throws {
            let thread = BackgroundThread { host.run() }
            defer { host.stop(); thread.join() }
            var runIDs: Set<String> = []
            for killAfter in [150, 700, 1300] {
                let sim = try SimulatorProcess(arguments: arguments, workingDirectory: directory)
                _ = try sim.waitForLine(prefix: ready)
                runIDs.insert(try sim.waitForLine(prefix: "run: "))
                let deadline = ContinuousClock.now + .seconds(60)
                while host.snapshot.messages.count < killAfter && sim.process.isRunning && ContinuousClock.now < deadline {
                    usleep(5_000)
                }
                #expect(sim.process.isRunning, "\(context): the simulator finished before the kill after \(killAfter) messages")
                sim.killHard()
            }
            let sim = try SimulatorProcess(arguments: arguments, workingDirectory: directory)
            runIDs.insert(try sim.waitForLine(prefix: "run: "))
            try sim.waitForExit()
            #expect(runIDs.count == 1, "\(context): the restarted simulator started a new run: \(runIDs)")
            let last = try lastSequence(sim)
            DeliveryChecks.verify(host.snapshot, last: last, context: context)
        }

        private func lastSequence(_ sim: SimulatorProcess) throws -> UInt64 {
            let done = try sim.waitForLine(prefix: "done: ")
            let field = try #require(done.split(separator: " ").last)
            return try #require(UInt64(field), "done line: \(done)")
        }
    }
}
