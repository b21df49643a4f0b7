import DeviceLinks
import Foundation
import RecordStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One reader per line: a second reader of a tty would take some of its bytes, and a message it
/// acknowledges without storing is lost for good (issue 11).
extension Integration {
    @Suite("One reader per line", .serialized)
    struct LineOwnershipTests {
        @Test("a terminal already read is refused, naming the path and the process that reads it")
        func aHeldTerminalIsRefused() throws {
            let pair = try PseudoTerminal.create()
            defer {
                close(pair.master)
                close(pair.keeper)
            }
            let first = try PseudoTerminal.openTerminal(path: pair.path, baud: nil)
            defer { close(first) }
            do {
                let second = try PseudoTerminal.openTerminal(path: pair.path, baud: nil)
                close(second)
                Issue.record("a second reader of \(pair.path) was let in")
            } catch {
                let text = "\(error)"
                #expect(text.contains(pair.path) && text.contains("process \(getpid())"), "\(text)")
            }
            // Free again once the first reader is gone.
            close(first)
            let again = try PseudoTerminal.openTerminal(path: pair.path, baud: nil)
            close(again)
        }

        @Test("the demo opens only the terminal its simulator reports, never what a leftover link points at")
        func demoOpensOnlyTheReportedTerminal() async throws {
            let directory = try Paths.temporaryDirectory("reported-pty")
            defer { try? FileManager.default.removeItem(at: directory) }
            // A terminal this test owns, and a leftover link to it where the demo keeps its simulator's.
            let other = try PseudoTerminal.create()
            defer {
                close(other.master)
                close(other.keeper)
            }
            let state = directory.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(
                atPath: state.appendingPathComponent("optia-sim.pty").path, withDestinationPath: other.path)
            // The simulator starts 3 s late: long enough for a daemon that follows the link to open it.
            let slow = directory.appendingPathComponent("slow-optia-sim")
            try "#!/bin/sh\nsleep 3\nexec \(Paths.simulator.path) \"$@\"\n".write(to: slow, atomically: true, encoding: .utf8)
            chmod(slow.path, 0o755)
            let daemon = try DaemonProcess.simulated(
                scenario: Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, speed: 60, in: directory,
                environment: ["OPTIA_SIM": slow.path])
            let fds = "/proc/\(daemon.process.processIdentifier)/fd"
            let deadline = ContinuousClock.now + .seconds(3)
            while ContinuousClock.now < deadline {
                let open = (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? []
                let targets = open.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: fds + "/" + $0) }
                #expect(!targets.contains(other.path), "the daemon opened \(other.path), a terminal its simulator did not report")
                if targets.contains(other.path) { break }
                usleep(50_000)
            }
            try eventually("the simulator's own terminal is read: \(daemon.failureText)", timeout: .seconds(30)) {
                daemon.stderrText.contains("the separator is heard")
            }
            try daemon.stop()
        }

        @Test("a second daemon on the same terminal is refused; the first stores every message")
        func secondDaemonOnOneTerminal() async throws {
            let directory = try Paths.temporaryDirectory("one-reader")
            defer { try? FileManager.default.removeItem(at: directory) }
            let link = directory.appendingPathComponent("optia").path
            let sim = try SimulatorProcess(
                arguments: [
                    "run", Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, "--pty", "--link", link,
                    "--speed", "600", "--answer-timeout", "0.5", "--state", directory.appendingPathComponent("sim.state").path,
                ], workingDirectory: directory)
            _ = try sim.waitForLine(prefix: "pty: ")
            // Each daemon on a port of its own: a taken API port is refused before the line is opened.
            let config = Integration.DaemonDeliveryTests.deviceConfig("transport = \"pty\"\npath = \"\(link)\"")
                + "\n[api]\nlisten = \"127.0.0.1:0\"\n"
            let firstDirectory = directory.appendingPathComponent("first")
            let secondDirectory = directory.appendingPathComponent("second")
            try FileManager.default.createDirectory(at: firstDirectory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: secondDirectory, withIntermediateDirectories: true)
            let first = try DaemonProcess(config: config, directory: firstDirectory)
            try eventually("the first daemon hears the separator: \(first.failureText)", timeout: .seconds(30)) {
                first.stderrText.contains("the separator is heard")
            }
            let second = try DaemonProcess(config: config, directory: secondDirectory)
            try eventually("the second daemon is refused, naming the line and the first daemon: \(second.failureText)", timeout: .seconds(30)) {
                second.stderrText.contains("\(link) is already read by process \(first.process.processIdentifier) (apheresisd)")
            }
            try sim.waitForExit()
            let last = try StoredRun.lastSequence(sim)
            try await eventuallyAsync("the first daemon stored every message", timeout: .seconds(60)) {
                try await StoredRun.count(database: first.databasePath, serial: "1OPT00417") >= Int(last)
            }
            try first.stop()
            try second.stop()
            let store = try await RecordStore.open(path: first.databasePath)
            let sequences = try await store.messages().compactMap(\.sequence).sorted()
            try await store.close()
            #expect(sequences == Array(1...last), "every message once, by the one reader")
            let secondStored = try await StoredRun.count(database: second.databasePath, serial: "1OPT00417")
            #expect(secondStored == 0, "the refused daemon read nothing")
        }
    }
}
