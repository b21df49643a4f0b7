import TextFormats

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A capture: every byte the simulated device sent and received, with the
/// time since the capture started, like the logs gpsfake replays.
///
///     optia-sim-capture 1
///     # free-text comment lines (scenario, seed, transport)
///     <seconds> > <hex>     bytes from the device to the host
///     <seconds> < <hex>     bytes from the host to the device
public struct Capture: Equatable, Sendable {
    public enum Direction: String, Sendable {
        case deviceToHost = ">"
        case hostToDevice = "<"
    }

    public struct Chunk: Equatable, Sendable {
        public var time: Double
        public var direction: Direction
        public var bytes: [UInt8]
        public init(time: Double, direction: Direction, bytes: [UInt8]) {
            self.time = time
            self.direction = direction
            self.bytes = bytes
        }
    }

    public var comments: [String]
    public var chunks: [Chunk]

    public init(comments: [String] = [], chunks: [Chunk] = []) {
        self.comments = comments
        self.chunks = chunks
    }

    /// The device's bytes only, in order: what a host received.
    public var deviceBytes: [UInt8] { chunks.filter { $0.direction == .deviceToHost }.flatMap(\.bytes) }

    public static func parse(_ text: String, source: String) throws(CaptureError) -> Capture {
        var capture = Capture()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            if number == 1 {
                guard line == "optia-sim-capture 1" else {
                    throw CaptureError(source: source, line: 1, reason: "not a capture (expected 'optia-sim-capture 1')")
                }
                continue
            }
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                capture.comments.append(String(line.dropFirst().drop(while: { $0 == " " })))
                continue
            }
            let parts = line.split(separator: " ")
            guard parts.count == 3 else {
                throw CaptureError(source: source, line: number, reason: "expected '<seconds> <direction> <hex>'")
            }
            guard let time = Double(parts[0]), time.isFinite, time >= 0 else {
                throw CaptureError(source: source, line: number, reason: "'\(parts[0])' is not a time in seconds")
            }
            guard let direction = Direction(rawValue: String(parts[1])) else {
                throw CaptureError(source: source, line: number, reason: "direction '\(parts[1])' is neither '>' nor '<'")
            }
            guard let bytes = Hex.decode(parts[2]) else {
                throw CaptureError(source: source, line: number, reason: "bytes are not hexadecimal")
            }
            if let last = capture.chunks.last, time < last.time {
                throw CaptureError(source: source, line: number, reason: "time \(time) goes back before \(last.time)")
            }
            capture.chunks.append(Chunk(time: time, direction: direction, bytes: bytes))
        }
        return capture
    }

    public static func load(path: String) throws(CaptureError) -> Capture {
        let bytes: [UInt8]
        do { bytes = try readWholeFile(path) } catch { throw CaptureError(source: path, line: nil, reason: error.description) }
        return try parse(String(decoding: bytes, as: UTF8.self), source: path)
    }
}

public struct CaptureError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var reason: String
    public var description: String {
        if let line { return "capture \(source), line \(line): \(reason)" }
        return "capture \(source): \(reason)"
    }
}

/// Appends chunks to a capture file as they happen (one write per chunk, so
/// a killed simulator leaves a capture complete up to its last chunk).
public final class CaptureWriter {
    private let fd: Int32
    private let start: ContinuousClock.Instant

    public init(path: String, comments: [String]) throws(CaptureError) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CaptureError(source: path, line: nil, reason: SystemErrorText.current("open")) }
        start = .now
        var header = "optia-sim-capture 1\n"
        for comment in comments { header += "# \(comment)\n" }
        _ = writeFully(fd, Array(header.utf8))
    }

    deinit { close(fd) }

    public func record(_ direction: Capture.Direction, _ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        let line = "\(formatSeconds(seconds)) \(direction.rawValue) \(Hex.encode(bytes))\n"
        _ = writeFully(fd, Array(line.utf8))
    }

    private func formatSeconds(_ s: Double) -> String {
        let micros = Int64((s * 1e6).rounded())
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }
}
