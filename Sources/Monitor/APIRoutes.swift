import ApheresisCore
import Foundation
import Hummingbird
import ProductWorkflow
import Quantities
import RecordStore

/// `/api/v1`: JSON over HTTP for the cell lab and the unit (docs/api.md). Reading is open to whoever
/// can reach the socket (127.0.0.1 or a Unix socket by default); every write names its user with
/// HTTP Basic credentials or a dashboard session, checked against the store and the user's role, and
/// lands in the audit trail.
struct APIRoutes: Sendable {
    let workflow: ProductWorkflow
    let sessions: SessionBook

    func register(on router: Router<BasicRequestContext>) {
        let v1 = router.group("api/v1")
        v1.get("products") { _, _ in try await self.listProducts() }
        v1.get("products/:product") { _, context in try await self.showProduct(context) }
        v1.post("runs/:run/product") { request, context in try await self.createProduct(request, context) }
        v1.post("products/:product/lab") { request, context in try await self.enterLab(request, context) }
        v1.post("products/:product/release") { request, context in try await self.release(request, context) }
        v1.get("products/:product/units/:division/label.{format}") { _, context in try await self.preview(context) }
        v1.post("products/:product/labels/print") { request, context in try await self.print(request, context) }
        // Anything else under /api answers in JSON too, with the version, never a bare 404 page.
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("api/**", method: method) { request, _ in
                Reply.failure(.notFound, code: "not_found", "no endpoint \(request.method) \(request.uri.path); see docs/api.md")
            }
        }
    }

    // MARK: Reads

    func listProducts() async throws -> Response {
        await guarded {
            var states: [ProductJSON] = []
            for product in try await workflow.store.products() {
                states.append(ProductJSON(try await workflow.state(of: product), timeZone: workflow.timeZoneInUse))
            }
            return Reply.json(states)
        }
    }

    func showProduct(_ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            return Reply.json(ProductJSON(try await workflow.state(of: product), timeZone: workflow.timeZoneInUse))
        }
    }

    func preview(_ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            let division = try context.parameters.require("division")
            // ZPL goes only to a printer, through an authenticated and recorded print.
            guard let format = LabelFormat(rawValue: try context.parameters.require("format")), format != .zpl else {
                return Reply.failure(.notFound, code: "not_found", "label previews are svg and pdf")
            }
            let state = try await workflow.state(of: product)
            guard let (unit, content) = try workflow.labelContents(of: state).first(where: { $0.unit.values.divisionCode == division })
            else {
                return Reply.failure(.notFound, code: "not_found", "product \(product.din) has no unit \(division)")
            }
            let bytes = try workflow.render(content, as: format)
            let type = format == .svg ? "image/svg+xml" : "application/pdf"
            return Reply.bytes(bytes, contentType: type, filename: "\(product.din)-\(unit.values.divisionCode).\(format.rawValue)")
        }
    }

    // MARK: Writes

    struct LabRequest: Decodable {
        var wbcGigaPerLitre: Double?
        var cd3Percent: Double?
        var cd3PerMicrolitre: Double?
        var viabilityPercent: Double?
        var qcMillilitres: Double?
        var recoveryPercent: Double?
        var reducedMillilitres: Double?
        var reason: String?
    }

    struct ReleaseRequest: Decodable {
        var meaning: String
        /// `release_summary_sha256` of the product as the signer saw it.
        var releaseSummarySha256: String
    }

    struct PrintRequest: Decodable {
        var printer: String?
    }

    func createProduct(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let credential = try Self.credential(request, sessions: sessions)
            guard let run = context.parameters.get("run", as: Int64.self) else {
                return Reply.failure(.notFound, code: "not_found", "runs are named by their numeric id")
            }
            let product = try await workflow.createProduct(runRef: run, by: credential)
            return Reply.json(
                ProductJSON(try await workflow.state(of: product), timeZone: workflow.timeZoneInUse), status: .created)
        }
    }

    func enterLab(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let credential = try Self.credential(request, sessions: sessions)
            let body: LabRequest = try await Self.decode(request)
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            let values = try LabEntry(
                wbcGigaPerLitre: body.wbcGigaPerLitre, cd3Percent: body.cd3Percent, cd3PerMicrolitre: body.cd3PerMicrolitre,
                viabilityPercent: body.viabilityPercent, qcMillilitres: body.qcMillilitres, recoveryPercent: body.recoveryPercent,
                reducedMillilitres: body.reducedMillilitres
            ).values(named: .json)
            let state = try await workflow.enterLabValues(product: product, values: values, by: credential, reason: body.reason)
            return Reply.json(ProductJSON(state, timeZone: workflow.timeZoneInUse), status: .created)
        }
    }

    func release(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let credential = try Self.credential(request, sessions: sessions)
            let body: ReleaseRequest = try await Self.decode(request)
            guard body.meaning == "released" else {
                throw ProductWorkflowError.invalidLabValue(field: "meaning", reason: "the only meaning a release signs is \"released\"")
            }
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            _ = try await workflow.release(product: product, shownSummarySHA256: body.releaseSummarySha256, by: credential)
            return Reply.json(
                ProductJSON(try await workflow.state(of: product), timeZone: workflow.timeZoneInUse), status: .created)
        }
    }

    func print(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let credential = try Self.credential(request, sessions: sessions)
            let body: PrintRequest = try await Self.decode(request)
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            // Over the API only the configured printer: a request must not send patient data anywhere it likes.
            guard let target = workflow.settings.labels.printer else {
                throw ProductWorkflowError.notConfigured(key: "labels.printer")
            }
            if let asked = body.printer, asked != target {
                throw ProductWorkflowError.invalidLabValue(
                    field: "printer", reason: "only the configured printer (\(target)) can be used over the API")
            }
            guard let address = PrinterAddress(target) else {
                throw ProductWorkflowError.invalidLabValue(field: "printer", reason: "\"\(target)\" is not host:port")
            }
            let outputs = try await workflow.produceLabels(
                product: product, format: .zpl, destination: .printer(address), by: credential)
            struct Printed: Encodable {
                var unitId: Int64
                var unit: String
                var destination: String
                var contentSha256: String
            }
            return Reply.json(
                outputs.map { Printed(unitId: $0.unitRef, unit: $0.unitLine, destination: $0.location, contentSha256: $0.contentSHA256) },
                status: .created)
        }
    }

    // MARK: Plumbing

    struct MissingCredentials: Error {
        var message = "this action needs a user: send HTTP Basic credentials, or sign in (POST /api/v1/session)"
    }
    struct BadBody: Error { var message: String }

    /// HTTP Basic (`Authorization: Basic base64(user:password)`), else a dashboard session: its cookie
    /// together with the dashboard's header (SessionBook.clientHeader).
    static func credential(_ request: Request, sessions: SessionBook) throws -> Credential {
        if request.headers[.authorization] == nil, let token = SessionBook.token(in: request) {
            guard SessionBook.isDashboardRequest(request) else {
                throw MissingCredentials(
                    message: "a session writes only with the header \(SessionBook.clientHeader): \(SessionBook.clientHeaderValue); or send HTTP Basic credentials")
            }
            guard let session = sessions.use(token, now: ProductWorkflow.wallClock()) else {
                throw MissingCredentials(message: "the session has ended (signed out, idle too long, or the daemon restarted): sign in again")
            }
            return .session(userName: session.user)
        }
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("basic "),
            let data = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { throw MissingCredentials() }
        return Credential(userName: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    static func decode<T: Decodable>(_ request: Request) async throws -> T {
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        let data = Data(buffer.readableBytesView)
        do {
            return try decoder.decode(T.self, from: data.isEmpty ? Data("{}".utf8) : data)
        } catch let error as DecodingError {
            throw BadBody(message: describe(error))
        }
    }

    /// A decoding error as one line naming the key.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the body" : keys.map { $0.intValue.map(String.init) ?? snakeCase($0.stringValue) }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let c): return "\(path(c.codingPath)): expected \(type)"
        case .valueNotFound(_, let c): return "\(path(c.codingPath)): missing value"
        case .keyNotFound(let key, let c): return "\(path(c.codingPath + [key])): missing"
        case .dataCorrupted(let c): return "\(path(c.codingPath)): not valid JSON (\(c.debugDescription))"
        @unknown default: return "the body is not valid JSON"
        }
    }

    /// The key as the client wrote it (the decoder converted it to camelCase).
    static func snakeCase(_ key: String) -> String {
        var out = ""
        for c in key {
            if c.isUppercase {
                out += "_" + c.lowercased()
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Maps every failure to a JSON reply: the daemon never answers a bad request with a crash or a bare 500.
    func guarded(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as ProductWorkflowError {
            return Reply.refusal(error)
        } catch let error as MissingCredentials {
            return Reply.failure(
                .unauthorized, code: "not_authenticated", error.message,
                headers: [.wwwAuthenticate: "Basic realm=\"apheresisd\", charset=\"UTF-8\""])
        } catch let error as BadBody {
            return Reply.failure(.unprocessableContent, code: "invalid", error.message)
        } catch let error as HTTPError {
            return Reply.failure(error.status, code: "invalid", error.body ?? "\(error.status)")
        } catch {
            return Reply.failure(.internalServerError, code: "internal", "\(error)")
        }
    }
}
