import ApheresisDaemon
import ApheresisVersion
import ArgumentParser
import CentralStore
import CentralWeb
import DaemonConfiguration
import Foundation
import Logging
import SimulatorKit
import SystemdSupport
import TextFormats

@main
struct Apheresisd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apheresisd",
        abstract: "Receives run telemetry from apheresis cell separators, watches the limits, keeps every message.",
        discussion: """
            With no --config the daemon runs the demo: the bundled simulator over a \
            pseudo-terminal and a SQLite store in $XDG_STATE_HOME/apheresisd-demo (by default \
            ~/.local/state/apheresisd-demo). Under systemd it speaks sd_notify (READY, STATUS, \
            WATCHDOG, STOPPING) and logs to the journal.

            Exit status: 0 after a stop; 78 (EX_CONFIG) for a configuration or scenario that \
            cannot be used; 69 (EX_UNAVAILABLE) when the API cannot listen on its address (taken, \
            not on this machine, no permission); 1 for anything else.
            """,
        version: ApheresisVersion.string
    )

    @Option(help: ArgumentHelp("Configuration file (TOML).", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Check a configuration file, report every problem with its line, and exit.", valueName: "file"))
    var checkConfig: String?

    @Option(help: ArgumentHelp("With no --config: the scenario the demo's simulator plays.", valueName: "file"))
    var demoScenario: String?

    @Option(
        help: ArgumentHelp(
            "Where the API listens, overriding [api] listen: host:port (127.0.0.1:8470), or an absolute path for a Unix socket.",
            valueName: "address"))
    var apiListen: String?

    @Flag(
        help: ArgumentHelp(
            "Serve the central view instead of a workstation: the dashboard and read API over the [central] database of --config, on its [api] listen address; no separator, no local store (docs/central.md)."))
    var central = false

    func run() async throws {
        if let path = checkConfig {
            try checkConfiguration(path)
            return
        }
        let environment = ProcessInfo.processInfo.environment
        if central {
            try await runCentralView(environment: environment)
            return
        }
        var configuration: DaemonConfiguration
        if let config {
            do {
                configuration = try DaemonConfiguration.load(path: config, environment: environment)
            } catch {
                Self.refuse("\(error)")
            }
        } else {
            let cwd = FileManager.default.currentDirectoryPath
            let scenario = demoScenario ?? Self.defaultDemoScenario(cwd: cwd)
            configuration = DaemonConfiguration.demo(environment: environment, simulatorScenario: scenario)
        }
        if let apiListen {
            switch Self.parseListen(apiListen) {
            case .success(let listen): configuration.api.listen = listen
            case .failure(let problem): Self.refuse("--api-listen: \(problem) (or give an absolute socket path)")
            }
        }
        // A simulated separator whose scenario cannot be played would start, say READY and retry for
        // ever: refused here, as a bad configuration is.
        for device in configuration.devices {
            guard case .simulator(let scenario, _, _) = device.transport else { continue }
            if let problem = Self.scenarioProblem(scenario) {
                let origin = config == nil ? "the demo's scenario (--demo-scenario)" : "device \(device.name): scenario"
                Self.refuse("\(origin) \(scenario): \(problem)")
            }
        }
        _ = LogSetup.bootstrap(
            identifier: "apheresisd", level: Logger.Level(rawValue: configuration.logLevel.rawValue) ?? .info, environment: environment)
        let logger = Logger(label: "apheresisd")
        if config == nil {
            logger.notice("no --config: running the demo (simulator over a pty); its state (store, simulator state, pty link) is in \(configuration.stateDirectory)")
        }
        do {
            try await Daemon(configuration: configuration, environment: environment, logger: logger).run()
        } catch let refusal as DaemonStartRefused {
            logger.critical("\(refusal.message)")
            throw ExitCode(refusal.exitCode)
        }
    }

    /// `--central`: the central database's view; the workstation's parts do not start.
    func runCentralView(environment: [String: String]) async throws {
        guard let config else { Self.refuse("--central needs --config FILE with a [central] url (docs/central.md)") }
        let configuration: DaemonConfiguration
        do { configuration = try DaemonConfiguration.load(path: config, environment: environment) } catch { Self.refuse("\(error)") }
        guard let settings = configuration.central else {
            Self.refuse("--central: \(config) has no [central] section with the database's url (docs/central.md)")
        }
        var listen = configuration.api.listen
        if let apiListen {
            switch Self.parseListen(apiListen) {
            case .success(let l): listen = l
            case .failure(let problem): Self.refuse("--api-listen: \(problem)")
            }
        }
        guard case .tcp(let host, let port) = listen else {
            Self.refuse("--central serves on a TCP address: set [api] listen = \"host:port\" or --api-listen host:port")
        }
        let password: String?
        do { password = try settings.password(environment: environment) } catch { Self.refuse("\(error)") }
        _ = LogSetup.bootstrap(
            identifier: "apheresisd", level: Logger.Level(rawValue: configuration.logLevel.rawValue) ?? .info, environment: environment)
        let logger = Logger(label: "apheresisd-central")
        let endpoint = settings.endpoint(password: password)
        logger.notice("central view of \(endpoint.description)")
        let server = CentralWebServer(reader: CentralReader(endpoint: endpoint, logger: logger), host: host, port: port, logger: logger)
        try await server.run { bound in
            logger.notice("central view: api: listening on http://\(host.contains(":") ? "[\(host)]" : host):\(bound)")
        }
    }

    /// Says why on standard error and exits 78 (EX_CONFIG): systemd does not restart into the same
    /// mistake (RestartPreventExitStatus=78 in the unit).
    static func refuse(_ message: String) -> Never {
        FileHandle.standardError.write(Data("apheresisd: \(message)\n".utf8))
        Apheresisd.exit(withError: ExitCode(78))
    }

    /// `host:port` (IPv6 in brackets) or an absolute Unix socket path.
    static func parseListen(_ text: String) -> Result<APISettings.Listen, HostAndPort.Problem> {
        if text.hasPrefix("/") { return .success(.unixSocket(path: text)) }
        // The same rule as [api] listen.
        return HostAndPort.parse(text, ports: 0...65535).map { .tcp(host: $0.host, port: $0.port) }
    }

    /// Why a scenario file cannot be played (missing, unreadable, not a scenario), or nil.
    static func scenarioProblem(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return "no such file; give an existing scenario (the bundled ones are in simulator/scenarios)"
        }
        if isDirectory.boolValue { return "is a directory, not a scenario file" }
        guard FileManager.default.isReadableFile(atPath: path) else { return "cannot be read (permission denied)" }
        do {
            _ = try ScenarioLoader.load(path: path)
            return nil
        } catch {
            var place = error.line.map { "line \($0)" } ?? ""
            if let column = error.column, !place.isEmpty { place += ", column \(column)" }
            let key = error.keyPath.map { "\($0): " } ?? ""
            return "not a valid scenario" + (place.isEmpty ? "" : " (\(place))") + ": " + key + error.message
        }
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
