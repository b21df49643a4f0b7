import TextFormats

/// A raw (JetDirect-style) label printer: `host:port`, `[v6]:port`, or a bare host, which means
/// the raw printing port. `HostAndPort`'s rule, and one place for the printer's default, so that
/// `labels.printer`, `--printer` and the API's printer read the same text the same way.
public struct PrinterAddress: Sendable, Hashable, CustomStringConvertible {
    /// The port a raw label printer listens on when none is written.
    public static let rawPrintingPort = 9100

    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard case .success(let address) = Self.parse(text) else { return nil }
        host = address.host
        port = address.port
    }

    /// What is wrong with the text as a printer address, in words; nil when it is one.
    public static func problem(with text: String) -> String? {
        guard case .failure(let problem) = parse(text) else { return nil }
        return problem.description
    }

    static func parse(_ text: String) -> Result<HostAndPort, HostAndPort.Problem> {
        HostAndPort.parse(text, defaultPort: rawPrintingPort, example: "10.1.2.40:9100")
    }

    /// `host:port`, with an IPv6 literal in brackets: `HostAndPort`'s rule.
    public var description: String { HostAndPort(host: host, port: port).description }
}
