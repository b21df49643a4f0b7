#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SeparatorProtocol

/// The byte stream the decode benchmarks and `scripts/bench/astm_anchor.py` both read: the
/// messages of the shipped simulator captures, framed again without wire faults (each
/// capture's own framing mode, ENQ ... EOT per message) and repeated to about 1 MB.
/// Re-framed because the faults capture holds bad checksums and noise, which the anchor
/// codec would reject and which are no decode work.
public struct DecodeStream: Sendable {
    public var bytes: [UInt8]
    /// What the device sends before it waits for an answer: ENQ, one frame, EOT.
    /// Fed to the receiver one at a time, as a link delivers them.
    public var turns: [Range<Int>]
    public var messageCount: Int

    /// The repository root, found from this file's place in it (Benchmarks/Sources/BenchSupport).
    public static let repositoryRoot: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }()

    /// `APHERESISD_BENCH_STREAM`, or `.build-bench/decode-stream.bin` in the repository.
    public static var defaultPath: String {
        if let path = getenv("APHERESISD_BENCH_STREAM") { return String(cString: path) }
        return repositoryRoot + "/.build-bench/decode-stream.bin"
    }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
        turns = Self.turns(of: bytes)
        messageCount = 0
        var receiver = E1381Receiver()
        for turn in turns { messageCount += DecodePass.feed(&receiver, bytes[turn]) { _ in } }
    }

    /// Reads the stream file, building and writing it first when it is missing.
    public static func load(path: String = defaultPath) throws -> DecodeStream {
        if let bytes = try? readFile(path) { return DecodeStream(bytes: bytes) }
        let stream = try build()
        try writeFile(path, stream.bytes)
        return stream
    }

    /// Builds the stream from `simulator/captures/*.capture`.
    public static func build(capturesDirectory: String = repositoryRoot + "/simulator/captures", targetSize: Int = 1 << 20) throws
        -> DecodeStream
    {
        var once: [UInt8] = []
        for name in ["short-record-per-frame", "short-faults"] {
            let base = capturesDirectory + "/" + name
            let capture = try String(decoding: readFile(base + ".capture"), as: UTF8.self)
            let scenario = try String(decoding: readFile(base + ".toml"), as: UTF8.self)
            let mode: FramingMode = scenario.contains("framing = \"recordPerFrame\"") ? .recordPerFrame : .wholeMessage
            for message in messages(inDeviceBytes: deviceBytes(ofCapture: capture)) {
                once.append(ASCIIControl.enq)
                for frame in E1381Framer.frames(forMessage: message, mode: mode, firstFrameNumber: 1) {
                    once.append(contentsOf: frame)
                }
                once.append(ASCIIControl.eot)
            }
        }
        guard !once.isEmpty else { throw BenchError("no messages in \(capturesDirectory)") }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(targetSize + once.count)
        while bytes.count < targetSize { bytes.append(contentsOf: once) }
        return DecodeStream(bytes: bytes)
    }

    /// The text of the first message of this kind (`TICK`, ...) in the stream.
    public static func firstMessage(ofKind kind: String, in stream: DecodeStream) -> [UInt8]? {
        var receiver = E1381Receiver()
        var found: [UInt8]?
        for turn in stream.turns where found == nil {
            _ = DecodePass.feed(&receiver, stream.bytes[turn]) { text in
                if found == nil, (try? E1394Decoder.decode(text))?.kind.rawValue == kind { found = text }
            }
        }
        return found
    }

    /// The `>` (device to host) lines of a capture, concatenated.
    static func deviceBytes(ofCapture text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[1] == ">" else { continue }
            let hex = Array(parts[2].utf8)
            var index = 0
            while index + 1 < hex.count {
                if let byte = E1381.hexValue(hex[index], hex[index + 1]) { bytes.append(byte) }
                index += 2
            }
        }
        return bytes
    }

    /// The messages a receiver accepts from the device's bytes (faulty frames are NAKed and resent).
    static func messages(inDeviceBytes bytes: [UInt8]) -> [[UInt8]] {
        var receiver = E1381Receiver()
        var messages: [[UInt8]] = []
        for turn in turns(of: bytes) { _ = DecodePass.feed(&receiver, bytes[turn]) { messages.append($0) } }
        return messages
    }

    static func turns(of bytes: [UInt8]) -> [Range<Int>] {
        var turns: [Range<Int>] = []
        var index = 0
        while index < bytes.count {
            let start = index
            if bytes[index] == ASCIIControl.stx {
                while index < bytes.count, bytes[index] != ASCIIControl.lf { index += 1 }
            }
            index = min(index + 1, bytes.count)
            turns.append(start..<index)
        }
        return turns
    }
}

/// One pass over the stream, the way the daemon's link drives the receiver.
public enum DecodePass {
    /// Feeds one turn; each complete message goes to `body` and is then reported stored, so the
    /// receiver answers its last frame and accepts the next ENQ. Returns the messages completed.
    @inline(__always)
    public static func feed(_ receiver: inout E1381Receiver, _ turn: ArraySlice<UInt8>, _ body: ([UInt8]) -> Void) -> Int {
        var completed = 0
        for action in receiver.receive(turn, now: .zero) {
            if case .messageReceived(let text) = action {
                body(text)
                completed += 1
                _ = receiver.messageStored(now: .zero)
            }
        }
        return completed
    }

    /// E1381 alone: frames checked and joined into message texts. Returns the message bytes.
    public static func framing(_ stream: DecodeStream) -> Int {
        var receiver = E1381Receiver()
        var messageBytes = 0
        for turn in stream.turns {
            _ = feed(&receiver, stream.bytes[turn]) { messageBytes += $0.count }
        }
        return messageBytes
    }

    /// E1381 + E1394: every message decoded to a `SeparatorMessage`. Returns the records decoded;
    /// a message that fails to decode is a broken stream, not a figure.
    public static func decode(_ stream: DecodeStream) -> Int {
        var receiver = E1381Receiver()
        var records = 0
        for turn in stream.turns {
            _ = feed(&receiver, stream.bytes[turn]) { text in
                guard let message = try? E1394Decoder.decode(text) else { fatalError("stream message does not decode") }
                records += message.results.count + message.comments.count
            }
        }
        return records
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public func readFile(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else { throw BenchError("cannot open \(path)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count == 0 { break }
        bytes.append(contentsOf: buffer[0..<count])
    }
    return bytes
}

public func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
    if !directory.isEmpty { mkdir(directory, 0o755) }
    guard let file = fopen(path, "wb") else { throw BenchError("cannot write \(path)") }
    defer { fclose(file) }
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw BenchError("short write to \(path)") }
}
