import Foundation
import Hummingbird
import Logging
import NIOCore
import ProductWorkflow
import ServiceLifecycle
import LiveState

/// Where the API listens.
public enum APIAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unixSocket(path: String)

    /// Reachable from this machine only: a loopback address (127.0.0.0/8, ::1, localhost) or a Unix socket.
    public var isLocalOnly: Bool {
        switch self {
        case .tcp(let host, _): host == "localhost" || host.hasPrefix("127.") || ["::1", "0:0:0:0:0:0:0:1"].contains(host)
        case .unixSocket: true
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
        case .unixSocket(let path): "unix:\(path)"
        }
    }
}

extension APIAddress {
    /// "host:port" or the socket path, as people write it in [api] listen.
    public var plainText: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unixSocket(let path): path
        }
    }

    /// Why the server cannot listen, in plain words: never the name of a Swift or NIO function.
    public static func listenFailure(_ error: any Error, address: APIAddress) -> String {
        let reason: String
        if let io = error as? IOError {
            switch io.errnoCode {
            case EADDRINUSE: reason = "address already in use (another apheresisd or program holds it)"
            case EACCES, EPERM: reason = "permission denied (ports below 1024 need privileges; a socket's directory must be writable)"
            case EADDRNOTAVAIL: reason = "no such address on this machine"
            case ENOENT: reason = "the socket's directory does not exist"
            default: reason = String(cString: strerror(io.errnoCode)).lowercased()
            }
        } else if error is SocketAddressError {
            reason = "the host name cannot be resolved to an address"
        } else {
            reason = "the address cannot be used"
        }
        return "cannot listen on \(address.plainText): \(reason)"
    }
}

/// The HTTP server as a service of the daemon's group: it stops with the daemon (graceful shutdown).
public struct APIServer: Service {
    let application: Application<EdgeResponder>
    let address: APIAddress
    let logger: Logger
    let feed: LiveFeed
    /// Wait before trying to bind again (port taken, socket directory missing).
    static let retryInterval: Duration = .seconds(10)

    public init(
        address: APIAddress, workflow: ProductWorkflow, live: any LiveStatus = NoLiveStatus(),
        metrics: DaemonMetrics = DaemonMetrics(), feed: LiveFeed = LiveFeed(), watches: RunWatchBoard = RunWatchBoard(),
        control: any RunControl = NoRunControl(), sessions: SessionBook = SessionBook(), hl7: HL7LinkBoard = HL7LinkBoard(),
        central: CentralReplicationBoard = CentralReplicationBoard(), logger: Logger, now: @escaping @Sendable () -> Int64 = ProductWorkflow.wallClock
    ) {
        // HEAD on every GET route: the same status and headers, no body (uptime probes use it).
        let router = Router(options: .autoGenerateHeadEndpoints)
        router.add(middleware: DashboardAuthenticationMiddleware())
        router.add(middleware: JSONWritesMiddleware())
        // On a public address the unit chose to be reached by other names (and was warned at start).
        if address.isLocalOnly { router.add(middleware: LocalHostOnlyMiddleware()) }
        DashboardRoute().register(on: router)
        router.get("metrics") { _, _ in
            let store = workflow.store
            // The replication backlog as the store has it now (the replicator may be waiting to reconnect).
            var centralStatus = central.status
            if centralStatus != nil, let backlog = try? await store.replicationState().backlog { centralStatus?.backlog = backlog }
            let text = metrics.render(
                devices: live.devices(), activeAlarms: (try? await store.activeAlarms()) ?? [],
                raisedByCode: (try? await store.alarmRaiseCounts()) ?? [:], storeFailure: live.storeFailure(),
                storeFreeBytes: try? await store.freeBytes(), hl7Queues: (try? await store.hl7Status()) ?? [],
                hl7Links: hl7.destinations, central: centralStatus, monotonicNow: DaemonClock.monotonic,
                storeSizes: try? await store.fileSizes(), process: await ProcessFigures.read())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        // The unit's routes first: the product routes end with the JSON catch-all for /api.
        let units = UnitRoutes(workflow: workflow, live: live, watches: watches, control: control, sessions: sessions, feed: feed, now: now)
        units.register(on: router)
        StreamRoute(units: units, feed: feed).register(on: router)
        self.feed = feed
        SessionRoutes(workflow: workflow, sessions: sessions, now: now).register(on: router)
        HL7Routes(store: workflow.store, board: hl7, monotonicNow: { DaemonClock.monotonic }, wallNow: now).register(on: router)
        CentralStatusRoute(board: central, store: workflow.store, monotonicNow: { DaemonClock.monotonic }).register(on: router)
        OpenAPIRoute().register(on: router)
        APIRoutes(workflow: workflow, sessions: sessions).register(on: router)
        router.get("api") { _, _ in
            Reply.json(["versions": ["/api/v1"]])
        }
        let bind: BindAddress =
            switch address {
            case .tcp(let host, let port): .hostname(host, port: port)
            case .unixSocket(let path): .unixDomainSocket(path: path)
            }
        self.address = address
        self.logger = logger
        application = Application(
            responder: EdgeResponder(router: router, localNamesOnly: address.isLocalOnly, metrics: metrics), configuration: .init(address: bind, serverName: "apheresisd"),
            onServerRunning: { channel in
                // Port 0 asks the kernel for one: say which, so tests and people can find it.
                var local = address.description
                if case .tcp(let host, _) = address, let port = channel.localAddress?.port {
                    local = APIAddress.tcp(host: host, port: port).description
                }
                logger.notice("api: listening on \(local)", metadata: ["api_address": "\(local)"])
            },
            logger: logger)
    }

    /// A failure to listen never stops the daemon: receiving and storing matter more than the API.
    /// It is logged, and the bind is tried again until the daemon stops.
    public func run() async throws {
        while true {
            do {
                // Live streams never end on their own: end them so that the server can stop.
                let feed = self.feed
                try await withGracefulShutdownHandler {
                    try await application.run()
                } onGracefulShutdown: {
                    feed.finishAll()
                }
                return
            } catch {
                logger.error("api: \(APIAddress.listenFailure(error, address: address)); trying again in \(Self.retryInterval)")
            }
            if isShuttingDown { return }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.retryInterval) }
            if isShuttingDown { return }
        }
    }

    private var isShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
