/// The control bytes ASTM E1381 uses on the wire.
public enum ASCIIControl: Sendable {
    public static let stx: UInt8 = 0x02
    public static let etx: UInt8 = 0x03
    public static let eot: UInt8 = 0x04
    public static let enq: UInt8 = 0x05
    public static let ack: UInt8 = 0x06
    public static let lf: UInt8 = 0x0A
    public static let cr: UInt8 = 0x0D
    public static let dle: UInt8 = 0x10
    public static let dc1: UInt8 = 0x11
    public static let dc2: UInt8 = 0x12
    public static let dc3: UInt8 = 0x13
    public static let dc4: UInt8 = 0x14
    public static let nak: UInt8 = 0x15
    public static let syn: UInt8 = 0x16
    public static let etb: UInt8 = 0x17

    /// Bytes that never appear in frame text (separator-interface.md, section 2).
    public static let forbiddenInText: Set<UInt8> = [stx, etx, eot, enq, ack, nak, etb, lf, dle, syn, dc1, dc2, dc3, dc4]

    /// Same test as `forbiddenInText.contains`, without hashing: it runs once per received byte.
    @inline(__always)
    public static func isForbiddenInText(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x02...0x06, 0x0A, 0x10...0x17: true
        default: false
        }
    }
}

/// ASTM E1381 helpers shared by the sender and the receiver.
public enum E1381: Sendable {
    /// Longest frame text the interface allows.
    public static let maxTextLength = 240

    /// Sum of the bytes modulo 256; callers pass FN through ETB/ETX.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt8 {
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        return sum
    }

    /// The same sum over a buffer: a plain loop the compiler vectorises (the receiver's per-frame check).
    static func checksum(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt8 {
        var sum: UInt8 = 0
        for byte in bytes { sum &+= byte }
        return sum
    }

    /// The two upper-case hex digits of a checksum, as C1 C2 carry them.
    public static func hexDigits(_ value: UInt8) -> (high: UInt8, low: UInt8) {
        (hexDigit(value >> 4), hexDigit(value & 0x0F))
    }

    /// `"BF"` for 0xBF.
    public static func hexString(_ value: UInt8) -> String {
        let digits = hexDigits(value)
        return String(decoding: [digits.high, digits.low], as: UTF8.self)
    }

    /// The value of two hex digits; lower case is accepted because some senders use it.
    public static func hexValue(_ high: UInt8, _ low: UInt8) -> UInt8? {
        guard let h = nibble(high), let l = nibble(low) else { return nil }
        return h << 4 | l
    }

    /// A complete frame: `STX FN text ETB|ETX C1 C2 CR LF`.
    public static func frame(number: Int, text: some Collection<UInt8>, isFinal: Bool) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(text.count + 7)
        frame.append(ASCIIControl.stx)
        frame.append(0x30 + UInt8(((number % 8) + 8) % 8))
        frame.append(contentsOf: text)
        frame.append(isFinal ? ASCIIControl.etx : ASCIIControl.etb)
        let digits = hexDigits(checksum(frame[1...]))
        frame.append(digits.high)
        frame.append(digits.low)
        frame.append(ASCIIControl.cr)
        frame.append(ASCIIControl.lf)
        return frame
    }

    @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x41 + nibble - 10 }

    @inline(__always)
    static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: digit - 0x30
        case 0x41...0x46: digit - 0x41 + 10
        case 0x61...0x66: digit - 0x61 + 10
        default: nil
        }
    }
}

/// How a sender cuts a message into frames; the receiver accepts both.
public enum FramingMode: String, Hashable, Sendable, CaseIterable {
    /// The whole message text cut every `maxTextLength` bytes: ETB between, ETX at the end.
    case wholeMessage
    /// Each record in its own frame ending ETX; ETB only inside a record longer than `maxTextLength`.
    case recordPerFrame
}

public enum E1381Framer: Sendable {
    /// Complete frames for one message. Frame numbers start at `firstFrameNumber` and wrap mod 8.
    /// An empty text still yields one (empty) ETX frame, so every message has a last frame to answer.
    public static func frames(
        forMessage text: [UInt8], mode: FramingMode, firstFrameNumber: Int, maxTextLength: Int = E1381.maxTextLength
    ) -> [[UInt8]] {
        let limit = max(1, maxTextLength)
        var frames: [[UInt8]] = []
        var number = firstFrameNumber

        func cut(_ range: Range<Int>) {
            var start = range.lowerBound
            repeat {
                let end = min(start + limit, range.upperBound)
                frames.append(E1381.frame(number: number, text: text[start..<end], isFinal: end == range.upperBound))
                number += 1
                start = end
            } while start < range.upperBound
        }

        switch mode {
        case .wholeMessage:
            cut(0..<text.count)
        case .recordPerFrame:
            var start = 0
            while start < text.count {
                var end = start
                while end < text.count, text[end] != ASCIIControl.cr { end += 1 }
                end = min(end + 1, text.count)  // the CR belongs to its record
                cut(start..<end)
                start = end
            }
            if text.isEmpty { cut(0..<0) }
        }
        return frames
    }
}
