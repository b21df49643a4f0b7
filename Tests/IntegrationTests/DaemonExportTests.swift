import Foundation
import RecordStore
import SeparatorProtocol
import SimulatorKit
import Testing

/// The export directory: files the separator writes after a run, ingested once
/// through the same store path as live messages.
extension Integration {
    @Suite("Daemon export directory", .serialized)
    struct DaemonExportTests {
        static func config(exports: String, extraDevice: String = "") -> String {
            """
            format = 1
            [daemon]
            state_directory = "STATE"

            [[device]]
            name = "optia-exports"
            transport = "export"
            directory = "\(exports)"
            \(extraDevice)
            """
        }

        @Test("every scenario's export file ingested once; duplicates and malformed files handled")
        func everyScenarioThroughTheDirectory() async throws {
            let directory = try Paths.temporaryDirectory("daemon-export")
            defer { try? FileManager.default.removeItem(at: directory) }
            let exports = directory.appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            let daemon = try DaemonProcess(config: Self.config(exports: exports.path), directory: directory)

            var expectedRows: [String: Int] = [:]
            for scenario in Paths.scenarioFiles() {
                let sim = try SimulatorProcess(arguments: [
                    "run", Paths.scenarios.appendingPathComponent(scenario).path, "--export-dir", exports.path,
                    // One device, one state file: run ids go on from run to run.
                    "--speed", "1000000", "--state", directory.appendingPathComponent("sim.state").path,
                ], workingDirectory: directory)
                try sim.waitForExit()
                let path = try sim.waitForLine(prefix: "export: ")
                let export = try ExportCSV.decode(try String(contentsOfFile: path, encoding: .utf8))
                expectedRows["\(export.device.serialNumber)/\(export.runID)"] = export.rows.count
            }
            // The same content under another name, and a file cut short.
            let first = try #require(try FileManager.default.contentsOfDirectory(atPath: exports.path).sorted().first { $0.hasSuffix(".csv") })
            let firstText = try String(contentsOf: exports.appendingPathComponent(first), encoding: .utf8)
            try firstText.write(to: exports.appendingPathComponent("copy-of-\(first)"), atomically: true, encoding: .utf8)
            let broken = firstText.replacingOccurrences(of: "#END=", with: "#END=9")
            try broken.write(to: exports.appendingPathComponent("broken.csv"), atomically: true, encoding: .utf8)

            let database = daemon.databasePath
            try await eventuallyAsync("every export file handled; stderr: \(daemon.stderrText.suffix(2000))", timeout: .seconds(90)) {
                guard FileManager.default.fileExists(atPath: database) else { return false }
                let files = try await RecordStore.open(path: database).exportFiles()
                return files.count >= expectedRows.count + 2
            }
            try daemon.stop()

            let store = try await RecordStore.open(path: database)
            let files = try await store.exportFiles()
            #expect(files.filter { $0.outcome == .ingested }.count == expectedRows.count)
            #expect(files.filter { $0.outcome == .duplicate }.count == 1)
            #expect(files.filter { $0.outcome == .malformed }.count == 1)
            let runs = try await store.runs()
            #expect(runs.count == expectedRows.count)
            for run in runs {
                let samples = try await store.samples(runRef: run.id)
                #expect(samples.count == expectedRows["\(run.deviceSerial)/\(run.runID)"], "run \(run.runID)")
                #expect(run.state == .closed)
            }
            // The alarms of runs known only from their files reach the journal too, not only the store.
            var alarmCodes: Set<String> = []
            for run in runs { for alarm in try await store.alarms(runRef: run.id) { alarmCodes.insert(alarm.code) } }
            #expect(alarmCodes.contains("AC_RATIO"), "the ratio-drift export raises AC_RATIO: \(alarmCodes)")
            let journal = daemon.stderrText
            for code in alarmCodes { #expect(journal.contains("raised \(code)"), "\(code) in the journal") }
            let rejected = exports.appendingPathComponent("rejected")
            #expect(FileManager.default.fileExists(atPath: rejected.appendingPathComponent("broken.csv").path))
            let reason = try String(contentsOf: rejected.appendingPathComponent("broken.csv.reason.txt"), encoding: .utf8)
            #expect(reason.contains("END"), "reason: \(reason)")
            #expect(!FileManager.default.fileExists(atPath: exports.appendingPathComponent("broken.csv").path))
        }

        @Test("a run seen live and later as its export file is one run, with no sample twice")
        func liveThenFileIsOneRun() async throws {
            let directory = try Paths.temporaryDirectory("daemon-live-file")
            defer { try? FileManager.default.removeItem(at: directory) }
            let exports = directory.appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            let link = directory.appendingPathComponent("optia").path
            let capture = directory.appendingPathComponent("run.capture").path
            let sim = try SimulatorProcess(arguments: [
                "record", "--capture", capture, Paths.scenarios.appendingPathComponent("fault-early-stop.toml").path,
                "--pty", "--link", link, "--speed", "3000", "--answer-timeout", "0.5",
                "--state", directory.appendingPathComponent("sim.state").path,
            ], workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "pty: ")
            let daemon = try DaemonProcess(
                config: Self.config(
                    exports: exports.path,
                    extraDevice: "\n[[device]]\nname = \"optia-live\"\ntransport = \"pty\"\npath = \"\(link)\"\nreconnect_initial_ms = 50\n"),
                directory: directory)
            try sim.waitForExit()
            let last = try StoredRun.lastSequence(sim)
            let sent = CaptureDecoder.decode(try Capture.load(path: capture)).host.messages
            let serial = try #require(sent.first?.device.serialNumber)
            let database = daemon.databasePath
            try await eventuallyAsync("the live run is stored", timeout: .seconds(60)) {
                try await StoredRun.count(database: database, serial: serial) >= Int(last)
            }
            // The separator's export of the same run arrives later.
            let text = ExportCSV.encode(try ExportRun(messages: sent))
            try text.write(to: exports.appendingPathComponent("\(sent[0].order.runID).csv"), atomically: true, encoding: .utf8)
            try await eventuallyAsync("the export file is ingested; stderr: \(daemon.failureText)", timeout: .seconds(30)) {
                try await RecordStore.open(path: database).exportFiles().contains { $0.outcome == .ingested }
            }
            try daemon.stop()

            let store = try await RecordStore.open(path: database)
            let runs = try await store.runs()
            #expect(runs.count == 1)
            let run = try #require(runs.first)
            let samples = try await store.samples(runRef: run.id)
            #expect(samples.count == sent.filter { $0.kind == .tick || $0.kind == .runEnd }.count)
        }
    }
}
