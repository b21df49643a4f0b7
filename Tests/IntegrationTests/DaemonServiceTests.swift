import DeviceLinks
import Foundation
import RecordStore
import SeparatorProtocol
import SimulatorKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The daemon as a service: systemd notifications on a real NOTIFY_SOCKET,
/// the watchdog withheld while the store is stuck, configuration errors with
/// their line, and a device that sends nonsense.
extension Integration {
    @Suite("Daemon as a service", .serialized)
    struct DaemonServiceTests {
        /// A device whose port nobody listens on: the link stays down, the loops still run.
        static let idleDeviceConfig = """
            format = 1
            [daemon]
            state_directory = "STATE"

            [[device]]
            name = "optia-idle"
            transport = "tcp"
            host = "127.0.0.1"
            port = 9
            reconnect_initial_ms = 100
            reconnect_max_s = 1
            """

        @Test("READY, STATUS, WATCHDOG, then STOPPING; no WATCHDOG while the store writer is stuck")
        func notifyAndWatchdog() throws {
            let directory = try Paths.temporaryDirectory("notify")
            defer { try? FileManager.default.removeItem(at: directory) }
            let listener = try NotifyListener(directory: directory)
            let daemon = try DaemonProcess(
                config: Self.idleDeviceConfig, directory: directory,
                environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "4000000"])
            // A 4 s watchdog: pings every second while everything progressed within 2 s.
            listener.drain(wait: .seconds(4))
            let beforeLock = listener.assignments
            let ready = try #require(beforeLock.firstIndex(of: "READY=1"), "no READY=1 in \(beforeLock); stderr: \(daemon.stderrText)")
            #expect(beforeLock.contains { $0.hasPrefix("STATUS=") })
            let firstWatchdog = try #require(
                beforeLock.firstIndex(of: "WATCHDOG=1"), "no WATCHDOG=1 in \(beforeLock); daemon: \(daemon.failureText)")
            #expect(ready < firstWatchdog)

            // Another process takes the database's write lock and holds it: the
            // daemon's store writer cannot make progress.
            let locker = try SQLiteLocker(database: daemon.databasePath)
            listener.drain(wait: .seconds(3))  // the health window (2 s) passes
            let settled = listener.assignments.count
            listener.drain(wait: .seconds(3))
            let whileLocked = Array(listener.assignments[settled...])
            #expect(!whileLocked.contains("WATCHDOG=1"), "WATCHDOG=1 sent while the store was locked: \(whileLocked)")
            locker.release()
            listener.drain(wait: .seconds(10))  // the blocked write times out (5 s busy timeout), then writes resume
            let afterRelease = Array(listener.assignments[(settled + whileLocked.count)...])
            #expect(afterRelease.contains("WATCHDOG=1"), "the watchdog did not resume after the lock was released: \(afterRelease)")

            try daemon.stop()
            listener.drain(wait: .milliseconds(300))
            let all = listener.assignments
            let stopping = try #require(all.lastIndex(of: "STOPPING=1"), "no STOPPING=1 in \(all)")
            #expect(stopping > (all.lastIndex(of: "WATCHDOG=1") ?? 0))
            #expect(stopping > ready)
        }

        @Test("a bad configuration is refused, naming its line")
        func badConfiguration() throws {
            let directory = try Paths.temporaryDirectory("bad-config")
            defer { try? FileManager.default.removeItem(at: directory) }
            let text = Self.idleDeviceConfig.replacingOccurrences(of: "port = 9", with: "port = 99999")
            let path = directory.appendingPathComponent("bad.toml")
            try text.replacingOccurrences(of: "STATE", with: directory.path).write(to: path, atomically: true, encoding: .utf8)
            let line = try #require(text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("99999") }) + 1

            let check = Process()
            check.executableURL = DaemonProcess.executable
            check.arguments = ["--check-config", path.path]
            let output = Pipe()
            check.standardOutput = output
            try check.run()
            check.waitUntilExit()
            let report = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(check.terminationStatus == 78)
            #expect(report.contains("line \(line)"), "report does not name line \(line): \(report)")
            #expect(report.contains("port"), "report does not name the key: \(report)")

            let run = Process()
            run.executableURL = DaemonProcess.executable
            run.arguments = ["--config", path.path]
            let errors = Pipe()
            run.standardError = errors
            run.standardOutput = FileHandle.nullDevice
            try run.run()
            run.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(run.terminationStatus == 78)
            #expect(stderr.contains("\(line)"), "stderr: \(stderr)")
        }

        @Test("a device sending nonsense: garbage ignored, unparsable messages quarantined and acknowledged, daemon unharmed")
        func deviceSendsNonsense() async throws {
            let directory = try Paths.temporaryDirectory("nonsense")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (listener, port) = try TCPSocket.listen(port: 0)
            defer { close(listener) }
            let daemon = try DaemonProcess(
                config: Integration.DaemonDeliveryTests.deviceConfig("transport = \"tcp\"\nhost = \"127.0.0.1\"\nport = \(port)"),
                directory: directory)
            let device = try FakeDevice(accepting: listener)

            var random = SeededGenerator(seed: 99)
            for _ in 0..<20 {
                try device.send((0..<200).map { _ in UInt8.random(in: 0...255, using: &random) })
            }
            // Intact frames, records that do not parse (an unknown message kind).
            let bogus = Array("H|\\^&|1||OPTIA-SIM^1.0^9BOGUS01|||||APHERESISD||P|LIS2-A2|20261124101500\rM|1|OSTI|BOGUS|1\rL|1|N\r".utf8)
            try device.send([ASCIIControl.eot])
            try device.deliver(bogus)
            #expect(daemon.process.isRunning)

            try await eventuallyAsync("the bogus message is quarantined", timeout: .seconds(20)) {
                guard FileManager.default.fileExists(atPath: daemon.databasePath) else { return false }
                let store = try await RecordStore.open(path: daemon.databasePath)
                return try await store.quarantined().contains { $0.raw == bogus }
            }
            let store = try await RecordStore.open(path: daemon.databasePath)
            let row = try #require(try await store.quarantined().first { $0.raw == bogus })
            #expect(row.reason.contains("BOGUS"), "reason: \(row.reason)")
            #expect(daemon.process.isRunning)
            try daemon.stop()
        }
    }
}

/// Holds SQLite's write lock on a database from another process (the sqlite3
/// shell), until released.
final class SQLiteLocker {
    private let process = Process()
    private let input = Pipe()

    init(database: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [database]
        process.standardInput = input
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data(".timeout 10000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n".utf8))
        let fd = output.fileHandleForReading.fileDescriptor
        var said = ""
        let deadline = ContinuousClock.now + .seconds(15)
        while !said.contains("locked") {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard ContinuousClock.now < deadline, poll(&p, 1, 15_000) > 0 else {
                throw SimulatorFailure(description: "sqlite3 did not take the lock; it said \(said)")
            }
            said += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        }
    }

    func release() {
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}

/// A hand-driven device on a TCP connection: sends raw bytes, or a whole
/// message through E1381, checking the daemon's answers.
final class FakeDevice {
    let fd: Int32

    init(accepting listener: Int32) throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            if let fd = try TCPSocket.accept(listener) {
                self.fd = fd
                return
            }
            guard ContinuousClock.now < deadline else { throw SimulatorFailure(description: "the daemon did not connect") }
            usleep(20_000)
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        guard try Descriptor.writeAll(fd, bytes) else { throw SimulatorFailure(description: "connection closed") }
    }

    func answer(timeout: Duration = .seconds(10)) throws -> UInt8 {
        var buffer = [UInt8](repeating: 0, count: 64)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            if case .bytes(let n) = try Descriptor.read(fd, into: &buffer), n > 0 { return buffer[n - 1] }
        }
        throw SimulatorFailure(description: "no answer from the daemon")
    }

    /// Discards whatever the daemon answered to earlier noise.
    func drain(for duration: Duration = .milliseconds(300)) throws {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 20) > 0 { _ = try Descriptor.read(fd, into: &buffer) }
        }
    }

    /// ENQ, frames, EOT, expecting ACK to each.
    func deliver(_ text: [UInt8]) throws {
        try drain()
        try send([ASCIIControl.enq])
        #expect(try answer() == ASCIIControl.ack)
        for frame in E1381Framer.frames(forMessage: text, mode: .wholeMessage, firstFrameNumber: 1) {
            try send(frame)
            #expect(try answer() == ASCIIControl.ack)
        }
        try send([ASCIIControl.eot])
    }
}
