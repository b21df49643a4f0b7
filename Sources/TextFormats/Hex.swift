/// Hexadecimal text as this project writes and reads it outside the wire protocols: lower-case
/// digits, leading zeros kept, either case read back. One rule, because hex written one way and
/// compared another (upper case, a dropped leading zero) quietly never matches: record digests,
/// the simulator's outbox and captures, USB vendor:product ids, /proc/locks device numbers.
/// The E1381 checksum and the E1394 and ZPL escapes are protocol (upper case) and keep their own.
public enum Hex {
    private static let lowerDigits = Array("0123456789abcdef".utf8)

    /// Two lower-case digits a byte: `[0x00, 0x0f, 0xa0]` is `"000fa0"`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(lowerDigits[Int(byte >> 4)])
            text.append(lowerDigits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes of two digits each, either case; nil for an odd count or anything not a hex digit.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    /// `value` in lower-case digits, zero-padded to at least `width`: `digits(0x403, width: 4)` is `"0403"`.
    public static func digits(_ value: some UnsignedInteger, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// The value of exactly `width` hex digits, either case; nil for another length, a sign
    /// (which `UInt16(_:radix:)` would take) or a value too large for `T`.
    public static func value<T: FixedWidthInteger & UnsignedInteger>(
        _ text: some StringProtocol, width: Int, as type: T.Type = T.self
    ) -> T? {
        let digits = Array(text.utf8)
        guard digits.count == width else { return nil }
        var value: T = 0
        for digit in digits {
            guard let n = nibble(digit) else { return nil }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 16)
            guard !overflow else { return nil }
            value = shifted | T(n)
        }
        return value
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
