import Logging

import Glibc

/// One plain line per record on standard error, for runs outside systemd:
/// `2026-11-25T10:15:00.123Z warning apheresisd: message key=value ...`.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    /// The program name printed before the message.
    public let identifier: String

    public init(identifier: String, logLevel: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil) {
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = mergedMetadata(handler: metadata, provider: metadataProvider, event: event.metadata)
        if let error = event.error { fields["error"] = .string(String(describing: error)) }
        let line = Self.line(
            time: WallClock.now(), level: event.level, identifier: identifier,
            message: event.message.description, metadata: fields)
        StandardError.emit(line + "\n")
    }

    /// The text of one record, without the newline.
    static func line(
        time: WallClock.Instant, level: Logger.Level, identifier: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var line = "\(time.iso8601) \(level.rawValue) \(identifier): \(escapeNewlines(message))"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(quoted(metadata[key]!.description))"
        }
        return line
    }

    /// Keeps the record on one line so `grep` and log shippers see whole records.
    static func escapeNewlines(_ text: String) -> String {
        guard text.contains(where: { $0.isNewline }) else { return text }
        return text.replacingNewlines()
    }

    /// A value with blanks or quotes gets quotes, so key=value pairs stay separable.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline || $0 == "\t" })
        if plain { return value }
        var out = "\""
        for c in value {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n", "\r\n", "\r": out += "\\n"
            case "\t": out += "\\t"
            default: out.append(c)
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        var out = ""
        for c in self { if c.isNewline { out += "\\n" } else { out.append(c) } }
        return out
    }
}

/// Handler metadata, then the provider's, then the call's: later wins, as in swift-log's own handlers.
func mergedMetadata(
    handler: Logger.Metadata, provider: Logger.MetadataProvider?, event: Logger.Metadata?
) -> Logger.Metadata {
    var merged = handler
    if let provided = provider?.get(), !provided.isEmpty {
        merged.merge(provided) { _, new in new }
    }
    if let event, !event.isEmpty {
        merged.merge(event) { _, new in new }
    }
    return merged
}

/// Wall-clock time for log lines, formatted without Foundation.
enum WallClock {
    struct Instant: Sendable, Equatable {
        var seconds: Int
        var nanoseconds: Int

        /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC.
        var iso8601: String {
            var t = time_t(seconds)
            var parts = tm()
            gmtime_r(&t, &parts)
            func pad(_ v: Int32, _ width: Int) -> String {
                let s = String(v)
                return String(repeating: "0", count: max(0, width - s.count)) + s
            }
            return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
                + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
                + ".\(pad(Int32(nanoseconds / 1_000_000), 3))Z"
        }
    }

    static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Instant(seconds: Int(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
    }
}

enum StandardError {
    /// One write(2) per record where possible, so concurrent records do not interleave.
    static func emit(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return  // nowhere left to report a failure to log
                }
            }
        }
    }
}
