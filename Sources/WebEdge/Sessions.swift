import Foundation
import HTTPTypes
import Hummingbird
import LiveState
import ProductWorkflow
import Synchronization

/// Signed-in users of the dashboard, in memory: a daemon restart signs everyone out. A session is a
/// random token in an HttpOnly, SameSite=Strict cookie; it ends after `idleLimit` without use and at
/// `absoluteLimit` in any case. It stands in for the password on routine writes (acknowledge, preset
/// change, lab values, print); the user's role and active state are checked on every use, and a
/// release still needs the password.
public final class SessionBook: Sendable {
    public static let cookieName = "apheresisd_session"
    /// The header every cookie-authenticated write must carry. A page on another site cannot send a
    /// custom header here without a CORS preflight, which this server never grants: no CSRF.
    public static let clientHeader = "X-Requested-With"
    public static let clientHeaderValue = "apheresisd-dashboard"

    public struct Session: Sendable {
        public var user: String
        public var role: String
        /// Monotonic: a wall clock step must neither end every session nor stretch one past its limits.
        var createdAt: Duration
        var lastUsedAt: Duration
    }

    let idleLimit: Duration
    let absoluteLimit: Duration
    private let clock: @Sendable () -> Duration
    private let sessions = Mutex<[String: Session]>([:])

    public init(
        idleLimit: Duration = .seconds(30 * 60), absoluteLimit: Duration = .seconds(12 * 3600),
        clock: @escaping @Sendable () -> Duration = { DaemonClock.monotonic }
    ) {
        self.idleLimit = idleLimit
        self.absoluteLimit = absoluteLimit
        self.clock = clock
    }

    /// A new session; returns its token.
    func open(user: String, role: String) -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2) on Linux
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let now = clock()
        sessions.withLock { all in
            all = all.filter { !expired($0.value, now: now) }
            all[token] = Session(user: user, role: role, createdAt: now, lastUsedAt: now)
        }
        return token
    }

    /// The session's user, touching it; nil when unknown or expired.
    func use(_ token: String) -> Session? {
        let now = clock()
        return sessions.withLock { all in
            guard var session = all[token] else { return nil }
            if expired(session, now: now) {
                all[token] = nil
                return nil
            }
            session.lastUsedAt = now
            all[token] = session
            return session
        }
    }

    func close(_ token: String) -> Session? {
        sessions.withLock { $0.removeValue(forKey: token) }
    }

    /// When the session ends, on the monotonic clock.
    func expiry(of session: Session) -> Duration {
        min(session.lastUsedAt + idleLimit, session.createdAt + absoluteLimit)
    }

    /// When the session ends, as a wall time for people: now on the wall clock plus what is left.
    func expiresAtUnixMilliseconds(of session: Session, wallNow: Int64) -> Int64 {
        let left = expiry(of: session) - clock()
        return wallNow + left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
    }

    private func expired(_ session: Session, now: Duration) -> Bool { now >= expiry(of: session) }

    /// The session token from the request's cookies.
    static func token(in request: Request) -> String? {
        for field in request.headers[values: .cookie] {
            for part in field.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(cookieName + "=") { return String(pair.dropFirst(cookieName.count + 1)) }
            }
        }
        return nil
    }

    static func isDashboardRequest(_ request: Request) -> Bool {
        request.headers[HTTPField.Name(clientHeader)!] == clientHeaderValue
    }
}

/// `POST/GET/DELETE /api/v1/session`: sign in with a password, see who is signed in, sign out.
struct SessionRoutes: Sendable {
    let workflow: ProductWorkflow
    let sessions: SessionBook
    let now: @Sendable () -> Int64

    struct SignIn: Decodable {
        var user: String?
        var password: String?

        static let incomplete = "user and password: both are needed to sign in"

        /// Nil unless both are given (and the user's name is not empty).
        var credential: Credential? {
            guard let name = user, !name.isEmpty, let password else { return nil }
            return Credential(userName: name, password: password)
        }
    }

    struct SessionJSON: Encodable {
        var user: String
        var role: String
        var expiresAt: Date
    }

    func register(on router: Router<BasicRequestContext>) {
        let v1 = router.group("api/v1")
        let api = APIRoutes(workflow: workflow, sessions: sessions)
        v1.post("session") { request, _ in await api.guarded { try await signIn(request) } }
        v1.get("session") { request, _ in await api.guarded { try current(request) } }
        v1.delete("session") { request, _ in await api.guarded { try await signOut(request) } }
    }

    func signIn(_ request: Request) async throws -> Response {
        let body: SignIn = try await APIRoutes.decode(request)
        guard let credential = body.credential else {
            return Reply.failure(.unprocessableContent, code: "invalid", SignIn.incomplete)
        }
        let user = try await workflow.authenticate(credential, for: .signIn, entity: "session", entityID: credential.userName)
        let at = now()
        let token = sessions.open(user: user.name, role: user.role.rawValue)
        // No session without its audit entry: if the trail cannot be written, the sign-in fails.
        do {
            try await workflow.store.recordAuditEntry(
                actor: user.name, action: "session.open", entity: "session", entityID: user.name, reason: nil, atUnixMilliseconds: at)
        } catch {
            _ = sessions.close(token)
            throw error
        }
        guard let session = sessions.use(token) else {
            return Reply.failure(.internalServerError, code: "internal", "the new session expired at once: check the daemon's clock")
        }
        var response = Reply.json(json(session))
        response.headers[.setCookie] =
            "\(SessionBook.cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(sessions.absoluteLimit.components.seconds)"
        return response
    }

    func current(_ request: Request) throws -> Response {
        guard let token = SessionBook.token(in: request), let session = sessions.use(token) else {
            return Reply.failure(.unauthorized, code: "not_authenticated", "not signed in (or the session ended): sign in again")
        }
        return Reply.json(json(session))
    }

    func signOut(_ request: Request) async throws -> Response {
        if let token = SessionBook.token(in: request), let session = sessions.close(token) {
            try? await workflow.store.recordAuditEntry(
                actor: session.user, action: "session.close", entity: "session", entityID: session.user, reason: nil,
                atUnixMilliseconds: now())
        }
        var response = Reply.json(["signed_out": true])
        response.headers[.setCookie] = "\(SessionBook.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        return response
    }

    func json(_ session: SessionBook.Session) -> SessionJSON {
        SessionJSON(
            user: session.user, role: session.role,
            expiresAt: Date(timeIntervalSince1970: Double(sessions.expiresAtUnixMilliseconds(of: session, wallNow: now())) / 1000))
    }
}

/// A dashboard request must never get `WWW-Authenticate: Basic`: the browser would answer it with
/// its own password dialog instead of the page's sign-in form.
struct DashboardAuthenticationMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if SessionBook.isDashboardRequest(request) { response.headers[.wwwAuthenticate] = nil }
        return response
    }
}

/// Every write must say it is JSON (or come from the dashboard with its header). An HTML
/// form or a "simple" fetch on another site can post url-encoded or plain text to this port, but
/// cannot send `application/json` or a custom header without a CORS preflight, which this server
/// never grants: so no other site can make a browser write here (CSRF), signed in or not.
struct JSONWritesMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Every method that can write, on every path: the router also matches "//api/..." and no
        // route outside /api writes.
        guard ![.get, .head, .options].contains(request.method) else { return try await next(request, context) }
        let contentType = request.headers[.contentType]
        guard contentType?.lowercased().hasPrefix("application/json") == true || SessionBook.isDashboardRequest(request) else {
            return Reply.failure(
                .unsupportedMediaType, code: "invalid",
                "\(request.method) \(request.uri.path): a write must send a JSON body with Content-Type: application/json (got \(contentType ?? "no Content-Type"))")
        }
        return try await next(request, context)
    }
}

/// DNS rebinding: a page on another site whose name is made to resolve to 127.0.0.1 would be
/// same-origin with this server and could read patients' data. Its requests carry that other name
/// in `Host`, so on a loopback or Unix-socket address only this machine's own names are answered.
/// Refuses requests that name another host than this machine's (a DNS rebinding page in a local
/// browser): the daemon's API and the central view (CentralWeb) on a loopback address.
public struct LocalHostOnlyMiddleware: RouterMiddleware {
    public typealias Context = BasicRequestContext
    static let localNames: Set<String> = ["127.0.0.1", "localhost", "::1", "apheresisd"]

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = Self.refusal(request) { return refusal }
        return try await next(request, context)
    }

    /// 421 for a request naming another host; nil for this machine's own names.
    static func refusal(_ request: Request) -> Response? {
        guard let host = request.head.authority, !isLocal(host) else { return nil }
        return Reply.failure(
            .misdirectedRequest, code: "not_found",
            "this daemon answers only to its local names (127.0.0.1, localhost, ::1), not to \(host)")
    }

    /// The host without its port, and without the brackets of an IPv6 literal.
    static func isLocal(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("[") {
            name = String(name.dropFirst().prefix { $0 != "]" })
        } else if let colon = name.lastIndex(of: ":"), name.filter({ $0 == ":" }).count == 1 {
            name = String(name[..<colon])
        }
        return localNames.contains(name)
    }
}
