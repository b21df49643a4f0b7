import Foundation
import TOMLKit
import TextFormats

/// `[central]`: the central PostgreSQL database this workstation replicates to (docs/central.md).
/// Values only; the daemon makes the connection (CentralStore).
public struct CentralSettings: Sendable, Equatable {
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        case disable, require
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    public var tls: TLSMode
    /// `sslrootcert`: the authority the server's certificate is checked against (verify-full).
    public var caFile: String?
    /// The password's file (mode 0600/0400); the systemd credential `central-password` wins over it.
    public var passwordFile: String?
    /// This workstation's name in the central database: the key of every row it replicates.
    public var site: String
    public var dinBlockSize: Int
    public var connectTimeout: Duration
    public var retryDelay: Duration
    public var reportInterval: Duration

    /// The name of the credential systemd delivers (`LoadCredential=central-password:...`).
    public static let passwordCredential = "central-password"

    /// The password: the credential, else the file, else none (trust or peer authentication).
    /// Trailing line breaks are not part of it.
    public func password(environment: [String: String]) throws -> String? {
        var path: String?
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let candidate = (directory.hasSuffix("/") ? directory : directory + "/") + Self.passwordCredential
            if FileManager.default.fileExists(atPath: candidate) { path = candidate }
        }
        if path == nil, let passwordFile {
            var info = stat()
            guard stat(passwordFile, &info) == 0 else {
                throw CentralPasswordError(path: passwordFile, reason: String(cString: strerror(errno)))
            }
            if info.st_mode & 0o077 != 0 {
                throw CentralPasswordError(
                    path: passwordFile,
                    reason: "it is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
            }
            path = passwordFile
        }
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CentralPasswordError(path: path, reason: "cannot be read as UTF-8 text")
        }
        var password = Substring(text)
        while let last = password.last, last == "\n" || last == "\r" { password = password.dropLast() }
        guard !password.isEmpty else { throw CentralPasswordError(path: path, reason: "is empty") }
        return String(password)
    }
}

public struct CentralPasswordError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "the central database's password file \(path): \(reason)" }
}

struct CentralSettingsReader {
    let checker: Checker
    static let keys = [
        "url", "password_file", "site", "din_block_size", "connect_timeout_s", "retry_s", "report_interval_s",
    ]

    func read(_ value: TOMLValue?) -> CentralSettings? {
        guard let value else { return nil }
        guard let table = value.table else {
            checker.wrongType("central", expected: "a table, written [central] on a line of its own", found: value)
            return nil
        }
        let before = checker.problems.count
        _ = checker.unknownKeys(in: table, at: "central", known: Self.keys, what: "[central]")
        var endpoint: (host: String, port: Int, user: String, database: String, tls: CentralSettings.TLSMode, ca: String?)?
        if let url = checker.text(table, "url", at: "central") {
            switch Self.parse(url) {
            case .success(let parsed): endpoint = parsed
            case .failure(let problem): checker.report(.invalidValue, "central.url", problem.message)
            }
        } else if table["url"] == nil {
            checker.report(
                .missingKey, "central.url",
                "[central] needs url = \"postgresql://apheresisd@central.example:5432/apheresis\" (the password goes in password_file or the systemd credential central-password)")
        }
        var passwordFile: String?
        if let file = checker.text(table, "password_file", at: "central") {
            if file.hasPrefix("/") {
                passwordFile = file
            } else {
                checker.report(.invalidValue, "central.password_file", "must be an absolute path, such as \"/etc/apheresisd/central-password\"")
            }
        }
        var site = Self.defaultSite()
        if let s = checker.text(table, "site", at: "central") {
            if DeviceReader.validName(s) {
                site = s
            } else {
                checker.report(.invalidValue, "central.site", "\"\(s)\" is not a usable site name: use \(DeviceReader.namePattern)")
            }
        }
        var blockSize = 20
        if let v = checker.integer(table, "din_block_size", at: "central"),
            checker.within(Double(v), 2...1000, unit: "sequences", at: "central.din_block_size")
        {
            blockSize = v
        }
        func seconds(_ key: String, _ range: ClosedRange<Double>, _ fallback: Double) -> Duration {
            if let v = checker.number(table, key, at: "central"), checker.within(v, range, unit: "s", at: "central." + key) {
                return .milliseconds(Int64(v * 1000))
            }
            return .milliseconds(Int64(fallback * 1000))
        }
        let connect = seconds("connect_timeout_s", 1...120, 10)
        let retry = seconds("retry_s", 0.2...600, 5)
        let report = seconds("report_interval_s", 0.5...60, 2)
        guard checker.problems.count == before, let endpoint else { return nil }
        return CentralSettings(
            host: endpoint.host, port: endpoint.port, user: endpoint.user, database: endpoint.database, tls: endpoint.tls,
            caFile: endpoint.ca, passwordFile: passwordFile, site: site, dinBlockSize: blockSize, connectTimeout: connect,
            retryDelay: retry, reportInterval: report)
    }

    /// The machine's short host name, made a valid site name; "workstation" failing that.
    static func defaultSite() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let name = gethostname(&buffer, buffer.count) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let host = name.split(separator: ".").first.map(String.init) ?? ""
        let cleaned = String(host.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        return DeviceReader.validName(cleaned) ? cleaned : "workstation"
    }

    struct URLProblem: Error {
        var message: String
    }

    /// libpq's URI form: postgresql://user@host:port/database?sslmode=...&sslrootcert=...
    static func parse(_ text: String) -> Result<(host: String, port: Int, user: String, database: String, tls: CentralSettings.TLSMode, ca: String?), URLProblem> {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgresql" || scheme == "postgres"
        else {
            return .failure(URLProblem(message: "\"\(text)\" is not a postgresql:// URL; write postgresql://user@host:5432/database"))
        }
        if components.password != nil {
            return .failure(
                URLProblem(
                    message: "the URL carries a password, which would be readable by anyone who can read this file; move it to password_file (mode 600) or the systemd credential central-password"))
        }
        guard let host = components.host, !host.isEmpty else {
            return .failure(URLProblem(message: "\"\(text)\" names no host; write postgresql://user@host:5432/database"))
        }
        guard let user = components.user, !user.isEmpty else {
            return .failure(URLProblem(message: "\"\(text)\" names no user; write postgresql://user@\(host)/database"))
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty, !database.contains("/") else {
            return .failure(URLProblem(message: "\"\(text)\" names no database; write postgresql://\(user)@\(host)/database"))
        }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { return .failure(URLProblem(message: "port \(port) is not 1 to 65535")) }
        var tls = CentralSettings.TLSMode.disable
        var ca: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(CentralSettings.TLSMode.init(rawValue:)) else {
                    return .failure(
                        URLProblem(
                            message: "sslmode=\(item.value ?? "") is not supported; use \(CentralSettings.TLSMode.allCases.map(\.rawValue).joined(separator: ", "))"))
                }
                tls = mode
            case "sslrootcert":
                guard let value = item.value, value.hasPrefix("/") else {
                    return .failure(URLProblem(message: "sslrootcert must be an absolute path, such as /etc/apheresisd/central-ca.pem"))
                }
                ca = value
            default:
                return .failure(URLProblem(message: "the URL parameter \"\(item.name)\" is not supported; use sslmode and sslrootcert"))
            }
        }
        if ca != nil, tls != .verifyFull {
            return .failure(URLProblem(message: "sslrootcert applies only with sslmode=verify-full"))
        }
        return .success((host, port, user, database, tls, ca))
    }
}
