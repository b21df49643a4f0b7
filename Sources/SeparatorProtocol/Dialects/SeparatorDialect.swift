/// Everything that differs between separator families, as one value: how frames arrive, how a
/// message's records map to the model, and how an export file reads. The daemon looks a link's
/// dialect up by name (`[[device]] dialect`) in `SeparatorDialect.all`, like gpsd's driver table;
/// nothing else in the daemon knows which family it speaks to.
///
/// A new family is one file beside `OptiaStyleDialect.swift` that defines its value, and one entry in
/// `all` below.
public struct SeparatorDialect: Sendable, CustomStringConvertible {
    /// The name configuration uses (lower case, no spaces).
    public let name: String
    /// One line for `--check-config` and the docs.
    public let summary: String
    /// E1381 framing as the device speaks it (timeouts and limits of the receiver).
    public let framing: E1381Receiver.Configuration
    /// One complete message's text (records H to L) into the model. Throws, naming the record and
    /// field, for anything that does not parse; never traps on any bytes.
    public let decodeMessage: @Sendable (_ text: [UInt8]) throws(MessageDecodingError) -> SeparatorMessage
    /// File name endings (lower case, without the dot) of the device's export files.
    public let exportFileExtensions: [String]
    /// One export file's text into a run. Throws, naming the line, for anything that does not parse.
    public let decodeExport: @Sendable (_ text: String) throws(ExportDecodingError) -> ExportRun

    public init(
        name: String, summary: String, framing: E1381Receiver.Configuration,
        decodeMessage: @escaping @Sendable ([UInt8]) throws(MessageDecodingError) -> SeparatorMessage,
        exportFileExtensions: [String],
        decodeExport: @escaping @Sendable (String) throws(ExportDecodingError) -> ExportRun
    ) {
        self.name = name
        self.summary = summary
        self.framing = framing
        self.decodeMessage = decodeMessage
        self.exportFileExtensions = exportFileExtensions
        self.decodeExport = decodeExport
    }

    public var description: String { name }

    /// Whether a file name is one of this dialect's export files.
    public func isExportFile(_ fileName: String) -> Bool {
        let lower = fileName.lowercased()
        return exportFileExtensions.contains { lower.hasSuffix("." + $0) }
    }
}

extension SeparatorDialect {
    /// The dialects this build speaks, by name. The first is the default.
    public static let all: [SeparatorDialect] = [.optiaStyle]

    public static var standard: SeparatorDialect { all[0] }

    public static func named(_ name: String) -> SeparatorDialect? {
        all.first { $0.name == name }
    }
}
