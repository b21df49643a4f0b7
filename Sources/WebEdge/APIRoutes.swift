import ApheresisCore
import Foundation
import Hummingbird
import ProductWorkflow
import Quantities
import RecordStore
import WorkflowSettings

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

        var entry: LabEntry {
            LabEntry(
                wbcGigaPerLitre: wbcGigaPerLitre, cd3Percent: cd3Percent, cd3PerMicrolitre: cd3PerMicrolitre,
                viabilityPercent: viabilityPercent, qcMillilitres: qcMillilitres, recoveryPercent: recoveryPercent,
                reducedMillilitres: reducedMillilitres)
        }
    }

    struct ReleaseRequest: Decodable {
        var meaning: String
        /// `release_summary_sha256` of the product as the signer saw it.
        var releaseSummarySha256: String
        /// Required when the run's telemetry is incomplete: why the product is released anyway (audited).
        var acknowledgeIncompleteRun: String?

        func checkMeaning() throws(ProductWorkflowError) {
            guard meaning == "released" else {
                throw .invalidLabValue(field: "meaning", reason: "the only meaning a release signs is \"released\"")
            }
        }
    }

    struct PrintRequest: Decodable {
        var printer: String?
        /// Required while labels of the current values are still valid (docs/api.md).
        var reprintReason: String?
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
            let values = try body.entry.values(named: .json)
            let state = try await workflow.enterLabValues(product: product, values: values, by: credential, reason: body.reason)
            return Reply.json(ProductJSON(state, timeZone: workflow.timeZoneInUse), status: .created)
        }
    }

    func release(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        await guarded {
            let credential = try Self.credential(request, sessions: sessions)
            let body: ReleaseRequest = try await Self.decode(request)
            try body.checkMeaning()
            let product = try await workflow.findProduct(try context.parameters.require("product"))
            _ = try await workflow.release(
                product: product, shownSummarySHA256: body.releaseSummarySha256, by: credential,
                acknowledgingIncompleteRun: body.acknowledgeIncompleteRun)
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
                let why = PrinterAddress.problem(with: target) ?? "\"\(target)\" is not host:port"
                throw ProductWorkflowError.invalidLabValue(field: "printer", reason: why)
            }
            let outputs = try await workflow.produceLabels(
                product: product, format: .zpl, destination: .printer(address), by: credential, reprintReason: body.reprintReason)
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
            guard let session = sessions.use(token) else {
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

    /// The body as `T`; a body over `RequestBodyLimit.bytes` is refused (413), a body that is not
    /// the JSON asked for is refused (422) saying what and where, in the client's words.
    static func decode<T: Decodable>(_ request: Request) async throws -> T {
        let buffer = try await RequestBodyLimit.collect(request)
        return try decode(Data(buffer.readableBytesView))
    }

    /// The collected body as `T` (an empty body is `{}`); `BadBody` when it is not.
    static func decode<T: Decodable>(_ data: Data) throws -> T {
        do {
            // An empty body is refused like `{}` when a key is required (422), not left to become a 500.
            return try decoder.decode(T.self, from: data.isEmpty ? Data("{}".utf8) : data)
        } catch let error as DecodingError {
            throw BadBody(message: describe(error, body: data))
        }
    }

    /// A decoding error as one line: where (the key path as the client wrote it, or the line and
    /// column of a syntax error) and what was expected, in JSON's words, never Swift's.
    static func describe(_ error: DecodingError, body: Data = Data()) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the body" : keys.map { $0.intValue.map { "[\($0)]" } ?? snakeCase($0.stringValue) }.joined(separator: ".")
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let c):
            return "\(path(c.codingPath)): expected \(jsonKind(type))\(found(c.debugDescription))"
        case .valueNotFound(let type, let c):
            return "\(path(c.codingPath)): null where \(jsonKind(type)) is needed"
        case .keyNotFound(let key, let c):
            return "\(path(c.codingPath + [key])): missing (required)"
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty { return syntaxError(body) }
            return "\(path(c.codingPath)): a value that cannot be read here"
        @unknown default:
            return "the body is not the JSON object this endpoint takes"
        }
    }

    /// "a string", "a number", ... for the Swift type the decoder wanted.
    static func jsonKind(_ type: Any.Type) -> String {
        let name = String(describing: type)
        if name.hasPrefix("Dictionary") { return "an object" }
        if name.hasPrefix("Array") { return "an array" }
        if name == "String" { return "a string" }
        if name == "Bool" { return "true or false" }
        if ["Double", "Float", "Int", "Int64", "Int32", "UInt", "UInt64", "UInt32", "Decimal"].contains(name) { return "a number" }
        return "an object"
    }

    /// ", found a string" from the decoder's own "... but found a string instead.", if it says so.
    static func found(_ description: String) -> String {
        guard let start = description.range(of: "but found "), let end = description.range(of: " instead", range: start.upperBound..<description.endIndex)
        else { return "" }
        let what = description[start.upperBound..<end.lowerBound]
        guard !what.contains("<"), what.count < 20 else { return "" }
        return ", found " + (what.hasPrefix("a ") || what.hasPrefix("an ") || what == "null" ? what : "a " + what)
    }

    /// Where the JSON syntax goes wrong: line, column and byte offset (JSONSerialization's offset).
    static func syntaxError(_ body: Data) -> String {
        let detail: String
        do {
            _ = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
            return "the body is not valid JSON"
        } catch {
            detail = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String) ?? ""
        }
        let bytes = [UInt8](body)
        func place(_ offset: Int) -> String {
            let before = bytes.prefix(offset)
            let line = before.filter { $0 == 0x0A }.count + 1
            let column = offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
            return "line \(line), column \(column) (byte \(offset))"
        }
        if let range = detail.range(of: #"character (\d+)"#, options: .regularExpression),
            let offset = Int(detail[range].dropFirst("character ".count)), offset <= bytes.count
        {
            let character = offset < bytes.count && (0x21...0x7E).contains(bytes[offset]) ? " '\(Character(UnicodeScalar(bytes[offset])))'" : ""
            return "the body is not valid JSON: unexpected character\(character) at \(place(offset))"
        }
        if detail.contains("end of file") {
            return "the body is not valid JSON: it ends before the JSON does, at \(place(bytes.count))"
        }
        return "the body is not valid JSON"
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
        } catch ProductWorkflowError.storeFailure(let text) {
            // SQLite's own words stay in the log.
            return InternalFailure.reply(
                ProductWorkflowError.storeFailure(text), status: .serviceUnavailable, what: "the record store failed, nothing was changed")
        } catch let error as ProductWorkflowError {
            return Reply.refusal(error)
        } catch let error as MissingCredentials {
            return Reply.failure(
                .unauthorized, code: "not_authenticated", error.message,
                headers: [.wwwAuthenticate: "Basic realm=\"apheresisd\", charset=\"UTF-8\""])
        } catch let error as BadBody {
            return Reply.failure(.unprocessableContent, code: "invalid", error.message)
        } catch is RequestBodyLimit.TooLarge {
            return RequestBodyLimit.tooLarge()
        } catch let error as QueryParameterError {
            return Reply.failure(.badRequest, code: "invalid", error.message)
        } catch let error as HTTPError {
            return Reply.failure(error.status, code: "invalid", error.body ?? "\(error.status)")
        } catch where RecordStore.isStoreError(error) {
            // A disk that fails reads or writes is the store being unavailable (docs/api.md: 503), not
            // a fault of the daemon's; the daemon's own STORE_WRITE_FAILED alarm says the rest.
            return InternalFailure.reply(
                error, status: .serviceUnavailable,
                what: "the record store cannot be read or written now (its disk fails, is full or read-only)")
        } catch {
            return InternalFailure.reply(error)
        }
    }
}
