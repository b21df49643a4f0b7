import CSystemd
import Glibc
import Logging

/// Sends each record to journald with structured fields (sd_journal_sendv(3)):
/// MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE, CODE_LINE, CODE_FUNC,
/// LOGGER (the logger's label), and every metadata key as an upper-case field,
/// so `journalctl DEVICE_SERIAL=1OPT00417 PRIORITY=0..3` finds the records.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    /// The logger's label (swift-log), sent as LOGGER.
    public let label: String
    /// SYSLOG_IDENTIFIER: what `journalctl -t` and the short output show.
    public let identifier: String

    public init(
        label: String, identifier: String, logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = nil
    ) {
        self.label = label
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = mergedMetadata(handler: metadata, provider: metadataProvider, event: event.metadata)
        if let error = event.error { merged["error"] = .string(String(describing: error)) }
        let fields = Self.fields(
            level: event.level, message: event.message.description, identifier: identifier, label: label,
            file: event.file, function: event.function, line: event.line, metadata: merged)
        if !Self.deliver(fields, journalSocketExists: LogSetup.journalSocketExists()) {
            // No journald (or it refused): keep the record rather than lose it.
            StandardError.emit(
                StderrLogHandler.line(
                    time: WallClock.now(), level: event.level, identifier: identifier,
                    message: event.message.description, metadata: merged) + "\n")
        }
    }

    /// syslog(3) priorities: 0 emerg … 7 debug. swift-log has no emerg/alert,
    /// critical is the highest it has.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The record's fields in order, as (name, value).
    static func fields(
        level: Logger.Level, message: String, identifier: String, label: String,
        file: String, function: String, line: UInt, metadata: Logger.Metadata
    ) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("MESSAGE", message),
            ("PRIORITY", String(priority(level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
            ("LOGGER", label),
        ]
        for key in metadata.keys.sorted() {
            guard let name = JournalField.name(forMetadataKey: key) else { continue }
            fields.append((name, metadata[key]!.description))
        }
        return fields
    }

    /// Whether the record reached journald. sd_journal_sendv reports success
    /// when the socket is missing ("fail silently"), so its absence is checked first.
    static func deliver(_ fields: [(String, String)], journalSocketExists: Bool) -> Bool {
        journalSocketExists && send(fields) == 0
    }

    /// One `NAME=value` iovec per field, all pointing into one buffer that
    /// lives for the call. Returns sd_journal_sendv's result (0 or -errno).
    static func send(_ fields: [(String, String)]) -> Int32 {
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for (name, value) in fields {
            let start = buffer.count
            buffer.append(contentsOf: name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: value.utf8)
            ranges.append(start..<buffer.count)
        }
        return buffer.withUnsafeMutableBytes { bytes -> Int32 in
            let base = bytes.baseAddress!
            var vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
