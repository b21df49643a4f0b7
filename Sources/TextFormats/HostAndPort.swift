/// `host:port` as people write it for the API's address and the label printer: one rule for the
/// configuration, the command lines and the API. An IPv6 literal goes in brackets (`[::1]:8470`):
/// unbracketed, `::1` would read as host `::` and port 1.
public struct HostAndPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// What is wrong with a text, in words that name it and say what to write.
    public struct Problem: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Parses `host:port` or `[v6]:port`; a bare host takes `defaultPort` when there is one.
    /// `ports`: the ports allowed (0 means "any free port", which only a listener can take).
    public static func parse(
        _ text: String, defaultPort: Int? = nil, ports: ClosedRange<Int> = 1...65535, example: String = "127.0.0.1:8470"
    ) -> Result<HostAndPort, Problem> {
        func problem(_ why: String) -> Result<HostAndPort, Problem> { .failure(Problem(description: "\"\(text)\" \(why)")) }
        let trimmed = text.trimmingBlanks
        guard !trimmed.isEmpty else { return problem("is empty; write host:port, such as \"\(example)\"") }
        var host: Substring
        var portText: Substring?
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { return problem("opens [ for an IPv6 address but does not close it") }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            let rest = trimmed[trimmed.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return problem("has \"\(rest)\" after the IPv6 address; write [address]:port") }
                portText = rest.dropFirst()
            }
        } else if trimmed.filter({ $0 == ":" }).count > 1 {
            return problem("looks like an IPv6 address: put it in brackets, such as \"[::1]:8470\"")
        } else if let colon = trimmed.firstIndex(of: ":") {
            host = trimmed[..<colon]
            portText = trimmed[trimmed.index(after: colon)...]
        } else {
            host = Substring(trimmed)
        }
        guard !host.isEmpty else { return problem("has no host; write host:port, such as \"\(example)\"") }
        let port: Int
        if let portText {
            guard !portText.isEmpty else { return problem("has no port after the colon; write host:port, such as \"\(example)\"") }
            guard let number = Int(portText) else { return problem("has \"\(portText)\" where the port number goes") }
            port = number
        } else if let defaultPort {
            port = defaultPort
        } else {
            return problem("has no port; write host:port, such as \"\(example)\"")
        }
        guard ports.contains(port) else {
            return problem("has port \(port), outside \(ports.lowerBound)-\(ports.upperBound)")
        }
        return .success(HostAndPort(host: String(host), port: port))
    }

    /// `host:port`, with an IPv6 literal in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension String {
    /// Without the spaces and tabs around it (Foundation's `.whitespaces`: tab and the Unicode
    /// space separators; line breaks stay), so that this module needs no Foundation.
    fileprivate var trimmingBlanks: Substring {
        func isBlank(_ c: Character) -> Bool {
            c == "\t" || c.unicodeScalars.allSatisfy { $0.properties.generalCategory == .spaceSeparator }
        }
        let all = self[...]
        guard let first = all.firstIndex(where: { !isBlank($0) }), let last = all.lastIndex(where: { !isBlank($0) }) else {
            return all[all.endIndex...]
        }
        return all[first...last]
    }
}
