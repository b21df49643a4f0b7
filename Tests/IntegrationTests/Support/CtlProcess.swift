import Foundation
import Testing

/// `apheresisctl` as a real child process: arguments, passwords on stdin (one per line, as a
/// script would give them), and its exit status, stdout and stderr.
struct CtlResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr)" }
}

enum Ctl {
    static var executable: URL { Paths.simulator.deletingLastPathComponent().appendingPathComponent("apheresisctl") }

    /// Runs to completion (at most `timeout`); stdout and stderr go through files, so a chatty
    /// child can never block on a full pipe.
    @discardableResult
    static func run(
        _ arguments: [String], stdin: [String] = [], in directory: URL, timeout: Duration = .seconds(60),
        environment extra: [String: String] = [:]
    ) throws -> CtlResult {
        let process = try start(arguments, stdin: stdin, in: directory, environment: extra)
        let deadline = ContinuousClock.now + timeout
        while process.process.isRunning {
            if ContinuousClock.now > deadline {
                process.process.terminate()
                Issue.record("apheresisctl \(arguments.joined(separator: " ")) did not finish within \(timeout)")
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.process.waitUntilExit()
        return process.result()
    }

    final class Running {
        let process = Process()
        let out: URL
        let err: URL
        init(out: URL, err: URL) {
            self.out = out
            self.err = err
        }
        func result() -> CtlResult {
            CtlResult(
                status: process.terminationStatus,
                stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        }
    }

    /// `extra`: variables added to the child's environment (e.g. CREDENTIALS_DIRECTORY).
    static func start(_ arguments: [String], stdin: [String] = [], in directory: URL, environment extra: [String: String] = [:]) throws -> Running {
        let tag = UUID().uuidString.prefix(8)
        let running = Running(
            out: directory.appendingPathComponent("ctl-\(tag).out"), err: directory.appendingPathComponent("ctl-\(tag).err"))
        _ = FileManager.default.createFile(atPath: running.out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: running.err.path, contents: nil)
        let p = running.process
        p.executableURL = executable
        p.arguments = arguments
        p.currentDirectoryURL = directory
        p.standardOutput = try FileHandle(forWritingTo: running.out)
        p.standardError = try FileHandle(forWritingTo: running.err)
        let input = Pipe()
        p.standardInput = input
        var environment = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID", "CREDENTIALS_DIRECTORY"] {
            environment.removeValue(forKey: key)
        }
        environment.merge(extra) { _, new in new }
        p.environment = environment
        try p.run()
        let text = stdin.map { $0 + "\n" }.joined()
        input.fileHandleForWriting.write(Data(text.utf8))
        try? input.fileHandleForWriting.close()
        return running
    }
}
