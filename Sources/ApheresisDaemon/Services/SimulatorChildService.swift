import Foundation

#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle
import Synchronization

/// The pseudo-terminal the running simulator child said it made ("pty: /dev/pts/N" on its first
/// line), nil while none runs. The daemon opens only that one: a `--link` symlink left by an
/// earlier child may point at a terminal that another program now owns.
final class ReportedTerminal: Sendable {
    private let state = Mutex<String?>(nil)
    var path: String? { state.withLock { $0 } }
    func set(_ path: String?) { state.withLock { $0 = path } }
}

/// The demo's separator: the bundled optia-sim as a child process over a
/// pseudo-terminal, started again for a new run when one finishes. The daemon
/// reads it through an ordinary terminal link on the stable `--link` path.
final class SimulatorChildService: Service, Sendable {
    let executable: String
    let scenario: String
    let speed: Double
    let seed: UInt64
    let linkPath: String
    let statePath: String
    let reported: ReportedTerminal
    let logger: Logger

    init(
        executable: String, scenario: String, speed: Double, seed: UInt64, linkPath: String, statePath: String,
        reported: ReportedTerminal, logger: Logger
    ) {
        self.reported = reported
        self.executable = executable
        self.scenario = scenario
        self.speed = speed
        self.seed = seed
        self.linkPath = linkPath
        self.statePath = statePath
        self.logger = logger
    }

    /// optia-sim next to the running daemon (as `swift build` and an install
    /// put them), or $OPTIA_SIM.
    static func locateExecutable(environment: [String: String]) -> String {
        if let explicit = environment["OPTIA_SIM"] { return explicit }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("optia-sim").path
    }

    func run() async throws {
        var runNumber: UInt64 = 0
        try await withGracefulShutdownHandler {
            while !Task.isCancelledOrShuttingDown {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = [
                    "run", scenario, "--pty", "--link", linkPath, "--speed", String(speed),
                    "--seed", String(seed &+ runNumber), "--state", statePath, "--exit-with-parent",
                ]
                let output = Pipe()
                process.standardOutput = output
                let reported = self.reported
                // The line buffer, and whether this child still runs: a line read after its exit is stale.
                let pending = Mutex<(buffer: [UInt8], running: Bool)>(([], true))
                // Read on a GCD thread (FileHandle's handler), never on the Swift pool.
                output.fileHandleForReading.readabilityHandler = { handle in
                    let chunk = handle.availableData
                    if chunk.isEmpty {
                        handle.readabilityHandler = nil
                        return
                    }
                    pending.withLock { state in
                        guard state.running else { return }
                        state.buffer += chunk
                        while let end = state.buffer.firstIndex(of: 10) {
                            let line = String(decoding: state.buffer[..<end], as: UTF8.self)
                            state.buffer.removeSubrange(...end)
                            if line.hasPrefix("pty: ") { reported.set(String(line.dropFirst(5))) }
                        }
                    }
                }
                let exited = AsyncStream<Int32>.makeStream()
                process.terminationHandler = {
                    pending.withLock { state in
                        state.running = false
                        reported.set(nil)
                    }
                    exited.continuation.yield($0.terminationStatus)
                }
                do {
                    try await Self.launch(process)
                } catch {
                    logger.error("cannot start the simulator \(executable): \(error)")
                    throw error
                }
                logger.notice("simulator started: \(scenario) at \(speed)x on \(linkPath)")
                let status = await withTaskCancellationOrGracefulShutdownHandler {
                    await exited.stream.first { _ in true } ?? -1
                } onCancelOrGracefulShutdown: {
                    // SIGTERM ends it at once (optia-sim keeps the default action); its state file
                    // makes even a kill harmless, so a child that lingers is not waited for long.
                    process.terminate()
                    let pid = process.processIdentifier
                    Task {
                        try? await Task.sleep(for: .milliseconds(500))
                        if process.isRunning { kill(pid, SIGKILL) }
                    }
                }
                if Task.isCancelledOrShuttingDown { break }
                logger.notice("simulator finished its run (status \(status)); next run in 5 s")
                runNumber += 1
                // A stop during the pause between runs ends it at once.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            }
        } onGracefulShutdown: {}
    }
}

extension SimulatorChildService {
    /// Starts `process` from a thread of its own with no signal blocked. posix_spawn(3) hands the
    /// calling thread's signal mask to the child, and the threads of the Swift pool block nearly
    /// every signal: a child started from one ignored SIGTERM, and every stop waited for the
    /// SIGKILL that followed 2 s later (one child after another: 2 minutes with 64).
    static func launch(_ process: Process) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread {
                var none = sigset_t()
                sigemptyset(&none)
                pthread_sigmask(SIG_SETMASK, &none, nil)
                do {
                    try process.run()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
