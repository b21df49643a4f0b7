/// One thing wrong with a configuration file, located for the person fixing it.
public struct ConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case syntax
        case unknownKey
        /// A known key that does not belong to this device's transport.
        case inapplicableKey
        case wrongType
        case outOfRange
        case invalidValue
        case missingKey
        /// Keys that exclude each other (a serial path and a USB match).
        case conflict
        case duplicateName
        /// Two devices on one port, path, adapter or directory.
        case sharedEndpoint
        case unknownTransport
        case unknownProcedure
        /// A warning threshold not below its alarm (or a minimum not below its maximum).
        case ordering
        case missingFormat
        case unsupportedFormat
        case unreadable
    }

    public var kind: Kind
    public var file: String
    /// 1-based; nil only when the file could not be read at all.
    public var line: Int?
    /// 1-based, where known.
    public var column: Int?
    /// Where in the document: `format`, `daemon.log_level`, `device[2].baud`
    /// (devices and profiles counted from 1, as they appear in the file).
    public var keyPath: String
    /// Plain words for a workstation admin.
    public var message: String

    public init(kind: Kind, file: String, line: Int?, column: Int?, keyPath: String, message: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    /// `line 12: device[1].baud: 250000 is not a serial speed …`, after the file name when there is one.
    public var description: String {
        var parts: [String] = []
        if !file.isEmpty { parts.append(file) }
        if let line { parts.append("line \(line)") }
        if !keyPath.isEmpty { parts.append(keyPath) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

public enum ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The file was read and has these problems (all of them, in line order).
    case invalid(path: String, problems: [ConfigurationProblem])

    public var problems: [ConfigurationProblem] {
        switch self {
        case .unreadable(let path, let reason):
            [ConfigurationProblem(kind: .unreadable, file: path, line: nil, column: nil, keyPath: "", message: reason)]
        case .invalid(_, let problems): problems
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            "cannot read the configuration file \(path): \(reason)"
        case .invalid(let path, let problems):
            "the configuration file \(path) has \(problems.count) problem\(problems.count == 1 ? "" : "s"):\n"
                + problems.map { "  " + $0.description }.joined(separator: "\n")
        }
    }
}
