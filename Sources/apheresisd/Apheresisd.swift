import ApheresisDaemon
import ArgumentParser
import DaemonConfiguration
import Foundation
import Logging
import SystemdSupport

@main
struct Apheresisd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apheresisd",
        abstract: "Receives run telemetry from apheresis cell separators, watches the limits, keeps every message.",
        discussion: """
            With no --config the daemon runs the demo: the bundled simulator over a \
            pseudo-terminal and a SQLite store in ./apheresisd-state. Under systemd it \
            speaks sd_notify (READY, STATUS, WATCHDOG, STOPPING) and logs to the journal.
            """
    )

    @Option(help: ArgumentHelp("Configuration file (TOML).", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Check a configuration file, report every problem with its line, and exit.", valueName: "file"))
    var checkConfig: String?

    @Option(help: ArgumentHelp("With no --config: the scenario the demo's simulator plays.", valueName: "file"))
    var demoScenario: String?

    func run() async throws {
        if let path = checkConfig {
            try checkConfiguration(path)
            return
        }
        let environment = ProcessInfo.processInfo.environment
        let configuration: DaemonConfiguration
        if let config {
            do {
                configuration = try DaemonConfiguration.load(path: config, environment: environment)
            } catch {
                FileHandle.standardError.write(Data("apheresisd: \(error)\n".utf8))
                throw ExitCode(78)  // EX_CONFIG: systemd does not restart into the same mistake
            }
        } else {
            let cwd = FileManager.default.currentDirectoryPath
            let scenario = demoScenario ?? Self.defaultDemoScenario(cwd: cwd)
            configuration = DaemonConfiguration.demo(workingDirectory: cwd, simulatorScenario: scenario)
        }
        _ = LogSetup.bootstrap(
            identifier: "apheresisd", level: Logger.Level(rawValue: configuration.logLevel.rawValue) ?? .info, environment: environment)
        let logger = Logger(label: "apheresisd")
        if config == nil {
            logger.notice("no --config: running the demo (simulator over a pty, store in \(configuration.stateDirectory))")
        }
        try await Daemon(configuration: configuration, environment: environment, logger: logger).run()
    }

    static func defaultDemoScenario(cwd: String) -> String {
        let candidates = [
            "\(cwd)/simulator/scenarios/normal-boy-10y.toml",
            "/usr/local/share/apheresisd/scenarios/normal-boy-10y.toml",
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }

    func checkConfiguration(_ path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            print("\(path): cannot read the file")
            throw ExitCode(78)
        }
        let problems = DaemonConfiguration.check(text: String(decoding: data, as: UTF8.self), file: path)
        if problems.isEmpty {
            print("\(path): no problems found")
            return
        }
        for problem in problems { print(problem.description) }
        print("\(path): \(problems.count) problem(s)")
        throw ExitCode(78)
    }
}
