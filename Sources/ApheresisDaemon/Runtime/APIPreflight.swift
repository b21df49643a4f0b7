import DaemonConfiguration
import WebEdge
import NIOCore
import NIOPosix

/// The daemon refuses to start, before READY=1: the message says why and what to do, and the
/// exit status says what kind (docs/daemon.md, "Exit status").
public struct DaemonStartRefused: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32
    public var description: String { message }

    /// EX_UNAVAILABLE: the API's address cannot be had (taken by another program, not on this
    /// machine, no permission). Not EX_CONFIG: another instance may still be stopping, so systemd's
    /// Restart=on-failure tries again, a few times, each time with this message.
    public static let apiUnavailableExitCode: Int32 = 69
    /// EX_UNAVAILABLE too: the store is held by another daemon (StoreLock), or its lock file
    /// cannot be made; the other one may be stopping.
    public static let storeUnavailableExitCode: Int32 = 69
    /// EX_CONFIG: something only a person can fix (the audit key); RestartPreventExitStatus=78.
    public static let configurationExitCode: Int32 = 78
}

enum APIPreflight {
    /// Binds the API's TCP address once and lets it go, so that a taken port stops the start with
    /// one plain message instead of a retry every 10 s behind a daemon that says it is ready.
    /// SO_REUSEADDR as the server's own bind: a port left in TIME_WAIT is not "taken".
    static func check(_ listen: APISettings.Listen, group: any EventLoopGroup) async throws(DaemonStartRefused) {
        guard case .tcp(let host, let port) = listen else { return }
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try? await channel.close()
        } catch {
            let address = APIAddress.tcp(host: host, port: port)
            throw DaemonStartRefused(
                message: APIAddress.listenFailure(error, address: address)
                    + "; choose another with [api] listen = \"\(host.contains(":") ? "[\(host)]" : host):PORT\" in the configuration, or --api-listen HOST:PORT",
                exitCode: DaemonStartRefused.apiUnavailableExitCode)
        }
    }
}
