/// The four E1394 delimiters, declared by the H record's first five bytes (`H|\^&`).
public struct Delimiters: Hashable, Sendable {
    public var field: UInt8
    public var `repeat`: UInt8
    public var component: UInt8
    public var escape: UInt8

    public init(field: UInt8, repeat: UInt8, component: UInt8, escape: UInt8) {
        self.field = field
        self.repeat = `repeat`
        self.component = component
        self.escape = escape
    }

    /// `|`, `\`, `^`, `&`.
    public static let standard = Delimiters(
        field: UInt8(ascii: "|"), repeat: UInt8(ascii: "\\"), component: UInt8(ascii: "^"), escape: UInt8(ascii: "&"))

    /// Delimiters must be four distinct printable punctuation bytes, or records cannot be split.
    public var isValid: Bool {
        // Compared pair by pair: checked once per message, where a Set would allocate.
        let distinct =
            field != self.repeat && field != component && field != escape
            && self.repeat != component && self.repeat != escape && component != escape
        return distinct && Self.isPunctuation(field) && Self.isPunctuation(self.repeat)
            && Self.isPunctuation(component) && Self.isPunctuation(escape)
    }

    static func isPunctuation(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x21...0x2F, 0x3A...0x40, 0x5B...0x60, 0x7B...0x7E: true
        default: false
        }
    }
}

/// Why an escaped value could not be read.
public enum EscapeError: Error, Hashable, Sendable {
    /// `sequence` is what stood between the escape delimiters.
    case unknownSequence(String)
    case unterminated
    case invalidUTF8
}

/// Reads a message by index ranges: records and fields are `Range<Int>` into `bytes`,
/// so splitting allocates one range array per record, never a string per field.
public struct E1394RecordReader: Sendable {
    public let bytes: [UInt8]
    public var delimiters: Delimiters

    public init(bytes: [UInt8], delimiters: Delimiters = .standard) {
        self.bytes = bytes
        self.delimiters = delimiters
    }

    /// Records without their CR. A last record without CR counts; the empty tail after a final CR does not.
    public func recordRanges() -> [Range<Int>] {
        bytes.withUnsafeBufferPointer { bytes in
            var ranges: [Range<Int>] = []
            // Counted first (a wrapping count, which the compiler vectorises), so that the array
            // is allocated once rather than grown record by record.
            var crCount = 0
            for byte in bytes where byte == ASCIIControl.cr { crCount &+= 1 }
            ranges.reserveCapacity(crCount + 1)
            var start = 0
            for index in bytes.indices where bytes[index] == ASCIIControl.cr {
                ranges.append(start..<index)
                start = index + 1
            }
            if start < bytes.count { ranges.append(start..<bytes.count) }
            return ranges
        }
    }

    /// Field ranges of a record; element 0 is field 1 (the record type).
    public func fieldRanges(in record: Range<Int>) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        split(record, at: delimiters.field, into: &ranges)
        return ranges
    }

    /// `fieldRanges(in:)` into `ranges`, reusing its storage: the decoder splits every record
    /// into the same array instead of allocating one per record.
    func fieldRanges(in record: Range<Int>, into ranges: inout [Range<Int>]) {
        split(record, at: delimiters.field, into: &ranges)
    }

    /// Component ranges of a field (a single range when it has no component delimiter).
    public func componentRanges(in field: Range<Int>) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        split(field, at: delimiters.component, into: &ranges)
        return ranges
    }

    /// The last of exactly four components (`^^^CODE`, `^^^CMNC`), or nil for any other count.
    /// Same answer as `componentRanges(in:)` with a count of 4, without the array.
    func fourthComponent(of field: Range<Int>) -> Range<Int>? {
        let field = clamped(field)
        let component = delimiters.component
        var delimiterCount = 0
        var start = field.lowerBound
        bytes.withUnsafeBufferPointer { bytes in
            for index in field where bytes[index] == component {
                delimiterCount += 1
                start = index + 1
            }
        }
        return delimiterCount == 3 ? start..<field.upperBound : nil
    }

    /// Whether the range holds exactly these ASCII bytes.
    public func matches(_ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { literalBytes in
            var i = range.lowerBound
            for byte in literalBytes {
                if bytes[i] != byte { return false }
                i += 1
            }
            return true
        }
    }

    /// The raw bytes as a string (invalid UTF-8 repaired); for error messages and raw fields.
    public func raw(_ range: Range<Int>) -> String {
        String(decoding: bytes[clamped(range)], as: UTF8.self)
    }

    /// The value with escapes (`&F&`, `&S&`, `&R&`, `&E&`, `&Xhh..&`) resolved.
    /// Any other sequence, a lone escape delimiter, or invalid UTF-8 is an error:
    /// guessing would store a value the device never meant.
    public func text(_ range: Range<Int>) throws(EscapeError) -> String {
        let range = clamped(range)
        // Nearly every value is ASCII without escapes. ASCII is valid UTF-8, so it needs none of
        // `String(validating:)`'s work (generic, and the larger part of decoding a record).
        let escape = delimiters.escape
        let plainASCII: String? = bytes.withUnsafeBufferPointer { buffer in
            let value = UnsafeBufferPointer(rebasing: buffer[range])
            return value.allSatisfy { $0 < 0x80 && $0 != escape } ? String(decoding: value, as: UTF8.self) : nil
        }
        if let plainASCII { return plainASCII }
        let slice = bytes[range]
        if !slice.contains(delimiters.escape) {
            guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidUTF8 }
            return string
        }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            guard byte == delimiters.escape else {
                out.append(byte)
                index += 1
                continue
            }
            var end = index + 1
            while end < range.upperBound, bytes[end] != delimiters.escape { end += 1 }
            guard end < range.upperBound else { throw .unterminated }
            let sequence = bytes[(index + 1)..<end]
            if sequence.count == 1, let first = sequence.first {
                switch first {
                case UInt8(ascii: "F"): out.append(delimiters.field)
                case UInt8(ascii: "S"): out.append(delimiters.component)
                case UInt8(ascii: "R"): out.append(delimiters.repeat)
                case UInt8(ascii: "E"): out.append(delimiters.escape)
                default: throw .unknownSequence(String(decoding: sequence, as: UTF8.self))
                }
            } else if let hex = Self.hexBytes(sequence) {
                out.append(contentsOf: hex)
            } else {
                throw .unknownSequence(String(decoding: sequence, as: UTF8.self))
            }
            index = end + 1
        }
        guard let string = String(validating: out, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    /// `Xhh..`: pairs of hex digits, at least one pair.
    private static func hexBytes(_ sequence: ArraySlice<UInt8>) -> [UInt8]? {
        guard sequence.first == UInt8(ascii: "X"), sequence.count >= 3, (sequence.count - 1) % 2 == 0 else { return nil }
        var result: [UInt8] = []
        var index = sequence.startIndex + 1
        while index < sequence.endIndex {
            guard let value = E1381.hexValue(sequence[index], sequence[index + 1]) else { return nil }
            result.append(value)
            index += 2
        }
        return result
    }

    private func split(_ range: Range<Int>, at delimiter: UInt8, into ranges: inout [Range<Int>]) {
        let range = clamped(range)
        ranges.removeAll(keepingCapacity: true)
        var start = range.lowerBound
        // The hottest loop of decoding: on the buffer, without a bounds check per byte.
        bytes.withUnsafeBufferPointer { bytes in
            for index in range where bytes[index] == delimiter {
                ranges.append(start..<index)
                start = index + 1
            }
        }
        ranges.append(start..<range.upperBound)
    }

    private func clamped(_ range: Range<Int>) -> Range<Int> { range.clamped(to: 0..<bytes.count) }
}

/// Writes escaped values; the counterpart of `E1394RecordReader.text(_:)`.
enum E1394Escaper {
    /// Delimiters become `&F&` `&S&` `&R&` `&E&`; control bytes, which would break
    /// records and frames, become `&Xhh&`.
    static func append(_ value: String, to out: inout [UInt8], delimiters: Delimiters) {
        for byte in value.utf8 {
            switch byte {
            case delimiters.field: appendEscape(UInt8(ascii: "F"), to: &out, delimiters)
            case delimiters.component: appendEscape(UInt8(ascii: "S"), to: &out, delimiters)
            case delimiters.repeat: appendEscape(UInt8(ascii: "R"), to: &out, delimiters)
            case delimiters.escape: appendEscape(UInt8(ascii: "E"), to: &out, delimiters)
            case 0x00..<0x20, 0x7F:
                let digits = E1381.hexDigits(byte)
                out.append(contentsOf: [delimiters.escape, UInt8(ascii: "X"), digits.high, digits.low, delimiters.escape])
            default: out.append(byte)
            }
        }
    }

    private static func appendEscape(_ letter: UInt8, to out: inout [UInt8], _ delimiters: Delimiters) {
        out.append(contentsOf: [delimiters.escape, letter, delimiters.escape])
    }
}
