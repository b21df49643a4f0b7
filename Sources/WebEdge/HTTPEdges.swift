import Foundation
import HTTPTypes
@_spi(Internal) import Hummingbird
import Logging
import NIOCore

/// The edges of HTTP that the router alone answers badly (docs/api.md, "Errors"):
/// - a body over `RequestBodyLimit.bytes` is 413 with a JSON error naming the limit;
/// - a known path asked with a method it has not is 405 with `Allow` (HEAD wherever GET is);
///   OPTIONS is 204 with `Allow`;
/// - a query parameter an endpoint does not take is 400 naming it and the ones it takes.
/// HEAD itself comes from the router (`.autoGenerateHeadEndpoints`): every GET route answers it
/// with the same status and headers and no body.
struct EdgeResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    /// The methods of each route, matched exactly as the router matches (its own trie).
    struct Endpoint: Sendable {
        var path: String
        var methods: Set<HTTPRequest.Method>
        var allowed: [HTTPRequest.Method] {
            var all = methods
            if all.contains(.get) { all.insert(.head) }
            all.insert(.options)
            let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
            return order.filter(all.contains)
        }
    }

    let inner: RouterResponder<Context>
    let endpoints: RouterTrie<Endpoint>
    /// Every route but the catch-all, for the test that each one is in the OpenAPI document.
    let routes: [Endpoint]
    /// On a loopback address, another `Host` is refused here too, before anything below answers
    /// (405, 413, a refused parameter would otherwise tell a foreign page which paths exist).
    let localNamesOnly: Bool
    /// Every answer counted here, refusals at this edge included (a 405 or 413 is what a
    /// misbehaving client gets, and what an operator wants to see).
    let metrics: DaemonMetrics?

    /// Reads the routes before building the router's responder.
    init(router: Router<Context>, localNamesOnly: Bool = false, metrics: DaemonMetrics? = nil) {
        self.localNamesOnly = localNamesOnly
        self.metrics = metrics
        let builder = RouterPathTrieBuilder<Endpoint>()
        var methods: [String: (RouterPath, Set<HTTPRequest.Method>)] = [:]
        for route in router.routes {
            let path = route.path.description
            // The JSON catch-all under /api answers unknown paths with 404: it names no endpoint.
            if path.contains("**") { continue }
            methods[path, default: (route.path, [])].1.insert(route.method)
        }
        for (path, (routerPath, set)) in methods {
            builder.addEntry(routerPath, value: Endpoint(path: path, methods: set))
        }
        routes = methods.map { Endpoint(path: $0.key, methods: $0.value.1) }.sorted { $0.path < $1.path }
        endpoints = RouterTrie(base: builder)
        inner = router.buildResponder()
    }

    /// Counts and times every request: the route label is the matched route's pattern
    /// (`/api/v1/runs/{run}`), never the raw path, and the method a standard one or `other`, so
    /// that scans cannot grow the series without bound; a path no route serves is `unmatched`.
    /// Not Hummingbird's MetricsMiddleware: it records through the global swift-metrics system,
    /// whose metrics come without help text, which `promtool check metrics` refuses.
    func respond(to request: Request, context: Context) async throws -> Response {
        guard let metrics else { return try await answer(request, context: context) }
        let start = ContinuousClock.now
        let method = Self.standardMethods.contains(request.method) ? request.method.rawValue : "other"
        let route = endpoints.resolve(request.uri.path)?.value.path ?? "unmatched"
        do {
            let response = try await answer(request, context: context)
            // Until the answer's status and headers; a live stream's body goes on after.
            metrics.observeRequest(method: method, route: route, status: response.status.code, duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.observeRequest(method: method, route: route, status: status, duration: ContinuousClock.now - start)
            throw error
        }
    }

    static let standardMethods: Set<HTTPRequest.Method> = [.get, .head, .post, .put, .patch, .delete, .options]

    func answer(_ request: Request, context: Context) async throws -> Response {
        if localNamesOnly, let refusal = LocalHostOnlyMiddleware.refusal(request) { return refusal }
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > RequestBodyLimit.bytes {
            // Read it (up to a bound) so that the client, still sending, reads the answer.
            _ = try? await RequestBodyLimit.collect(request)
            return RequestBodyLimit.tooLarge()
        }
        let path = request.uri.path
        if let endpoint = endpoints.resolve(path)?.value {
            let allowed = endpoint.allowed
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            if request.method == .options, !endpoint.methods.contains(.options) {
                return Response(status: .noContent, headers: [.allow: allow])
            }
            if !allowed.contains(request.method) {
                return Reply.failure(
                    .methodNotAllowed, code: "method_not_allowed",
                    "\(request.method.rawValue) is not a method of \(path); it answers \(allow)", headers: [.allow: allow])
            }
            if let refusal = QueryParameters.refusal(request, endpoint: endpoint.path) { return refusal }
        }
        return try await inner.respond(to: request, context: context)
    }
}

/// Request bodies are JSON of a few hundred bytes: anything over 64 KiB is refused with 413.
enum RequestBodyLimit {
    static let bytes = 64 * 1024
    /// Beyond this a refused body is no longer read: the connection is closed on the client.
    static let drainBytes = 16 * 1024 * 1024

    struct TooLarge: Error {}

    /// The body, or `TooLarge` once it passes `bytes` (the rest read and dropped, up to `drainBytes`).
    static func collect(_ request: Request) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        var total = 0
        for try await part in request.body {
            total += part.readableBytes
            if total <= bytes {
                var part = part
                collected.writeBuffer(&part)
            } else if total > drainBytes {
                break
            }
        }
        if total > bytes { throw TooLarge() }
        return collected
    }

    static func tooLarge() -> Response {
        Reply.failure(
            .contentTooLarge, code: "too_large",
            "the request body is larger than the limit of \(bytes) bytes (64 KiB); the API's bodies are small JSON objects")
    }
}

/// The query parameters each endpoint takes (docs/api.md); any other is refused with 400, so that
/// a misspelt `?limt=5` is not silently ignored. Endpoints under /api not listed take none.
/// A new parameter must be added here as well as read by its handler.
enum QueryParameters {
    static let taken: [String: [String]] = [
        "api/v1/runs/:run/samples": ["from_min", "to_min"],
        "api/v1/alarms": ["state", "run"],
        "api/v1/events": ["run", "device", "limit"],
    ]

    /// `taken` by the router's own spelling of each path.
    static let byRoutePath: [String: [String]] = Dictionary(
        uniqueKeysWithValues: taken.map { (RouterPath($0.key).description, $0.value) })

    static func refusal(_ request: Request, endpoint: String) -> Response? {
        let path = request.uri.path
        guard path.hasPrefix("/api/") || path.hasPrefix("//api/") else { return nil }
        let known = byRoutePath[endpoint] ?? []
        for (name, _) in request.uri.queryParameters where !known.contains(String(name)) {
            let takes = known.isEmpty ? "this endpoint takes none" : "this endpoint takes " + known.joined(separator: ", ")
            return Reply.failure(.badRequest, code: "invalid", "unknown query parameter \"\(name)\"; \(takes)")
        }
        return nil
    }

    /// A whole number in `range`, or a 400 naming the parameter and the value.
    static func integer(
        _ request: Request, _ name: String, in range: ClosedRange<Int64>
    ) throws(QueryParameterError) -> Int64? {
        guard let text = request.uri.queryParameters[Substring(name)].map(String.init) else { return nil }
        guard let value = Int64(text), range.contains(value) else {
            let bound = range.upperBound == .max ? "\(range.lowerBound) or more" : "from \(range.lowerBound) to \(range.upperBound)"
            throw QueryParameterError(message: "\(name): \"\(text)\" is not a whole number \(bound)")
        }
        return value
    }

    /// A finite number in `range`, or a 400 naming the parameter and the value.
    static func number(_ request: Request, _ name: String, in range: ClosedRange<Double>, unit: String) throws(QueryParameterError) -> Double? {
        guard let text = request.uri.queryParameters[Substring(name)].map(String.init) else { return nil }
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            func plain(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)" }
            let bound =
                range.upperBound == .greatestFiniteMagnitude
                ? "\(plain(range.lowerBound)) or more" : "from \(plain(range.lowerBound)) to \(plain(range.upperBound))"
            throw QueryParameterError(message: "\(name): \"\(text)\" is not a number of \(unit), \(bound)")
        }
        return value
    }
}

/// A query parameter with a value that cannot be: 400.
struct QueryParameterError: Error {
    var message: String
}

/// A failure the client cannot act on: the reply says only that it happened and gives an id; the
/// log has the error itself under that id. No Swift type, NIO or SQLite text reaches a client.
enum InternalFailure {
    static let logger = Logger(label: "apheresisd")

    static func reply(_ error: any Error, status: HTTPResponse.Status = .internalServerError, what: String = "an internal error") -> Response {
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        logger.error("api: \(what) (error id \(id)): \(error)", metadata: ["api_error_id": "\(id)"])
        let code = status == .serviceUnavailable ? "unavailable" : "internal"
        return Reply.failure(status, code: code, "\(what); the daemon's log has the details under error id \(id)")
    }
}
