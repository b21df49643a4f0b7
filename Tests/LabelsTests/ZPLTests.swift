import Foundation
import Glibc
import Labels
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

/// Reads ZPL back: the commands, and field data with ^FH hex escapes and ^BC invocation codes undone.
enum ZPLReader {
    /// Each command as written, from one '^' to the next. Field data cannot contain a raw '^'.
    static func commands(_ zpl: String) -> [Substring] {
        zpl.split(separator: "^", omittingEmptySubsequences: true).map { $0 }
    }

    /// Undoes `^FH_` escapes (`_` and two hex digits).
    static func unhex(_ data: Substring) throws -> [UInt8] {
        let bytes = Array(data.utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "_") {
                let hex = try #require(index + 2 < bytes.count ? String(decoding: bytes[index + 1...index + 2], as: UTF8.self) : nil)
                out.append(try #require(UInt8(hex, radix: 16)))
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }

    /// What a scanner reads from `^BC` field data (no FNC characters expected).
    static func barcodeText(_ data: [UInt8]) throws -> String {
        enum Subset { case a, b, c }
        var subset = Subset.b
        var out: [UInt8] = []
        var index = 0
        func digit(_ byte: UInt8) throws -> Int {
            let value = Int(byte) - 0x30
            try #require((0...9).contains(value))
            return value
        }
        while index < data.count {
            if data[index] == UInt8(ascii: ">") {
                try #require(index + 1 < data.count)
                switch data[index + 1] {
                case UInt8(ascii: "9"), UInt8(ascii: "7"): subset = .a
                case UInt8(ascii: ":"), UInt8(ascii: "6"): subset = .b
                case UInt8(ascii: ";"), UInt8(ascii: "5"): subset = .c
                case UInt8(ascii: "<"): out.append(UInt8(ascii: ">"))
                case UInt8(ascii: "="): out.append(UInt8(ascii: "~"))
                case UInt8(ascii: "1"): out.append(0x7F)
                default: Issue.record("unexpected invocation >\(UnicodeScalar(data[index + 1]))")
                }
                index += 2
                continue
            }
            switch subset {
            case .b:
                out.append(data[index])
                index += 1
            case .a, .c:
                try #require(index + 1 < data.count)
                let value = try digit(data[index]) * 10 + digit(data[index + 1])
                if subset == .c {
                    out += [data[index], data[index + 1]]
                } else {
                    out.append(UInt8(value < 64 ? value + 32 : value - 64))
                }
                index += 2
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The `^FD` data of every field that follows `command` (e.g. "BC", "A0").
    static func fields(after command: String, in zpl: String) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        var armed = false
        for token in commands(zpl) {
            if token.hasPrefix(command) { armed = true }
            if token.hasPrefix("FD"), armed {
                result.append(try unhex(token.dropFirst(2)))
                armed = false
            }
        }
        return result
    }
}

@Suite("ZPL rendering and raw TCP printing")
struct ZPLTests {
    static let knownCommands: Set<String> = ["XA", "CI", "PW", "LL", "LH", "FO", "A0", "FH", "FD", "FS", "BY", "BC", "GB", "PQ", "XZ"]

    @Test("the printer port receives exactly the rendered label")
    func sendsLabel() async throws {
        let printer = try await TestPrinter()
        let layout = try LabelLayout(content: Sample.content)
        let zpl = ZPL.render(layout, copies: 2)
        try await LabelPrinter.send(zpl, host: "127.0.0.1", port: printer.port)
        let received = try await printer.received.get()
        await printer.close()

        #expect(received == Array(zpl.utf8))
        #expect(zpl.hasPrefix("^XA"))
        #expect(zpl.hasSuffix("^XZ"))
        #expect(zpl.contains("^CI28"))
        #expect(zpl.contains("^PW812\n^LL812"))
        #expect(zpl.contains("^PQ2"))
    }

    @Test("each ^BC field carries its data structure", arguments: PrinterResolution.allCases)
    func barcodeFields(resolution: PrinterResolution) throws {
        let layout = try LabelLayout(content: Sample.content, stock: Sample.stock(resolution))
        let zpl = ZPL.render(layout)
        let decoded = try ZPLReader.fields(after: "BC", in: zpl).map(ZPLReader.barcodeText)
        #expect(decoded == layout.barcodes.map(\.data))
        #expect(Set(decoded) == [
            Sample.content.din.dataStructure, Sample.content.productCode.dataStructure,
            Sample.content.collection.dataStructure, Sample.content.expiration.dataStructure,
        ])
        // The expiry's '>' is written "><", subset B is started explicitly, no interpretation line.
        #expect(zpl.contains("^FD>:&><"))
        #expect(zpl.components(separatedBy: ",N,N,N,N^FH_^FD>").count == 5)
        let moduleDots = resolution == .dpi203 ? 2 : 3
        #expect(zpl.components(separatedBy: "^BY\(moduleDots)^BCN,").count == 5)
    }

    @Test("a patient name cannot inject ZPL commands")
    func injection() throws {
        let hostile = "DOE^XZ~JA^XA^FO0,0^FDX_41"
        let layout = try LabelLayout(content: Sample.content { $0.patientName = hostile })
        let zpl = ZPL.render(layout)
        #expect(zpl.components(separatedBy: "^XA").count == 2)
        #expect(zpl.components(separatedBy: "^XZ").count == 2)
        #expect(zpl.hasSuffix("^XZ"))
        #expect(!zpl.contains("~"))
        for command in ZPLReader.commands(zpl) {
            let name = String(command.prefix(2))
            #expect(Self.knownCommands.contains(name), "unexpected command ^\(command)")
        }
        let texts = try ZPLReader.fields(after: "A0", in: zpl).map { String(decoding: $0, as: UTF8.self) }
        #expect(texts.contains { $0.contains(hostile) })
    }

    @Test("text keeps UTF-8 and escapes the ^FH escape character itself")
    func textEscapes() throws {
        let layout = try LabelLayout(content: Sample.content { $0.patientID = "ID_42 ~ ^ Ø" })
        let zpl = ZPL.render(layout)
        #expect(zpl.contains("ID: ID_5F42 _7E _5E Ø"))
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
            try await LabelPrinter.send("^XA^XZ", host: "printer.invalid", connectTimeout: .seconds(3))
        }
        #expect(error.description.contains("printer.invalid:9100"))
    }
}
