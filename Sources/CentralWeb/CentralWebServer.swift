import CentralStore
import Foundation
import Hummingbird
import Logging
import NIOCore
import WebEdge

/// `apheresisd --central`: the unit's one view over the central database (docs/central.md): every
/// workstation's separators on one page, and a read API. It reads only; staff act (acknowledge,
/// release, print) on the workstation that runs the separator.
public struct CentralWebServer: Sendable {
    let reader: CentralReader
    let host: String
    let port: Int
    let logger: Logger

    public init(reader: CentralReader, host: String, port: Int, logger: Logger) {
        self.reader = reader
        self.host = host
        self.port = port
        self.logger = logger
    }

    /// Serves until the task is cancelled or the process is told to stop.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let router = Router()
        // On loopback, as the workstation's API: only this machine's names (no DNS rebinding).
        if ["127.0.0.1", "::1", "localhost"].contains(host) { router.add(middleware: LocalHostOnlyMiddleware()) }
        let routes = CentralRoutes(reader: reader)
        routes.register(on: router)
        let application = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "apheresisd-central"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) }, logger: logger)
        try await application.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        await reader.close()
    }
}

struct CentralRoutes: Sendable {
    let reader: CentralReader

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.central_html)))
        }
        router.get("healthz") { _, _ in
            do {
                _ = try await reader.workstations()
                return Self.json(["status": .text("ok")])
            } catch {
                return Self.failure(.serviceUnavailable, "central_unreachable", CentralErrorText.describe(error))
            }
        }
        router.get("api/v1/workstations") { _, _ in
            await Self.reply { try await reader.workstations().map(Self.workstation) }
        }
        router.get("api/v1/separators") { _, _ in
            await Self.reply { try await reader.separators().map(Self.separator) }
        }
        router.get("api/v1/runs") { request, _ in
            let limit = Self.limit(request)
            return await Self.reply { try await reader.runs(site: request.uri.queryParameters["site"].map(String.init), limit: limit) }
        }
        router.get("api/v1/runs/:site/:run/samples") { request, context in
            guard let site = context.parameters.get("site"), let run = context.parameters.get("run").flatMap({ Int64($0) }) else {
                return Self.failure(.badRequest, "bad_path", "use /api/v1/runs/<site>/<run ref>/samples, the run ref a number")
            }
            let limit = Self.limit(request, fallback: 10_000)
            return await Self.reply { try await reader.samples(site: site, runRef: run, limit: limit) }
        }
        router.get("api/v1/alarms") { request, _ in
            let state = request.uri.queryParameters["state"].map(String.init) ?? "active"
            guard state == "active" || state == "all" else {
                return Self.failure(.badRequest, "bad_state", "state=\(state) is not known; use state=active (the default) or state=all")
            }
            let limit = Self.limit(request)
            return await Self.reply { try await reader.alarms(activeOnly: state == "active", limit: limit) }
        }
        router.get("api/v1/products") { request, _ in
            let limit = Self.limit(request)
            return await Self.reply { try await reader.products(limit: limit) }
        }
    }

    static func limit(_ request: Request, fallback: Int = 200) -> Int {
        let asked = request.uri.queryParameters["limit"].flatMap { Int($0) } ?? fallback
        return min(max(asked, 1), 100_000)
    }

    /// A workstation is silent when it has not spoken for five report intervals (at least 10 s).
    static func silentAfterSeconds(_ row: CentralRow) -> Double {
        guard case .integer(let ms) = row["report_interval_ms"] else { return 10 }
        return max(10, Double(ms) * 5 / 1000)
    }

    static func workstation(_ row: CentralRow) -> CentralRow {
        var row = row
        let age: Double? = if case .real(let a) = row["contact_age_s"] { a } else { nil }
        row.columns.append("silent")
        row.cells.append(.bool(age.map { $0 > silentAfterSeconds(row) } ?? true))
        return row
    }

    /// The link's age is the workstation's measure at its report plus the time since, on the
    /// server's clock. When the workstation itself is silent nothing current is known (the
    /// separator may still be talking to it): the state reads "unknown" and the age is null; the
    /// last report stays readable in link_state, activity_age_ms and report_age_s.
    static func separator(_ row: CentralRow) -> CentralRow {
        var row = row
        let contact: Double? = if case .real(let a) = row["workstation_contact_age_s"] { a } else { nil }
        let reportAge: Double = if case .real(let a) = row["report_age_s"] { a } else { 0 }
        let silent = contact.map { $0 > silentAfterSeconds(row) } ?? true
        var linkAge: CentralCell = .null
        if !silent, case .integer(let ms) = row["activity_age_ms"] { linkAge = .real(Double(ms) / 1000 + reportAge) }
        row.columns += ["link_age_s", "workstation_silent", "shown_state"]
        row.cells += [linkAge, .bool(silent), silent ? .text("unknown") : row["link_state"]]
        return row
    }

    static func reply(_ read: @Sendable () async throws -> [CentralRow]) async -> Response {
        do {
            return json(["data": .rows(try await read())])
        } catch {
            return failure(.serviceUnavailable, "central_unreachable", CentralErrorText.describe(error))
        }
    }

    static func failure(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        json(["error": .object(["code": .text(code), "message": .text(message)])], status: status)
    }

    static func json(_ body: [String: JSONValue], status: HTTPResponse.Status = .ok) -> Response {
        var object = body
        object["api_version"] = .integer(1)
        let data = (try? JSONEncoder.sorted.encode(JSONValue.object(object))) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// JSON for rows whose columns are known only at run time.
indirect enum JSONValue: Encodable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case bool(Bool)
    case object([String: JSONValue])
    case rows([CentralRow])

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(_ cell: CentralCell) {
        switch cell {
        case .null: self = .null
        case .integer(let v): self = .integer(v)
        case .real(let v): self = .real(v)
        case .text(let v): self = .text(v)
        case .bool(let v): self = .bool(v)
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .integer(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .real(let v):
            var c = encoder.singleValueContainer()
            // JSON has no NaN or infinity: such a figure is absent, not a string.
            if v.isFinite { try c.encode(v) } else { try c.encodeNil() }
        case .text(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .bool(let v):
            var c = encoder.singleValueContainer()
            try c.encode(v)
        case .object(let members):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in members { try c.encode(v, forKey: Key(k)) }
        case .rows(let rows):
            var c = encoder.unkeyedContainer()
            for row in rows {
                var members: [String: JSONValue] = [:]
                for (name, cell) in zip(row.columns, row.cells) { members[name] = JSONValue(cell) }
                try c.encode(JSONValue.object(members))
            }
        }
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
