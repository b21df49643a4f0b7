import Glibc
@testable import LabelPrinting
import NIOCore
import NIOPosix
import Testing

/// A raw "printer port" on 127.0.0.1: accepts one connection and hands back everything
/// received once the client has finished (the server closes when it reads end of file).
final class TestPrinter: Sendable {
    let channel: any Channel
    let promise: EventLoopPromise<[UInt8]>
    var received: EventLoopFuture<[UInt8]> { promise.futureResult }

    var port: Int { channel.localAddress?.port ?? 0 }

    init() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [UInt8].self)
        self.promise = promise
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(Collector(promise: promise))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    func close() async {
        try? await channel.close()
        // Nobody may have connected; a NIO promise must not be left unfulfilled (the first result wins).
        promise.fail(ChannelError.ioOnClosedChannel)
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<[UInt8]>
        var bytes: [UInt8] = []

        init(promise: EventLoopPromise<[UInt8]>) { self.promise = promise }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.succeed(bytes)
            context.fireChannelInactive()
        }
    }
}

@Suite("Raw TCP label printing")
struct LabelPrinterTests {
    @Test("the printer port receives exactly the bytes sent, however many")
    func sendsLabel() async throws {
        let printer = try await TestPrinter()
        // Larger than a socket buffer, with UTF-8 as ^CI28 labels carry it.
        let zpl = "^XA^CI28\n" + String(repeating: "^FO50,50^A0N,30,30^FDMÜLLER, Anna^FS\n", count: 5000) + "^PQ2\n^XZ"
        try await LabelPrinter.send(zpl, host: "127.0.0.1", port: printer.port)
        let received = try await printer.received.get()
        await printer.close()
        #expect(received == Array(zpl.utf8))
    }

    @Test("a refused connection names host:port")
    func refused() async throws {
        // A port bound but never listened on, and held until the end: connecting is refused, and no
        // other test can take the port meanwhile (closing a port and reusing its number raced with
        // parallel tests that bind port 0).
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let error = try await #require(throws: LabelPrinterError.self) {
            try await LabelPrinter.send("^XA^XZ", host: "127.0.0.1", port: port)
        }
        #expect(error.stage == .connect)
        #expect(error.description.contains("127.0.0.1:\(port)"))
        #expect(error.description.lowercased().contains("refused"))
    }

    @Test("an unresolvable printer host names host:port")
    func unresolvable() async throws {
        let error = try await #require(throws: LabelPrinterError.self) {
            try await LabelPrinter.send("^XA^XZ", host: "printer.invalid", port: 9100, connectTimeout: .seconds(3))
        }
        #expect(error.description.contains("printer.invalid:9100"))
    }

    @Test("an IPv6 printer is named in brackets")
    func ipv6Endpoint() {
        let error = LabelPrinterError(host: "fe80::1", port: 9100, stage: .connect, reason: "no route to host")
        #expect(error.description == "label printer [fe80::1]:9100: could not connect: no route to host")
    }
}
