import ApheresisCore
import Glibc
import Quantities
import SeparatorProtocol
import TOMLKit

extension DaemonConfiguration {
    /// Reads and checks the file; any problem at all fails the load, with every
    /// problem listed (a half-understood configuration must not watch patients).
    /// Relative paths: `state_directory` against the working directory, a
    /// simulator `scenario` against the configuration file's directory.
    public static func load(path: String, environment: [String: String]) throws(ConfigurationError) -> DaemonConfiguration {
        let text = try readText(path)
        let evaluation = Evaluation(
            text: text, file: path, environment: environment, workingDirectory: currentDirectory(),
            configurationDirectory: PathText.directory(of: path))
        guard evaluation.problems.isEmpty, let configuration = evaluation.configuration else {
            throw .invalid(path: path, problems: evaluation.problems)
        }
        return configuration
    }

    /// Every problem in `text`, in line order; empty when the daemon would start with it.
    /// `file` only labels the problems.
    public static func check(text: String, file: String) -> [ConfigurationProblem] {
        Evaluation(text: text, file: file, environment: [:], workingDirectory: "/", configurationDirectory: "/").problems
    }

    static func readText(_ path: String) throws(ConfigurationError) -> String {
        guard let handle = fopen(path, "rb") else {
            throw .unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
            if n < chunk.count {
                if ferror(handle) != 0 { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
                break
            }
            if bytes.count > 1 << 20 { throw .unreadable(path: path, reason: "larger than 1 MiB; not a configuration file") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unreadable(path: path, reason: "not UTF-8 text")
        }
        return text
    }

    static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// One pass over a document: the configuration (when it is sound) and the problems.
struct Evaluation {
    private(set) var configuration: DaemonConfiguration?
    private(set) var problems: [ConfigurationProblem]

    static let rootKeys = ["format", "daemon", "device", "profile", "product", "labels", "api", "audit", "hl7", "central"]
    static let daemonKeys = ["state_directory", "database", "log_level", "store_reserve_mib", "open_run_timeout_min"]

    init(text: String, file: String, environment: [String: String], workingDirectory: String, configurationDirectory: String) {
        let checker = Checker(file: file, text: text)
        if let problem = TOMLGuard.problem(in: text, file: file) {
            checker.report(problem)
            problems = checker.sortedProblems()
            return
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            // TOMLKit stops at the first syntax error: nothing after it can be checked.
            checker.report(
                ConfigurationProblem(
                    kind: .syntax, file: file, line: error.source.begin.line, column: error.source.begin.column,
                    keyPath: "", message: "not valid TOML: \(error.description)"))
            problems = checker.sortedProblems()
            return
        } catch {
            checker.report(.syntax, "", "not valid TOML: \(error)")
            problems = checker.sortedProblems()
            return
        }

        _ = checker.unknownKeys(in: root, at: "", known: Self.rootKeys, what: "the file (top level)")
        Self.checkFormat(root, checker)

        // [daemon]
        var stateDirectory = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
            ?? DaemonConfiguration.defaultStateDirectoryName
        var database = DaemonConfiguration.defaultDatabaseName
        var logLevel = LogLevel.info
        var storeReserveBytes = DaemonConfiguration.defaultStoreReserveBytes
        var openRunTimeout = DaemonConfiguration.defaultOpenRunTimeout
        if let value = root["daemon"]?.tomlValue {
            if let daemon = value.table {
                _ = checker.unknownKeys(in: daemon, at: "daemon", known: Self.daemonKeys, what: "[daemon]")
                if let s = checker.text(daemon, "state_directory", at: "daemon") {
                    if s.isEmpty { checker.report(.invalidValue, "daemon.state_directory", "must not be empty") } else { stateDirectory = s }
                }
                if let s = checker.text(daemon, "database", at: "daemon") {
                    if s.isEmpty || s.hasSuffix("/") {
                        checker.report(.invalidValue, "daemon.database", "must name a file, such as \"apheresisd.sqlite\"")
                    } else {
                        database = s
                    }
                }
                if let mib = checker.number(daemon, "store_reserve_mib", at: "daemon") {
                    // Free space kept for SQLite's checkpoints and for telling the staff: below it, writes are refused.
                    if (1...4096).contains(mib) {
                        storeReserveBytes = UInt64(mib * 1_048_576)
                    } else {
                        checker.report(
                            .invalidValue, "daemon.store_reserve_mib",
                            "\(mib) MiB is outside 1...4096: the store needs some free space to checkpoint and to record that it is full")
                    }
                }
                if let minutes = checker.number(daemon, "open_run_timeout_min", at: "daemon") {
                    if (10...2880).contains(minutes) {
                        openRunTimeout = .milliseconds(Int64(minutes * 60_000))
                    } else {
                        checker.report(
                            .invalidValue, "daemon.open_run_timeout_min",
                            "\(minutes) min is outside 10...2880: an open run without any message for this long is closed")
                    }
                }
                if let s = checker.text(daemon, "log_level", at: "daemon") {
                    if let level = LogLevel(rawValue: s.lowercased()) {
                        logLevel = level
                    } else {
                        let names = LogLevel.allCases.map(\.rawValue)
                        var message = "\"\(s)\" is not a log level; use one of \(names.joined(separator: ", "))"
                        if let near = Checker.nearest(to: s, among: names) { message += " (did you mean \(near)?)" }
                        checker.report(.invalidValue, "daemon.log_level", message)
                    }
                }
            } else {
                checker.wrongType("daemon", expected: "a table, written [daemon] on a line of its own", found: value)
            }
        }
        stateDirectory = PathText.join(workingDirectory, stateDirectory)

        let devices = DeviceReader(checker: checker, configurationDirectory: configurationDirectory).read(root["device"]?.tomlValue)
        let profiles = ProfileReader(checker: checker).read(root["profile"]?.tomlValue)
        let product = ProductSettingsReader(checker: checker).read(
            product: root["product"]?.tomlValue, labels: root["labels"]?.tomlValue)
        let api = APISettingsReader(checker: checker).read(root["api"]?.tomlValue)
        let audit = AuditSettingsReader(checker: checker).read(root["audit"]?.tomlValue)
        let hl7 = HL7SettingsReader(checker: checker).read(root["hl7"]?.tomlValue)
        let central = CentralSettingsReader(checker: checker).read(root["central"]?.tomlValue)

        problems = checker.sortedProblems()
        if problems.isEmpty {
            configuration = DaemonConfiguration(
                stateDirectory: stateDirectory, databasePath: PathText.join(stateDirectory, database),
                logLevel: logLevel, devices: devices,
                profiles: profiles.isEmpty ? DaemonConfiguration.defaultProfiles : profiles, product: product, api: api,
                storeReserveBytes: storeReserveBytes, openRunTimeout: openRunTimeout, audit: audit, hl7: hl7, central: central)
        }
    }

    private static func checkFormat(_ root: TOMLTable, _ checker: Checker) {
        guard let value = root["format"]?.tomlValue else {
            checker.report(
                .missingFormat, "format",
                "the file does not say its format; add the line format = \(DaemonConfiguration.supportedFormat) at the top")
            return
        }
        guard value.int != nil || value.double != nil else {
            checker.wrongType("format", expected: "the number \(DaemonConfiguration.supportedFormat)", found: value)
            return
        }
        guard let format = checker.integer(root, "format", at: "") else { return }
        if format != DaemonConfiguration.supportedFormat {
            checker.report(
                .unsupportedFormat, "format",
                "format \(format) is not supported by this apheresisd, which reads format \(DaemonConfiguration.supportedFormat)")
        }
    }
}

/// Array-of-tables sections (`[[device]]`, `[[profile]]`): the tables, or a
/// problem when the section was written as a single `[device]` table.
func arrayOfTables(_ value: TOMLValue?, name: String, checker: Checker) -> [(index: Int, table: TOMLTable)] {
    guard let value else { return [] }
    guard let array = value.array else {
        checker.wrongType(name, expected: "one [[\(name)]] block per \(name) (double brackets)", found: value)
        return []
    }
    var tables: [(index: Int, table: TOMLTable)] = []
    for (i, element) in array.enumerated() {
        if let table = element.tomlValue.table {
            tables.append((i + 1, table))
        } else {
            checker.wrongType("\(name)[\(i + 1)]", expected: "a [[\(name)]] block", found: element.tomlValue)
        }
    }
    return tables
}
