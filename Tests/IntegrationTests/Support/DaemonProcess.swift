import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `apheresisd` as a real child process with its own state directory and
/// configuration file; stderr kept in a file for failure messages.
final class DaemonProcess {
    let process = Process()
    let directory: URL
    let configPath: URL
    let stderrPath: URL
    var databasePath: String { directory.appendingPathComponent("state/apheresisd.sqlite").path }

    static var executable: URL { Paths.simulator.deletingLastPathComponent().appendingPathComponent("apheresisd") }

    /// Writes `config` (TOML; `STATE` is replaced by the state directory) and starts the daemon.
    /// `arguments`: more command-line arguments (`--central`).
    init(config: String, directory: URL, environment: [String: String] = [:], arguments: [String] = []) throws {
        self.directory = directory
        configPath = directory.appendingPathComponent(arguments.contains("--central") ? "central.toml" : "apheresisd.toml")
        let state = directory.appendingPathComponent("state").path
        try config.replacingOccurrences(of: "STATE", with: state).write(to: configPath, atomically: true, encoding: .utf8)
        stderrPath = directory.appendingPathComponent("apheresisd-\(UUID().uuidString.prefix(6)).stderr")
        _ = FileManager.default.createFile(atPath: stderrPath.path, contents: nil)
        guard FileManager.default.isExecutableFile(atPath: Self.executable.path) else {
            throw SimulatorFailure(description: "apheresisd not found at \(Self.executable.path): run `swift build` first")
        }
        process.executableURL = Self.executable
        process.arguments = ["--config", configPath.path] + arguments
        var env = ProcessInfo.processInfo.environment
        // A test runner that is itself a systemd service passes its own
        // NOTIFY_SOCKET, WATCHDOG_* and journal variables down: the daemon under
        // test must see only what the test gives it (sd_watchdog_enabled, for
        // one, ignores WATCHDOG_USEC when WATCHDOG_PID names another process).
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID", "LISTEN_FDS", "LISTEN_PID"] {
            env[key] = nil
        }
        env["OPTIA_SIM"] = Paths.simulator.path
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: stderrPath)
        try process.run()
    }

    /// A test that fails half-way leaves no daemon behind.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var stderrText: String { (try? String(contentsOf: stderrPath, encoding: .utf8)) ?? "" }

    /// For failure messages: any fatal error line in full, then the end of stderr.
    var failureText: String {
        let text = stderrText
        let fatal = text.split(separator: "\n").filter {
            $0.contains("Fatal") || $0.contains("fatal") || $0.contains("crashed") || $0.contains("Simultaneous")
                || $0.contains("failed:") || $0.contains("Thread ")
        }.prefix(12)
        return (fatal.map(String.init) + [String(text.suffix(2000))]).joined(separator: "\n")
    }

    /// SIGTERM and wait: the daemon must exit 0.
    func stop(timeout: Duration = .seconds(30)) throws {
        guard process.isRunning else {
            throw SimulatorFailure(description: "apheresisd had already exited (status \(process.terminationStatus)): \(failureText)")
        }
        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            throw SimulatorFailure(description: "apheresisd did not stop within \(timeout) of SIGTERM: \(failureText)")
        }
        guard process.terminationStatus == 0 else {
            throw SimulatorFailure(description: "apheresisd exited with status \(process.terminationStatus): \(failureText)")
        }
    }

    func killHard() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Waits until `condition` holds, polling; fails with `message` after `timeout`.
func eventually(_ message: @autoclosure () -> String, timeout: Duration = .seconds(60), _ condition: () throws -> Bool) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return }
        usleep(50_000)
    }
    throw SimulatorFailure(description: "timed out after \(timeout): \(message())")
}

/// A real systemd notification socket: an AF_UNIX datagram socket the daemon
/// finds through NOTIFY_SOCKET, as systemd's own would be.
final class NotifyListener {
    let path: String
    private let fd: Int32
    private(set) var datagrams: [String] = []

    init(directory: URL) throws {
        path = directory.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SimulatorFailure(description: "socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw SimulatorFailure(description: "bind \(path): \(errno)") }
    }

    deinit { close(fd) }

    /// Reads every datagram that arrives within `wait`.
    func drain(wait: Duration) {
        let deadline = ContinuousClock.now + wait
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { datagrams.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
        }
    }

    /// The `NAME=value` assignments received, in order.
    var assignments: [String] { datagrams.flatMap { $0.split(separator: "\n").map(String.init) } }
}

/// The processes whose parent is `pid`, with their command names, from /proc.
func childProcesses(of pid: Int32) -> [(pid: Int32, name: String)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> (Int32, String)? in
        guard let child = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return nil }
        // "pid (comm) state ppid ...": the name may hold spaces and parentheses, so split after the last ')'.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, Int32(fields[1]) == pid else { return nil }
        return (child, String(stat[stat.index(after: open)..<close]))
    }
}

/// True when the process has exited: gone, or a zombie its new parent has not reaped yet.
func processHasExited(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return true }
    return stat[stat.index(after: close)...].split(separator: " ").first == "Z"
}

extension DaemonProcess {
    /// The API's base URL (`http://127.0.0.1:PORT`) from the daemon's "api: listening on" line. Only
    /// complete lines count: a line still being written could end in half a port number.
    func apiBase(timeout: Duration = .seconds(30)) throws -> String {
        var base = ""
        try eventually("the API says where it listens: \(failureText)", timeout: timeout) {
            let lines = stderrText.components(separatedBy: "\n").dropLast()
            guard let line = lines.first(where: { $0.contains("api: listening on http://") }), let range = line.range(of: "http://")
            else { return false }
            base = String(line[range.lowerBound...].prefix { !$0.isWhitespace })
            return true
        }
        return base
    }
}

extension DaemonProcess {
    /// The daemon with one simulated separator playing the ratio-drift scenario at 60x (an AC_RATIO
    /// warning about 26 s in) and the API on a port the kernel picks.
    static func ratioDrift(in directory: URL) throws -> DaemonProcess {
        try simulated(scenario: Paths.scenarios.appendingPathComponent("fault-ratio-drift.toml").path, speed: 60, in: directory)
    }

    /// The daemon with one simulated separator (`optia-sim`) playing `scenario`, the API on a port
    /// the kernel picks; `extra` is more TOML (profiles, for one).
    static func simulated(
        scenario: String, speed: Int, extra: String = "", in directory: URL, environment: [String: String] = [:]
    ) throws -> DaemonProcess {
        try DaemonProcess(
            config: """
                format = 1
                [daemon]
                state_directory = "STATE"
                [[device]]
                name = "optia-sim"
                transport = "simulator"
                scenario = "\(scenario)"
                speed = \(speed)
                [api]
                listen = "127.0.0.1:0"
                \(extra)
                """, directory: directory, environment: environment)
    }
}
