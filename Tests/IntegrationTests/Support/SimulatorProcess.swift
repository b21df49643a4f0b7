import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Paths of the package under test.
enum Paths {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let scenarios = packageRoot.appendingPathComponent("simulator/scenarios")
    static let captures = packageRoot.appendingPathComponent("simulator/captures")

    /// The optia-sim built beside this test bundle (swift build puts every
    /// product of the package in one directory), or $OPTIA_SIM.
    static var simulator: URL {
        if let explicit = ProcessInfo.processInfo.environment["OPTIA_SIM"] { return URL(fileURLWithPath: explicit) }
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return me.deletingLastPathComponent().appendingPathComponent("optia-sim")
    }

    static func scenarioFiles() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: scenarios.path)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.sorted()
    }

    /// The scenarios the TCP suites play. Every scenario runs over the pseudo-terminal into the
    /// daemon; over TCP, a pulled cable (the connection closed and made again), lost ACKs (resends
    /// through TCP's buffering) and one normal run: framing faults and physiology do not depend on
    /// the byte stream, and the pty suites and the core replays check them. Kept short for CI's
    /// 40 minutes; APHERESISD_ALL_SCENARIOS_OVER_TCP=1 plays every scenario.
    static func transportScenarioFiles() -> [String] {
        let all = scenarioFiles()
        if ProcessInfo.processInfo.environment["APHERESISD_ALL_SCENARIOS_OVER_TCP"] == "1" { return all }
        return all.filter(["fault-cable-pull.toml", "fault-lost-ack.toml", "normal-boy-10y.toml"].contains)
    }

    /// The scenarios the simulator's own pty suite plays into the reference host (the daemon's pty
    /// suite plays every one): those whose faults act on the wire, and one normal run.
    static func wireScenarioFiles() -> [String] {
        let all = scenarioFiles()
        if ProcessInfo.processInfo.environment["APHERESISD_ALL_SCENARIOS_OVER_TCP"] == "1" { return all }
        return all.filter(["fault-cable-pull.toml", "fault-checksum.toml", "fault-lost-ack.toml", "fault-garbage.toml",
            "framing-record-per-frame.toml", "normal-boy-10y.toml"].contains)
    }

    static func temporaryDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("apheresisd-it-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct SimulatorFailure: Error, CustomStringConvertible {
    var description: String
}

/// `optia-sim` as a real child process. Its stdout carries machine-readable
/// lines (`pty: ...`, `tcp: ...`, `run: ...`, `done: ...`); stderr goes to a
/// file kept for failure messages.
final class SimulatorProcess {
    let process = Process()
    private let stdout = Pipe()
    private var pending = Data()
    private(set) var lines: [String] = []
    let stderrPath: URL

    init(arguments: [String], workingDirectory: URL) throws {
        stderrPath = workingDirectory.appendingPathComponent("optia-sim-\(UUID().uuidString.prefix(6)).stderr")
        _ = FileManager.default.createFile(atPath: stderrPath.path, contents: nil)
        process.executableURL = Paths.simulator
        process.arguments = arguments
        process.currentDirectoryURL = workingDirectory
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrPath)
        guard FileManager.default.isExecutableFile(atPath: Paths.simulator.path) else {
            throw SimulatorFailure(description: "optia-sim not found at \(Paths.simulator.path): run `swift build` first")
        }
        try process.run()
    }

    /// A test that fails half-way leaves no simulator behind.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var stderrText: String { (try? String(contentsOf: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for a stdout line starting with `prefix` and returns the rest.
    func waitForLine(prefix: String, timeout: Duration = .seconds(30)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let line = lines.first(where: { $0.hasPrefix(prefix) }) { return String(line.dropFirst(prefix.count)) }
            guard ContinuousClock.now < deadline else {
                throw SimulatorFailure(description: "no '\(prefix)' line from optia-sim within \(timeout); stdout: \(lines); stderr: \(stderrText)")
            }
            readAvailable(waitMilliseconds: 50)
            if !process.isRunning {
                readAvailable(waitMilliseconds: 0)
                if let line = lines.first(where: { $0.hasPrefix(prefix) }) { return String(line.dropFirst(prefix.count)) }
                throw SimulatorFailure(description: "optia-sim exited (status \(process.terminationStatus)) before '\(prefix)'; stdout: \(lines); stderr: \(stderrText)")
            }
        }
    }

    private func readAvailable(waitMilliseconds: Int32) {
        let fd = stdout.fileHandleForReading.fileDescriptor
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, waitMilliseconds) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return }
        pending.append(contentsOf: buffer[0..<n])
        while let newline = pending.firstIndex(of: 0x0A) {
            lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
            pending.removeSubrange(pending.startIndex...newline)
        }
    }

    /// Waits for the simulator to finish its run and exit 0.
    func waitForExit(timeout: Duration = .seconds(180)) throws {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw SimulatorFailure(description: "optia-sim still running after \(timeout); stderr: \(stderrText.suffix(3000))")
            }
            readAvailable(waitMilliseconds: 50)
        }
        process.waitUntilExit()
        readAvailable(waitMilliseconds: 0)
        readAvailable(waitMilliseconds: 0)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw SimulatorFailure(description: "optia-sim failed (status \(process.terminationStatus)); stderr: \(stderrText.suffix(3000))")
        }
    }

    /// kill -9: the device loses power.
    func killHard() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// Runs a blocking loop on a thread of its own, away from the test's pool.
final class BackgroundThread: @unchecked Sendable {
    private let thread: Thread
    private let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        let done = finished
        thread = Thread {
            body()
            done.signal()
        }
        thread.start()
    }

    func join() { finished.wait() }
}
