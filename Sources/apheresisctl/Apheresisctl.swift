import ApheresisVersion
import ArgumentParser
import DaemonConfiguration
import Foundation
import Logging
import ProductWorkflow
import RecordStore
import SystemdSupport

@main
struct Apheresisctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apheresisctl",
        abstract: "The cell lab's and the unit's tool: users, runs, products, release, labels, audit.",
        discussion: """
            Works on the daemon's record store (SQLite, shared safely while apheresisd runs), \
            as the service user: it needs the audit key and writes the audit anchor as apheresisd \
            does (sudo -u apheresisd apheresisctl ..., or systemd-run with \
            --property=LoadCredential=audit-key:/etc/apheresisd/audit.key; docs/service.md). \
            The store and the product settings come from --config (default \
            /etc/apheresisd/apheresisd.toml when it exists), else from the demo's per-user state \
            directory ($XDG_STATE_HOME/apheresisd-demo, by default ~/.local/state/apheresisd-demo), \
            as `make demo` runs it.

            Actions that change records ask for the acting user's password: at the terminal \
            without echo, or one line per password on standard input when it is not a terminal.
            """,
        version: ApheresisVersion.string,
        subcommands: [
            StatusCommand.self, WatchCommand.self, AlarmsCommand.self, AckCommand.self, UserCommand.self, RunsCommand.self, ExportCommand.self,
            ProductCommand.self, AuditCommand.self, BackupCommand.self, HL7Command.self, CentralCommand.self,
        ]
    )
}

/// Where the store is and what the product settings are.
struct StoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Configuration file (TOML), as apheresisd's.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Record store file, overriding the configuration's.", valueName: "file"))
    var database: String?

    @Option(
        help: ArgumentHelp(
            "The audit key file (owner-only, at least 32 bytes). Default: the systemd credential audit-key "
                + "($CREDENTIALS_DIRECTORY), else the configuration's [audit] key_file, else the demo's key beside the store.",
            valueName: "file"))
    var auditKey: String?

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
            configuration = DaemonConfiguration.demo(environment: ProcessInfo.processInfo.environment, simulatorScenario: "")
        }
        if let database { configuration.databasePath = database }
        return configuration
    }

    /// Opens an existing store; never creates one (a typo in a path must not start an empty record).
    /// `verifyOnly`: to read and verify (audit verify, audit log): a store whose trail shows
    /// tampering is opened anyway, for `verifyAudit` to report, and nothing is written.
    func open(verifyOnly: Bool = false) async throws -> (RecordStore, DaemonConfiguration) {
        let configuration = try configuration()
        let path = configuration.databasePath
        guard FileManager.default.fileExists(atPath: path) else {
            Console.error("no record store at \(path); start apheresisd with this configuration first, or give --database")
            throw ExitCode(1)
        }
        // The same key and anchor as apheresisd's: run as the service user (docs/service.md).
        let audit = AuditOptions(
            key: AuditKeySource.resolve(
                keyFileOption: auditKey, configuredKeyFile: configuration.audit.keyFile,
                environment: ProcessInfo.processInfo.environment),
            anchorPath: configuration.audit.anchorFile, logger: Self.journalLogger(),
            setAppendOnlyAttribute: configuration.audit.appendOnlyAttribute, verifyOnly: verifyOnly)
        do {
            return (try await RecordStore.open(path: path, audit: audit), configuration)
        } catch let error as AuditAnchorError {
            Console.error("\(error)")
            // An anchor file that cannot be made is configuration (78, as apheresisd); tampering is
            // what `audit verify` reports as BROKEN (2).
            throw ExitCode(error.kind == .anchorNotWritable ? 78 : 2)
        } catch {
            Console.error("\(error)")
            throw ExitCode(1)
        }
    }

    /// The heads of the entries apheresisctl appends (lab values, release, prints) go to the journal
    /// as apheresisd's do (SYSLOG_IDENTIFIER=apheresisctl, fields AUDIT_SEQ, AUDIT_HASH, AUDIT_STORE...):
    /// only when journald's socket is there; otherwise the anchor file alone keeps them.
    static func journalLogger() -> Logger? {
        guard LogSetup.journalSocketExists() else { return nil }
        return Logger(label: "apheresisctl") { label in
            JournalLogHandler(label: label, identifier: "apheresisctl", logLevel: .notice)
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
