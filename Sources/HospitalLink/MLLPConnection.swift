import ConnectionErrorText
import HL7
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS


/// Why an exchange with the receiver did not give an answer. Each names what happened in words
/// an interface analyst can act on.
public enum MLLPExchangeError: Error, Hashable, Sendable, CustomStringConvertible {
    case connect(String)
    case noAnswer(seconds: Double)
    case closed
    case oversizedAnswer(length: Int)
    case busy

    public var description: String {
        switch self {
        case .connect(let reason): "cannot connect: \(reason)"
        case .noAnswer(let seconds): "no acknowledgement within \(seconds) s"
        case .closed: "the receiver closed the connection before answering"
        case .oversizedAnswer(let length): "the receiver's answer was \(length) bytes, more than an acknowledgement can be"
        case .busy: "a message was sent while another waited for its answer"
        }
    }
}

/// Asks the exchange handler to say when the connection can carry messages: at once on plain TCP,
/// after the TLS handshake otherwise (a TCP connection a TLS handshake then fails on is not "up").
struct MLLPReadyRequest: Sendable {
    var promise: EventLoopPromise<Void>
}

/// One message out and its answer back, as the exchange handler takes it.
struct MLLPExchange: Sendable {
    var frame: [UInt8]
    var answer: EventLoopPromise<[UInt8]>
}

/// Stop-and-wait over one connection: writes a framed message and completes its promise with the
/// next whole MLLP frame the receiver sends, or fails it when the acknowledgement timeout passes,
/// the connection closes, or the answer is too long. Runs on the channel's event loop.
final class MLLPExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = MLLPExchange
    typealias OutboundOut = ByteBuffer

    private var decoder = MLLPDecoder(maximumLength: 64 * 1024)
    private var waiting: EventLoopPromise<[UInt8]>?
    private var timeout: Scheduled<Void>?
    private let answerTimeout: TimeAmount
    /// Frames that arrived with no message waiting (a receiver's late or extra answer): ignored.
    private(set) var strayAnswers = 0
    private let expectsTLS: Bool
    private var ready = false
    private var readyWaiter: EventLoopPromise<Void>?
    private var failure: (any Error)?

    init(answerTimeout: TimeAmount, expectsTLS: Bool) {
        self.answerTimeout = answerTimeout
        self.expectsTLS = expectsTLS
    }

    func channelActive(context: ChannelHandlerContext) {
        if !expectsTLS { markReady() }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let request = event as? MLLPReadyRequest {
            if ready {
                request.promise.succeed()
            } else if let failure {
                request.promise.fail(failure)
            } else {
                readyWaiter = request.promise
            }
            return
        }
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls { markReady() }
        context.fireUserInboundEventTriggered(event)
    }

    private func markReady() {
        ready = true
        readyWaiter?.succeed()
        readyWaiter = nil
    }

    private func notReady(_ error: any Error) {
        if failure == nil { failure = error }
        readyWaiter?.fail(error)
        readyWaiter = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard waiting == nil else {
            exchange.answer.fail(MLLPExchangeError.busy)
            promise?.fail(MLLPExchangeError.busy)
            return
        }
        waiting = exchange.answer
        let seconds = Double(answerTimeout.nanoseconds) / 1e9
        let channel = context.channel
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: answerTimeout) { [weak self] in
            self?.finish(.failure(MLLPExchangeError.noAnswer(seconds: seconds)))
            // A late answer must never be taken for the next message's: the connection goes.
            channel.close(promise: nil)
        }
        var buffer = context.channel.allocator.buffer(capacity: exchange.frame.count)
        buffer.writeBytes(exchange.frame)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        for output in decoder.feed(bytes) {
            switch output {
            case .message(let answer):
                if waiting != nil {
                    finish(.success(answer))
                } else {
                    strayAnswers += 1
                }
            case .oversized(let length):
                finish(.failure(MLLPExchangeError.oversizedAnswer(length: length)))
                context.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        notReady(MLLPExchangeError.closed)
        finish(.failure(MLLPExchangeError.closed))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        notReady(error)
        finish(.failure(error))
        context.close(promise: nil)
    }

    private func finish(_ result: Result<[UInt8], any Error>) {
        timeout?.cancel()
        timeout = nil
        guard let promise = waiting else { return }
        waiting = nil
        promise.completeWith(result)
    }
}

/// A connection to one receiver.
struct MLLPConnection: Sendable {
    let channel: any Channel

    static func connect(
        host: String, port: Int, connectTimeout: Duration, answerTimeout: Duration, tls: MLLPTLS? = nil
    ) async throws -> MLLPConnection {
        // The TLS context is made per connection: certificate files replaced on disk are read again.
        let context: NIOSSLContext?
        do {
            context = try tls.map { try $0.context() }
        } catch {
            throw MLLPExchangeError.connect("TLS: \(error)")
        }
        let serverName = tls.flatMap { $0.serverName ?? (MLLPTLS.isIPAddress(host) ? nil : host) }
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(TimeAmount(connectTimeout))
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        MLLPExchangeHandler(answerTimeout: TimeAmount(answerTimeout), expectsTLS: context != nil))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw MLLPExchangeError.connect(ConnectionErrors.reason(error, timeout: connectTimeout))
        }
        // Up only once it can carry a message: after the TLS handshake, within the connect timeout.
        let ready = channel.eventLoop.makePromise(of: Void.self)
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(connectTimeout)) {
            ready.fail(MLLPExchangeError.connect("the TLS handshake did not finish within \(connectTimeout)"))
        }
        channel.pipeline.fireUserInboundEventTriggered(MLLPReadyRequest(promise: ready))
        do {
            // A daemon stopping does not wait for a handshake: closing fails the wait at once.
            try await withTaskCancellationHandler {
                try await ready.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            deadline.cancel()
        } catch {
            deadline.cancel()
            try? await channel.close()
            if let error = error as? MLLPExchangeError { throw error }
            throw MLLPExchangeError.connect(ConnectionErrors.describe(error))
        }
        return MLLPConnection(channel: channel)
    }

    /// Sends one message and returns the receiver's answer (a whole MLLP frame's content).
    /// Cancelled (the daemon stopping), the connection is closed, which ends the wait at once: the
    /// message stays pending and goes again, with its control id, at the next start.
    func exchange(_ message: [UInt8]) async throws -> [UInt8] {
        let answer = channel.eventLoop.makePromise(of: [UInt8].self)
        let channel = self.channel
        // A write that fails before the exchange handler took it (the connection closed just now:
        // the pipeline is gone) would otherwise leave the answer waiting for ever.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in answer.fail(error) }
        channel.writeAndFlush(MLLPExchange(frame: MLLP.frame(message), answer: answer), promise: written)
        return try await withTaskCancellationHandler {
            try await answer.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    var isActive: Bool { channel.isActive }

    func close() async {
        try? await channel.close()
    }
}

enum ConnectionErrors {
    static func reason(_ error: any Error, timeout: Duration?) -> String {
        ConnectionErrorText.reason(error, timeout: timeout).lowercased()
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return ConnectionErrorText.describe(error).lowercased() }
        if let error = error as? MLLPExchangeError { return error.description }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            let text = String(describing: error)
            if text.contains("CERTIFICATE_VERIFY_FAILED") { return "TLS: the receiver's certificate is not trusted (\(text))" }
            return "TLS: \(text)"
        }
        return String(describing: error)
    }
}

/// TLS to a receiver: its certificate verified against `caFile` (else the system's trust store) for
/// `serverName` (else the host; an IP address is checked against the certificate's IP addresses),
/// and a client certificate when both files are given.
public struct MLLPTLS: Sendable, Equatable {
    public var caFile: String?
    public var certificateFile: String?
    public var keyFile: String?
    public var serverName: String?

    public init(caFile: String?, certificateFile: String?, keyFile: String?, serverName: String?) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    func context() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile { configuration.trustRoots = .file(caFile) }
        if let certificateFile, let keyFile {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
