import TOMLKit
import TextFormats

/// `[api]`: the HTTP API and (later) dashboard. Loopback by default: reading is open to whoever can
/// reach the socket, so widen it only behind a firewall or a reverse proxy that authenticates.
public struct APISettings: Sendable, Equatable {
    public enum Listen: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
        case off
    }
    public var listen: Listen
    public init(listen: Listen = APISettings.defaultListen) { self.listen = listen }

    public static let defaultPort = 8470
    public static let defaultListen = Listen.tcp(host: "127.0.0.1", port: defaultPort)
}

struct APISettingsReader {
    let checker: Checker
    static let keys = ["listen", "unix_socket", "enabled"]

    func read(_ value: TOMLValue?) -> APISettings {
        var settings = APISettings()
        guard let value else { return settings }
        guard let t = value.table else {
            checker.wrongType("api", expected: "a table, written [api] on a line of its own", found: value)
            return settings
        }
        _ = checker.unknownKeys(in: t, at: "api", known: Self.keys, what: "[api]")
        if let listen = checker.text(t, "listen", at: "api") {
            // Port 0: any free port (the tests' choice).
            switch HostAndPort.parse(listen, ports: 0...65535) {
            case .success(let address): settings.listen = .tcp(host: address.host, port: address.port)
            case .failure(let problem): checker.report(.invalidValue, "api.listen", problem.description)
            }
        }
        if let path = checker.text(t, "unix_socket", at: "api") {
            if t["listen"] != nil {
                checker.report(.invalidValue, "api.unix_socket", "give either listen or unix_socket, not both")
            } else if path.hasPrefix("/") {
                settings.listen = .unixSocket(path: path)
            } else {
                checker.report(.invalidValue, "api.unix_socket", "must be an absolute path such as \"/run/apheresisd/api.sock\"")
            }
        }
        if let value = t["enabled"]?.tomlValue {
            if let enabled = value.bool {
                if !enabled { settings.listen = .off }
            } else {
                checker.wrongType("api.enabled", expected: "true or false", found: value)
            }
        }
        return settings
    }
}
