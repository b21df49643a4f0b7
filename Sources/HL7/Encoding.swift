/// HL7 v2 text: the encoding characters this interface always uses (MSH-1 `|`, MSH-2 `^~\&`), the
/// escaping of data that contains them, and numbers and times in the forms HL7 datatypes allow.
public enum HL7Text {
    public static let fieldSeparator: Character = "|"
    public static let encodingCharacters = "^~\\&"
    /// Segments end with a carriage return (HL7 v2.6, 2.5.2).
    public static let segmentTerminator: UInt8 = 0x0D

    /// `text` as field data: the delimiters are escaped (`\F\ \S\ \R\ \T\ \E\`), line breaks become
    /// hex escapes, and other control characters a space, so nothing in a value can end a field,
    /// a component, a repetition or a segment early.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\E\\"
            case "|": out += "\\F\\"
            case "^": out += "\\S\\"
            case "&": out += "\\T\\"
            case "~": out += "\\R\\"
            case "\r": out += "\\X0D\\"
            case "\n": out += "\\X0A\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += " "
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// The reverse of `escape` for the escapes it writes (and `\.br\`); an unknown escape stays as it is.
    public static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "\\") {
            out += rest[..<open]
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "\\") else {
                out += rest[open...]
                return out
            }
            let code = rest[afterOpen..<close]
            switch code {
            case "E": out += "\\"
            case "F": out += "|"
            case "S": out += "^"
            case "T": out += "&"
            case "R": out += "~"
            case ".br": out += "\n"
            default:
                if code.first == "X", code.count > 1, code.count % 2 == 1,
                    let bytes = hexBytes(code.dropFirst()), let decoded = String(validating: bytes, as: UTF8.self)
                {
                    out += decoded
                } else {
                    out += rest[open...close]
                }
            }
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }

    private static func hexBytes(_ hex: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }

    /// Components joined with `^`, each escaped, trailing empty components left out.
    public static func components(_ parts: [String?]) -> String {
        var parts = parts.map { $0.map(escape) ?? "" }
        while let last = parts.last, last.isEmpty { parts.removeLast() }
        return parts.joined(separator: "^")
    }

    /// `value` converted by `factor` (m³ to mL, a fraction to %), without the binary noise the
    /// multiplication adds (35e-6 m³ is 35 mL, not 35.00000000000001): 15 significant digits, more
    /// than any measured value has, so nothing measured is rounded.
    public static func converted(_ value: Double, by factor: Double) -> Double {
        let product = value * factor
        guard product.isFinite, product != 0 else { return product }
        return Double(String(format: "%.15g", product)) ?? product
    }

    /// A number as HL7's NM datatype allows it: optional sign, digits, optional decimal point, never
    /// an exponent. 15 significant digits at most, which drops the binary noise of unit conversions
    /// (2699.9999999999995 mL is 2700 mL) and no digit any measurement has; the receiver rounds for
    /// display. nil for NaN and infinities, which NM cannot carry.
    public static func number(_ value: Double) -> String? {
        guard value.isFinite else { return nil }
        if value == 0 { return "0" }
        let clean = Double(String(format: "%.15g", value)) ?? value
        let shortest = "\(clean)"
        guard let e = shortest.firstIndex(where: { $0 == "e" || $0 == "E" }) else {
            return shortest.hasSuffix(".0") ? String(shortest.dropLast(2)) : shortest
        }
        // Swift writes very small and very large values as d.ddde±x: shift the point instead.
        guard let exponent = Int(shortest[shortest.index(after: e)...]) else { return nil }
        var mantissa = String(shortest[..<e])
        let negative = mantissa.hasPrefix("-")
        if negative { mantissa.removeFirst() }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        let integerDigits = String(parts[0])
        let fractionDigits = parts.count > 1 ? String(parts[1]) : ""
        var digits = integerDigits + fractionDigits
        var point = integerDigits.count + exponent
        if point <= 0 {
            digits = String(repeating: "0", count: 1 - point) + digits
            point = 1
        } else if point > digits.count {
            digits += String(repeating: "0", count: point - digits.count)
        }
        var integerPart = String(digits.prefix(point))
        var fractionPart = String(digits.dropFirst(point))
        while fractionPart.hasSuffix("0") { fractionPart.removeLast() }
        while integerPart.count > 1, integerPart.hasPrefix("0") { integerPart.removeFirst() }
        let body = fractionPart.isEmpty ? integerPart : integerPart + "." + fractionPart
        return negative ? "-" + body : body
    }
}

/// One segment: its id and its fields from field 1 on, each already in HL7 text (escaped and
/// joined by `components`). Trailing empty fields are left out when rendered.
public struct HL7Segment: Hashable, Sendable {
    public var id: String
    public var fields: [String]

    public init(_ id: String, _ fields: [String]) {
        self.id = id
        self.fields = fields
    }

    /// A field at its HL7 position (1-based), filling the fields before it with empties.
    public mutating func set(_ position: Int, _ text: String) {
        precondition(position >= 1, "HL7 fields are numbered from 1")
        while fields.count < position { fields.append("") }
        fields[position - 1] = text
    }

    public var text: String {
        var fields = fields
        while let last = fields.last, last.isEmpty { fields.removeLast() }
        // MSH-1 is the field separator itself: MSH's first field written here is MSH-2.
        return ([id] + fields).joined(separator: String(HL7Text.fieldSeparator))
    }
}

/// A whole message: segments, each ended by a carriage return.
public struct HL7Message: Hashable, Sendable {
    public var segments: [HL7Segment]

    public init(_ segments: [HL7Segment]) { self.segments = segments }

    public var text: String { segments.map { $0.text + "\r" }.joined() }
    public var bytes: [UInt8] { Array(text.utf8) }
}
