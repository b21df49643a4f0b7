import Glibc
import Logging

/// Chooses where log records go and bootstraps swift-log once per process.
public enum LogSetup {
    public enum Destination: Sendable, Equatable {
        /// journald's native protocol, with structured fields.
        case journal
        /// Plain lines on standard error.
        case stderr
    }

    /// A file's device and inode, as in `JOURNAL_STREAM=<dev>:<ino>`.
    public struct FileIdentity: Sendable, Equatable {
        public var device: UInt64
        public var inode: UInt64
        public init(device: UInt64, inode: UInt64) {
            self.device = device
            self.inode = inode
        }
    }

    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// Bootstraps swift-log with the journal or the stderr handler; returns the choice.
    /// swift-log allows this once per process.
    @discardableResult
    public static func bootstrap(identifier: String, level: Logger.Level, environment: [String: String]) -> Destination {
        let destination = destination(environment: environment, stderrIdentity: stderrIdentity())
        LoggingSystem.bootstrap { label in
            switch destination {
            case .journal: JournalLogHandler(label: label, identifier: identifier, logLevel: level)
            case .stderr: StderrLogHandler(identifier: identifier, logLevel: level)
            }
        }
        return destination
    }

    /// The same, for a level spelled as swift-log spells it (DaemonConfiguration's
    /// `LogLevel`, which does not link swift-log); an unknown name means info.
    @discardableResult
    public static func bootstrap<Level: RawRepresentable>(
        identifier: String, level: Level, environment: [String: String]
    ) -> Destination where Level.RawValue == String {
        bootstrap(identifier: identifier, level: Logger.Level(rawValue: level.rawValue) ?? .info, environment: environment)
    }

    /// The journal when systemd connected our stderr to it (JOURNAL_STREAM names
    /// stderr's own device:inode: a redirected stderr inherits the variable but
    /// not the match, see systemd.exec(5)), or when we run as a unit
    /// (INVOCATION_ID) and journald's socket exists; otherwise stderr.
    public static func destination(
        environment: [String: String], stderrIdentity: FileIdentity?,
        journalSocketExists: Bool = LogSetup.journalSocketExists()
    ) -> Destination {
        if let stream = environment["JOURNAL_STREAM"], let stderrIdentity,
            let identity = parseJournalStream(stream), identity == stderrIdentity
        {
            return .journal
        }
        if let invocation = environment["INVOCATION_ID"], !invocation.isEmpty, journalSocketExists {
            return .journal
        }
        return .stderr
    }

    /// `"<dev>:<ino>"`, both decimal.
    public static func parseJournalStream(_ text: String) -> FileIdentity? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return nil }
        return FileIdentity(device: device, inode: inode)
    }

    /// fstat(2) of file descriptor 2; nil when it is closed.
    public static func stderrIdentity() -> FileIdentity? {
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    public static func journalSocketExists() -> Bool {
        var info = stat()
        return stat(journalSocketPath, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }
}
