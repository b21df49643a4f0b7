import Foundation
import RecordStore
import SeparatorProtocol
import SimulatorKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The daemon as a real child process with its real SQLite file, fed by the
/// real simulator: every message stored exactly once and in order, samples
/// equal to what the simulator sent, whatever the wire or the processes did.
extension Integration {
    @Suite("Daemon delivery", .serialized)
    struct DaemonDeliveryTests {
        static let speed = "3000"

        static func deviceConfig(_ transport: String) -> String {
            """
            format = 1
            [daemon]
            state_directory = "STATE"
            log_level = "info"

            [[device]]
            name = "optia-test"
            \(transport)
            reconnect_initial_ms = 50
            reconnect_max_s = 1
            """
        }

        @Test("every scenario over a pseudo-terminal, stored once, samples as sent", arguments: Paths.scenarioFiles())
        func overPseudoTerminal(scenario: String) async throws {
            let directory = try Paths.temporaryDirectory("daemon-pty")
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("optia").path
            let capture = directory.appendingPathComponent("run.capture").path
            let sim = try SimulatorProcess(arguments: [
                "record", "--capture", capture, Paths.scenarios.appendingPathComponent(scenario).path,
                "--pty", "--link", link, "--speed", Self.speed, "--answer-timeout", "0.5",
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "pty: ")
            let daemon = try DaemonProcess(config: Self.deviceConfig("transport = \"pty\"\npath = \"\(link)\""), directory: directory)
            try sim.waitForExit()
            try await StoredRun.verify(daemon: daemon, simulator: sim, scenario: scenario, capture: capture)
        }

        @Test("a cable pull, lost ACKs and a normal run over TCP, stored once, samples as sent", arguments: Paths.transportScenarioFiles())
        func overTCP(scenario: String) async throws {
            let directory = try Paths.temporaryDirectory("daemon-tcp")
            defer { try? FileManager.default.removeItem(at: directory) }
            let capture = directory.appendingPathComponent("run.capture").path
            let sim = try SimulatorProcess(arguments: [
                "record", "--capture", capture, Paths.scenarios.appendingPathComponent(scenario).path,
                "--tcp", "0", "--speed", Self.speed, "--answer-timeout", "0.5",
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            let port = try #require(UInt16(try sim.waitForLine(prefix: "tcp: 127.0.0.1:")))
            let daemon = try DaemonProcess(
                config: Self.deviceConfig("transport = \"tcp\"\nhost = \"127.0.0.1\"\nport = \(port)"), directory: directory)
            try sim.waitForExit()
            try await StoredRun.verify(daemon: daemon, simulator: sim, scenario: scenario, capture: capture, overTCP: true)
        }

        @Test("kill -9 of the daemon three times and of the simulator once: nothing lost, nothing duplicated")
        func daemonAndSimulatorKilled() async throws {
            let directory = try Paths.temporaryDirectory("daemon-kill")
            defer { try? FileManager.default.removeItem(at: directory) }
            let port = UInt16.random(in: 20_000...40_000)
            let scenario = "normal-boy-10y.toml"
            let serial = try ScenarioLoader.load(path: Paths.scenarios.appendingPathComponent(scenario).path).device.serialNumber
            let simArguments = [
                "run", Paths.scenarios.appendingPathComponent(scenario).path, "--tcp", String(port),
                "--speed", "1000", "--answer-timeout", "0.5", "--state", directory.appendingPathComponent("sim.state").path,
            ]
            let config = Self.deviceConfig("transport = \"tcp\"\nhost = \"127.0.0.1\"\nport = \(port)")
            var sim = try SimulatorProcess(arguments: simArguments, workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "tcp: ")
            var daemon = try DaemonProcess(config: config, directory: directory)
            let database = daemon.databasePath

            for (index, threshold) in [200, 700, 1200, 1700].enumerated() {
                try await eventuallyAsync("daemon stored \(threshold) messages", timeout: .seconds(90)) {
                    try await StoredRun.count(database: database, serial: serial) >= threshold
                }
                if index == 2 {
                    // The device loses power mid-run and comes back with its state file.
                    #expect(sim.process.isRunning)
                    sim.killHard()
                    sim = try SimulatorProcess(arguments: simArguments, workingDirectory: directory)
                    _ = try sim.waitForLine(prefix: "tcp: ")
                } else {
                    #expect(daemon.process.isRunning)
                    daemon.killHard()
                    daemon = try DaemonProcess(config: config, directory: directory)
                }
            }
            try sim.waitForExit()
            let last = try StoredRun.lastSequence(sim)
            try await eventuallyAsync("daemon stored up to #\(last)", timeout: .seconds(60)) {
                try await StoredRun.count(database: database, serial: serial) >= Int(last)
            }
            try daemon.stop()
            let store = try await RecordStore.open(path: database)
            let messages = try await store.messages(deviceSerial: serial)
            #expect(messages.compactMap(\.sequence) == Array(1...last))
            let runs = try await store.runs()
            #expect(runs.count == 1)
            let run = try #require(runs.first)
            #expect(run.state == .closed)
            let samples = try await store.samples(runRef: run.id)
            #expect(samples.count == messages.filter { $0.kind == "TICK" || $0.kind == "RUN_END" }.count)
            let quarantined = try await store.quarantined()
            #expect(quarantined.isEmpty, "\(quarantined.map(\.reason))")
        }
    }
}

func eventuallyAsync(_ message: @autoclosure () -> String, timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw SimulatorFailure(description: "timed out after \(timeout): \(message())")
}

/// Checks one stored run against what the simulator sent.
enum StoredRun {
    static func lastSequence(_ sim: SimulatorProcess) throws -> UInt64 {
        let done = try sim.waitForLine(prefix: "done: ")
        return try #require(done.split(separator: " ").last.flatMap { UInt64($0) }, "done line: \(done)")
    }

    static func count(database: String, serial: String) async throws -> Int {
        guard FileManager.default.fileExists(atPath: database) else { return 0 }
        let store = try await RecordStore.open(path: database)
        return try await store.messages(deviceSerial: serial).count
    }

    static func verify(
        daemon: DaemonProcess, simulator: SimulatorProcess, scenario: String, capture: String, overTCP: Bool = false
    ) async throws {
        let serial = try ScenarioLoader.load(path: Paths.scenarios.appendingPathComponent(scenario).path).device.serialNumber
        let last = try lastSequence(simulator)
        try await eventuallyAsync("\(scenario): daemon stored all \(last) messages; stderr: \(daemon.stderrText.suffix(2000))", timeout: .seconds(60)) {
            try await count(database: daemon.databasePath, serial: serial) >= Int(last)
        }
        try daemon.stop()

        let store = try await RecordStore.open(path: daemon.databasePath)
        let stored = try await store.messages(deviceSerial: serial)
        #expect(stored.compactMap(\.sequence) == Array(1...last), "\(scenario): stored sequences")
        // What the simulator put on the wire, decoded independently of the daemon.
        let sent = CaptureDecoder.decode(try Capture.load(path: capture)).host.messages
        #expect(sent.map(\.sequenceNumber) == Array(1...last))
        #expect(stored.map(\.raw) == sent.map { E1394Encoder.encode($0) }, "\(scenario): stored bytes differ from what was sent")

        let runs = try await store.runs()
        #expect(runs.count == 1)
        let run = try #require(runs.first)
        #expect(run.state == .closed)
        let samples = try await store.samples(runRef: run.id)
        let sentSamples = sent.filter { $0.kind == .tick || $0.kind == .runEnd }
        #expect(samples.count == sentSamples.count, "\(scenario): \(samples.count) samples stored, \(sentSamples.count) sent")
        for (row, message) in zip(samples, sentSamples) {
            for definition in ParameterDefinition.telemetry {
                guard row.value(definition.code) == message.number(definition.code) else {
                    Issue.record("\(scenario): sample at \(message.timestamp) \(definition.code) stored \(String(describing: row.value(definition.code))), sent \(String(describing: message.number(definition.code)))")
                    return
                }
            }
        }
        let quarantined = try await store.quarantined()
        #expect(quarantined.isEmpty, "\(scenario): quarantined \(quarantined.map(\.reason))")
        try await AlarmExpectations.check(store: store, runRef: run.id, scenario: scenario, overTCP: overTCP)
    }
}
