import ArgumentParser
import DaemonConfiguration
import Foundation
import ProductWorkflow
import RecordStore

@main
struct Apheresisctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apheresisctl",
        abstract: "The cell lab's and the unit's tool: users, runs, products, release, labels, audit.",
        discussion: """
            Works on the daemon's record store (SQLite, shared safely while apheresisd runs). \
            The store and the product settings come from --config (default \
            /etc/apheresisd/apheresisd.toml when it exists), else from the demo in the current \
            directory (./apheresisd-state), as `make demo` runs it.

            Actions that change records ask for the acting user's password: at the terminal \
            without echo, or one line per password on standard input when it is not a terminal.
            """,
        subcommands: [
            StatusCommand.self, WatchCommand.self, AlarmsCommand.self, AckCommand.self, UserCommand.self, RunsCommand.self, ExportCommand.self,
            ProductCommand.self, AuditCommand.self,
        ]
    )
}

/// Where the store is and what the product settings are.
struct StoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Configuration file (TOML), as apheresisd's.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Record store file, overriding the configuration's.", valueName: "file"))
    var database: String?

    static let systemConfiguration = "/etc/apheresisd/apheresisd.toml"

    func configuration() throws -> DaemonConfiguration {
        let path = config ?? (FileManager.default.fileExists(atPath: Self.systemConfiguration) ? Self.systemConfiguration : nil)
        var configuration: DaemonConfiguration
        if let path {
            do {
                configuration = try DaemonConfiguration.load(path: path, environment: ProcessInfo.processInfo.environment)
            } catch {
                Console.error("\(error)")
                throw ExitCode(78)
            }
        } else {
            configuration = DaemonConfiguration.demo(
                workingDirectory: FileManager.default.currentDirectoryPath, simulatorScenario: "")
        }
        if let database { configuration.databasePath = database }
        return configuration
    }

    /// Opens an existing store; never creates one (a typo in a path must not start an empty record).
    func open() async throws -> (RecordStore, DaemonConfiguration) {
        let configuration = try configuration()
        let path = configuration.databasePath
        guard FileManager.default.fileExists(atPath: path) else {
            Console.error("no record store at \(path); start apheresisd with this configuration first, or give --database")
            throw ExitCode(1)
        }
        do {
            return (try await RecordStore.open(path: path), configuration)
        } catch {
            Console.error("\(error)")
            throw ExitCode(1)
        }
    }

    func workflow() async throws -> ProductWorkflow {
        let (store, configuration) = try await open()
        return ProductWorkflow(store: store, settings: configuration.product)
    }
}

/// Runs a workflow step; a refusal becomes one line on stderr and exit status 1.
func refusing<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ProductWorkflowError {
        Console.error("refused: \(error.description)")
        throw ExitCode(1)
    }
}
