import Foundation
import Logging
import ProductWorkflow
import RecordStore
import Testing
import WorkflowSettings

@testable import WebEdge

/// The OpenAPI document against the router the daemon builds: a route without a description (or a
/// description of a route that is gone) fails here, before schemathesis runs (OpenAPITests).
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    /// Outside /api: the dashboard and /metrics, described in docs/api.md, not in the document.
    static let undocumented: Set<String> = ["/", "/dashboard/{file}", "/metrics"]

    static func document() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(OpenAPIRoute.document)) as? [String: Any])
    }

    @Test("the document is OpenAPI 3.1 and every $ref in it resolves")
    func wellFormed() throws {
        let doc = try Self.document()
        #expect(doc["openapi"] as? String == "3.1.0")
        let text = String(decoding: OpenAPIRoute.document, as: UTF8.self)
        let components = try #require(doc["components"] as? [String: [String: Any]])
        let refs = text.matches(of: /"\$ref": "#\/components\/(\w+)\/(\w+)"/).map { (String($0.1), String($0.2)) }
        #expect(!refs.isEmpty)
        for (kind, name) in refs {
            #expect(components[kind]?[name] != nil, "#/components/\(kind)/\(name) is not defined")
        }
    }

    @Test("every route the daemon's router has is in the document, with the same methods, and nothing more")
    func everyRouteIsDescribed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await RecordStore.open(path: directory.appendingPathComponent("store.sqlite").path)
        let settings = ProductSettings(
            facilityIdentificationNumber: nil, facilityName: "Test", facilityAddress: [], productDescriptionCode: nil, productName: "Test")
        let server = APIServer(
            address: .tcp(host: "127.0.0.1", port: 0), workflow: ProductWorkflow(store: store, settings: settings),
            logger: Logger(label: "openapi-test"))

        var routed: [String: Set<String>] = [:]
        for route in server.application.responder.routes where !Self.undocumented.contains(route.path) {
            // HEAD is the GET's (the router adds it to every GET; the stream registers its own).
            routed[route.path, default: []].formUnion(route.methods.filter { $0 != .head }.map { $0.rawValue.lowercased() })
        }
        #expect(routed["/api/v1/openapi.json"] == ["get"], "the document's own route")

        let paths = try #require(Self.document()["paths"] as? [String: [String: Any]])
        var described: [String: Set<String>] = [:]
        let methods: Set<String> = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
        for (path, item) in paths { described[path] = Set(item.keys).intersection(methods) }

        for (path, methods) in routed.sorted(by: { $0.key < $1.key }) {
            #expect(described[path] == methods, "\(path): the router has \(methods.sorted()), the document \(described[path]?.sorted() ?? [])")
        }
        for path in described.keys.sorted() where routed[path] == nil {
            Issue.record("\(path) is in the document but the router has no such route")
        }
    }
}
