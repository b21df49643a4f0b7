import Foundation
import RecordStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Stopping the real daemon: a systemd notification socket that nobody reads must
/// not hold anything up, and a stop with many separators sending loses nothing
/// that a separator was told is stored. Functional checks with generous bounds;
/// the stop's duration is measured by scripts/bench/shutdown_time.sh, not here.
extension Integration {
    @Suite("Shutdown and systemd notifications", .serialized)
    struct ShutdownAndNotifyTests {
        @Test("a notification socket nobody reads: the daemon starts, keeps answering, and stops on SIGTERM")
        func notificationSocketNobodyReads() async throws {
            let directory = try Paths.temporaryDirectory("notify-full")
            defer { try? FileManager.default.removeItem(at: directory) }
            let listener = try NotifyListener(directory: directory)
            let daemon = try Self.daemonWithFullNotifySocket(listener, in: directory)
            let base = try daemon.apiBase()
            for _ in 0..<6 {
                let reply = try await HTTP.request("GET", base + "/api")
                #expect(reply.status == 200, "\(reply)")
                try await Task.sleep(for: .milliseconds(500))
            }
            #expect(daemon.process.isRunning)
            // libsystemd's sd_notify waited here for ever: the stop never came.
            try daemon.stop(timeout: .seconds(30))
        }

        @Test("notifications dropped on a full socket: said once, and READY and the status sent once there is room")
        func droppedNotificationsAreResent() async throws {
            let directory = try Paths.temporaryDirectory("notify-resend")
            defer { try? FileManager.default.removeItem(at: directory) }
            let listener = try NotifyListener(directory: directory)
            let daemon = try Self.daemonWithFullNotifySocket(listener, in: directory)
            _ = try daemon.apiBase()
            try eventually("the daemon says it drops notifications: \(daemon.failureText)", timeout: .seconds(30)) {
                daemon.stderrText.contains("notification socket is full")
            }
            // Keep-alives go on failing every 500 ms: still once per episode, not once per datagram.
            try await Task.sleep(for: .seconds(2))
            #expect(daemon.stderrText.components(separatedBy: "notification socket is full").count - 1 == 1, "\(daemon.stderrText.suffix(3000))")

            // Room again: the held-back READY=1 and the latest status arrive.
            listener.drain(wait: .seconds(3))
            #expect(listener.assignments.contains("READY=1"), "\(listener.assignments.suffix(20))")
            #expect(listener.assignments.contains { $0.hasPrefix("STATUS=") }, "\(listener.assignments.suffix(20))")
            try eventually("the daemon says notifications get through again: \(daemon.failureText)", timeout: .seconds(10)) {
                daemon.stderrText.contains("get through again")
            }

            // Full again when SIGTERM comes: STOPPING=1 finds no room, and the stop does not wait for any.
            _ = try fillDatagramQueue(listener.path)
            try daemon.stop(timeout: .seconds(30))
        }

        /// The idle device's daemon with NOTIFY_SOCKET at `listener`, whose queue is full before
        /// the daemon starts (READY=1 is the first datagram to find no room), and a 2 s watchdog:
        /// a keep-alive every 500 ms, each one meeting the full queue.
        static func daemonWithFullNotifySocket(_ listener: NotifyListener, in directory: URL) throws -> DaemonProcess {
            #expect(try fillDatagramQueue(listener.path) > 0)
            return try DaemonProcess(
                config: Integration.DaemonServiceTests.idleDeviceConfig + "\n[api]\nlisten = \"127.0.0.1:0\"\n", directory: directory,
                environment: ["NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "2000000"])
        }

        @Test("SIGTERM with eight separators sending: all stop together, and every message a separator saw acknowledged is stored")
        func stopWithManySeparators() async throws {
            let directory = try Paths.temporaryDirectory("stop-many")
            defer { try? FileManager.default.removeItem(at: directory) }
            let scenario = try String(contentsOf: Paths.scenarios.appendingPathComponent("normal-boy-10y.toml"), encoding: .utf8)
            var simulators: [(serial: String, state: String, process: SimulatorProcess)] = []
            var config = """
                format = 1
                [daemon]
                state_directory = "STATE"
                [api]
                listen = "127.0.0.1:0"

                """
            for index in 1...8 {
                // One serial number per separator, so each one's messages are told apart in the store.
                let serial = "1OPT8\(String(format: "%04d", index))"
                let path = directory.appendingPathComponent("scenario-\(index).toml")
                try scenario.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.hasPrefix("serial = ") ? "serial = \"\(serial)\"" : String($0) }
                    .joined(separator: "\n").write(to: path, atomically: true, encoding: .utf8)
                let state = directory.appendingPathComponent("sim-\(index).state").path
                // 120x: a message every ~40 ms from each, so a stop finds sessions under way.
                let sim = try SimulatorProcess(
                    arguments: ["run", path.path, "--tcp", "0", "--speed", "120", "--answer-timeout", "2", "--state", state],
                    workingDirectory: directory)
                let port = try #require(UInt16(try sim.waitForLine(prefix: "tcp: 127.0.0.1:")))
                simulators.append((serial, state, sim))
                config += "[[device]]\nname = \"optia-\(index)\"\ntransport = \"tcp\"\nhost = \"127.0.0.1\"\nport = \(port)\n"
            }
            let daemon = try DaemonProcess(config: config, directory: directory)
            // The API listens once the store is open and migrated: reading it before could race the daemon's migration.
            _ = try daemon.apiBase()
            let database = daemon.databasePath
            for simulator in simulators {
                try await eventuallyAsync("\(simulator.serial): messages stored; \(daemon.failureText)", timeout: .seconds(90)) {
                    try await StoredRun.count(database: database, serial: simulator.serial) >= 10
                }
            }
            try daemon.stop(timeout: .seconds(30))
            let log = daemon.stderrText
            #expect(log.contains("stopped"), "\(log.suffix(3000))")

            // The separators are told nothing more; their state files hold what they saw acknowledged.
            usleep(300_000)
            for simulator in simulators { simulator.process.killHard() }
            let store = try await RecordStore.open(path: database)
            for simulator in simulators {
                let acknowledged = try acknowledgedSequences(stateFile: simulator.state)
                let stored = try await store.messages(deviceSerial: simulator.serial).compactMap(\.sequence)
                #expect(!acknowledged.isEmpty, "\(simulator.serial): nothing acknowledged")
                #expect(Set(stored).count == stored.count, "\(simulator.serial): a message stored twice")
                let lost = acknowledged.subtracting(stored).sorted()
                #expect(lost.isEmpty, "\(simulator.serial): acknowledged but not stored: \(lost)")
            }
        }
    }
}

/// The sequence numbers an optia-sim state file records as acknowledged (`a <sequence>` lines).
private func acknowledgedSequences(stateFile: String) throws -> Set<UInt64> {
    let text = try String(contentsOfFile: stateFile, encoding: .utf8)
    return Set(text.split(separator: "\n").compactMap { line in
        line.hasPrefix("a ") ? UInt64(line.dropFirst(2)) : nil
    })
}

/// Sends from a socket of the test's own until the datagram socket at `path` has no
/// room left (its queue holds net.unix.max_dgram_qlen datagrams); returns how many fitted.
private func fillDatagramQueue(_ path: String) throws -> Int {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SimulatorFailure(description: "socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
    let filler = Array("X_TEST_FILLER=1".utf8)
    var sent = 0
    while sent < 100_000 {
        let n = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, filler, filler.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if n < 0 {
            guard errno == EAGAIN else { throw SimulatorFailure(description: "sendto \(path): errno \(errno)") }
            return sent
        }
        sent += 1
    }
    return sent
}
