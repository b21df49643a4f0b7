import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of `/api/v1` (Sources/WebEdge/OpenAPI/,
/// compiled in like the dashboard's files). Kept true by a test that runs schemathesis against the
/// running daemon (Tests/IntegrationTests/OpenAPITests.swift), and by one that every route the
/// router has is in it (Tests/WebEdgeTests/OpenAPIDocumentTests.swift).
struct OpenAPIRoute: Sendable {
    static let path = "api/v1/openapi.json"
    static let document: [UInt8] = PackageResources.openapi_json

    func register(on router: Router<BasicRequestContext>) {
        router.get(RouterPath(Self.path)) { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-cache"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: Self.document)))
        }
    }
}
