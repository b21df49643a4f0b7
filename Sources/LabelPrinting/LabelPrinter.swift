import ConnectionErrorText
import NIOCore
import NIOPosix
import TextFormats

/// Why a label did not reach the printer; always names the printer as host:port.
public struct LabelPrinterError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Stage: String, Hashable, Sendable {
        case connect = "could not connect"
        case send = "could not send the label"
    }

    public let host: String
    public let port: Int
    public let stage: Stage
    public let reason: String

    /// "host:port", with IPv6 addresses in brackets: `HostAndPort`'s rule.
    public var endpoint: String { HostAndPort(host: host, port: port).description }

    public var description: String { "label printer \(endpoint): \(stage.rawValue): \(reason)" }
}

/// Sends ZPL to a printer's raw TCP port (JetDirect style, usually 9100: the port a written
/// address leaves out is PrinterAddress's business, in WorkflowSettings). Its own module so that
/// Labels stays pure rendering, without SwiftNIO.
///
/// All waiting happens on SwiftNIO's event loops; callers only await, so no thread of the
/// Swift concurrency pool is ever blocked.
public enum LabelPrinter {
    public static func send(
        _ zpl: String, host: String, port: Int,
        connectTimeout: Duration = .seconds(5), sendTimeout: Duration = .seconds(30)
    ) async throws {
        try await send(bytes: Array(zpl.utf8), host: host, port: port, connectTimeout: connectTimeout, sendTimeout: sendTimeout)
    }

    /// Connects, writes `bytes`, half-closes, waits briefly for the printer to close, closes.
    public static func send(
        bytes: [UInt8], host: String, port: Int,
        connectTimeout: Duration = .seconds(5), sendTimeout: Duration = .seconds(30)
    ) async throws {
        func failure(_ stage: LabelPrinterError.Stage, _ reason: String) -> LabelPrinterError {
            LabelPrinterError(host: host, port: port, stage: stage, reason: reason)
        }
        guard (1...65535).contains(port) else { throw failure(.connect, "port must be 1...65535") }

        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(connectTimeout))
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw failure(.connect, reason(error, timeout: connectTimeout))
        }

        let started = ContinuousClock.now
        // A stalled printer must not hold the caller forever: close the channel, which fails the write.
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(sendTimeout)) { channel.close(promise: nil) }
        do {
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            try await channel.writeAndFlush(buffer).get()
        } catch {
            deadline.cancel()
            channel.close(promise: nil)
            let timedOut = ContinuousClock.now - started >= sendTimeout
            throw failure(.send, timedOut ? "timed out after \(sendTimeout)" : reason(error, timeout: nil))
        }
        deadline.cancel()

        // Half-close and let the printer close first: closing outright while a status reply
        // sits unread would reset the connection and could drop the tail of the label.
        let linger = channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        do {
            try await channel.close(mode: .output).get()
        } catch {
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        linger.cancel()
    }

    static func reason(_ error: any Error, timeout: Duration?) -> String { ConnectionErrorText.reason(error, timeout: timeout) }
}
