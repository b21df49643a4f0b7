import DaemonConfiguration
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

/// Where the central database is and how to reach it (`[central]`, docs/central.md).
public struct CentralEndpoint: Sendable, Equatable {
    /// disable, require (encrypted, the certificate not checked: libpq's sslmode=require),
    /// verify-full (checked against `caFile`, else the system's trust, and the name). One
    /// definition with the configuration's.
    public typealias TLSMode = CentralSettings.TLSMode

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    public var caFile: String?
    /// The name the server's certificate must carry; nil: `host`.
    public var serverName: String?
    public var connectTimeout: Duration

    public init(
        host: String, port: Int = 5432, user: String, password: String? = nil, database: String, tls: TLSMode = .disable,
        caFile: String? = nil, serverName: String? = nil, connectTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
        self.serverName = serverName
        self.connectTimeout = connectTimeout
    }

    /// For logs and status: the address without the password.
    public var description: String { "postgresql://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }

    /// One connection; the caller closes it.
    public func connect(logger: Logger) async throws -> PostgresConnection {
        let tlsSetting: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable:
            tlsSetting = .disable
        case .require, .verifyFull:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.minimumTLSVersion = .tlsv12
            if tls == .require {
                configuration.certificateVerification = .none
            } else {
                configuration.certificateVerification = .fullVerification
                if let caFile { configuration.trustRoots = .file(caFile) }
            }
            tlsSetting = .require(try NIOSSLContext(configuration: configuration))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tlsSetting)
        configuration.options.connectTimeout = .nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000
            + connectTimeout.components.attoseconds / 1_000_000_000)
        if tls == .verifyFull { configuration.options.tlsServerName = serverName ?? host }
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
    }
}

public enum CentralError: Error, CustomStringConvertible, Equatable {
    case schemaNewer(database: Int, known: Int)
    /// The site is registered with another store: two workstations configured with one name, or a
    /// store replaced under an old name. Replicating would mix two stores' rows under one key.
    case siteOwnedByAnotherStore(site: String, registered: String, this: String)
    /// The central cursor changed under this replicator (another process replicates as this site).
    case cursorMoved(site: String, expected: Int64)
    case dinAllocationExhausted(facility: String, year: Int)
    /// The central database confirmed log entries this store never wrote: the store was restored
    /// from a backup (or copied) after it had replicated further. Its new entries would reuse
    /// numbers and local ids the central copy already holds for other rows.
    case centralAheadOfStore(site: String, central: Int64, logged: Int64)

    public var description: String {
        switch self {
        case .centralAheadOfStore(let site, let central, let logged):
            "the central database confirmed site \"\(site)\" up to log entry \(central), but this record store never logged past \(logged): it was restored from a backup or copied after it replicated further. Replicating now would overwrite central rows with different ones; nothing is replicated (docs/store.md, \"Backups\")"
        case .schemaNewer(let database, let known):
            "the central database's schema is version \(database), newer than this build knows (\(known)): upgrade apheresisd on this workstation"
        case .siteOwnedByAnotherStore(let site, let registered, let this):
            "site \"\(site)\" in the central database belongs to record store \(registered), and this workstation's store is \(this): two workstations share the name central.site, or this store replaced the one that replicated as \"\(site)\". Give this workstation its own central.site; nothing is replicated until then"
        case .cursorMoved(let site, let expected):
            "the central cursor of site \"\(site)\" is no longer at entry \(expected): another process replicates as this site; stopped to keep the copy exact"
        case .dinAllocationExhausted(let facility, let year):
            "the central database has no DIN sequence left for facility \(facility), year \(String(format: "%02d", year))"
        }
    }
}

/// A failure of the central connection or a query, in an admin's words (PostgresNIO's own
/// descriptions hide the server's message on purpose).
public enum CentralErrorText {
    public static func describe(_ error: any Error) -> String {
        if let error = error as? CentralError { return error.description }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError].compactMap({ $0 }) { return describe(inner) }
        }
        if let error = error as? PSQLError {
            if let info = error.serverInfo, let message = info[.message] {
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                let detail = info[.detail].map { ": \($0)" } ?? ""
                return "the central database refused: \(message)\(detail)\(state)"
            }
            if let underlying = error.underlying { return "\(error.code): \(describeTransport(underlying))" }
            return "\(error.code)"
        }
        return describeTransport(error)
    }

    private static func describeTransport(_ error: any Error) -> String {
        if let error = error as? IOError { return "\(error.description)" }
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.last.map { "cannot connect: \($0.error)" } ?? "cannot connect"
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "cannot connect: timed out" }
        return String(describing: error)
    }
}
