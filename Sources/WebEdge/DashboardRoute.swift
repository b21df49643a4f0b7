import HTTPTypes
import Hummingbird
import NIOCore
import TextFormats

/// The dashboard: `GET /` (the page) and `GET /dashboard/{file}` (its script and style sheet).
/// The files are compiled into the binary (SwiftPM `.embedInCode`), so the daemon needs nothing
/// installed beside it and the workstations, which are offline, need nothing from elsewhere.
struct DashboardRoute: Sendable {
    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
        /// A strong validator of the bytes: with `Cache-Control: no-cache` the browser asks each
        /// time, and an unchanged file costs a 304.
        let etag: String

        init(_ bytes: [UInt8], contentType: String) {
            self.bytes = bytes
            self.contentType = contentType
            etag = "\"\(Self.fnv1a64(bytes))\""
        }

        static func fnv1a64(_ bytes: [UInt8]) -> String {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01b3
            }
            return Hex.digits(hash, width: 16)
        }
    }

    /// Every file the dashboard has, by the name it is asked for under `/dashboard/`.
    static let assets: [String: Asset] = [
        "index.html": Asset(PackageResources.index_html, contentType: "text/html; charset=utf-8"),
        "dashboard.css": Asset(PackageResources.dashboard_css, contentType: "text/css; charset=utf-8"),
        "dashboard.js": Asset(PackageResources.dashboard_js, contentType: "text/javascript; charset=utf-8"),
    ]

    /// Only this server's own files run or load: no inline script or style, no framing.
    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

    static var securityHeaders: HTTPFields {
        var fields = HTTPFields()
        fields[.contentSecurityPolicy] = contentSecurityPolicy
        fields[.xContentTypeOptions] = "nosniff"
        fields[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        fields[.cacheControl] = "no-cache"
        return fields
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { request, _ in Self.response(for: "index.html", request: request) }
        router.get("dashboard/:file") { request, context in
            Self.response(for: context.parameters.get("file") ?? "", request: request)
        }
    }

    static func response(for name: String, request: Request) -> Response {
        let answer = answer(for: name, ifNoneMatch: request.headers[.ifNoneMatch])
        return Response(
            status: answer.status, headers: answer.headers,
            body: answer.body.isEmpty ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    /// What `GET /dashboard/{name}` answers, apart from the HTTP plumbing (tested by value).
    static func answer(for name: String, ifNoneMatch: String?) -> (status: HTTPResponse.Status, headers: HTTPFields, body: [UInt8]) {
        var headers = securityHeaders
        guard let asset = assets[name] else {
            headers[.contentType] = "text/plain; charset=utf-8"
            return (.notFound, headers, Array("no dashboard file \(name)\n".utf8))
        }
        headers[.eTag] = asset.etag
        if let tags = ifNoneMatch, tags == "*" || tags.split(separator: ",").contains(where: { $0.filter { $0 != " " } == asset.etag }) {
            return (.notModified, headers, [])
        }
        headers[.contentType] = asset.contentType
        return (.ok, headers, asset.bytes)
    }
}
