import Foundation

/// Helvetica metrics and the WinAnsi encoding used by the PDF renderer; the layout measures
/// all text with them so that what the PDF shows is exactly what was measured.
enum TextMetrics {
    /// The width of `text` at `size` points, as the PDF renderer will set it.
    static func width(of text: String, size: Double, weight: FontWeight) -> Double {
        let table = weight == .bold ? bold : regular
        let units = winAnsi(text).reduce(0) { $0 + Int(table[Int($1)]) }
        return Double(units) * size / 1000
    }

    /// What a PDF string shows for a character outside WinAnsi: visible, so nothing vanishes silently.
    static let replacement: UInt8 = 0x3F  // "?"

    /// `text` in WinAnsiEncoding, one byte per character.
    static func winAnsi(_ text: String) -> [UInt8] {
        text.map { winAnsiByCharacter[$0] ?? replacement }
    }

    /// Keyed by Character, whose equality is canonical equivalence: "e" + U+0301 finds "é".
    static let winAnsiByCharacter: [Character: UInt8] = {
        var table: [Character: UInt8] = [:]
        for byte in UInt8(0x20)...0x7E { table[Character(Unicode.Scalar(byte))] = byte }
        for byte in UInt8(0xA0)...0xFF { table[Character(Unicode.Scalar(byte))] = byte }
        for (scalar, byte) in cp1252High {
            if let unicode = Unicode.Scalar(scalar) { table[Character(unicode)] = byte }
        }
        return table
    }()

    /// `sanitize`, then every character the PDF font cannot show becomes its base letter (ő -> o,
    /// Ł -> L) or "?". The layout uses this text for every format, so a ZPL label never shows a
    /// name differently from its PDF preview.
    static func printable(_ text: String) -> String {
        String(
            sanitize(text).flatMap { c -> [Character] in
                if winAnsiByCharacter[c] != nil { return [c] }
                if let base = strokedLetters[c] { return [base] }
                let folded = String(c).folding(options: [.diacriticInsensitive, .widthInsensitive], locale: nil)
                return folded.allSatisfy({ winAnsiByCharacter[$0] != nil }) && !folded.isEmpty ? Array(folded) : ["?"]
            })
    }

    /// Letters whose stroke is not a combining mark, so folding leaves them as they are.
    static let strokedLetters: [Character: Character] = [
        "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "Ø": "Ø", "ı": "i",
    ]

    /// Removes what must not reach a printer, a PDF or an XML document: control characters
    /// and line breaks become spaces, format characters (bidi overrides, soft hyphens) and
    /// noncharacters go; runs of white space become one space; ends are trimmed.
    static func sanitize(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            let properties = scalar.properties
            if properties.isNoncharacterCodePoint { continue }
            switch properties.generalCategory {
            case .format, .surrogate: continue
            case .control, .lineSeparator, .paragraphSeparator, .spaceSeparator:
                pendingSpace = true
                continue
            default:
                if properties.isWhitespace {
                    pendingSpace = true
                    continue
                }
            }
            if pendingSpace, !scalars.isEmpty { scalars.append(" ") }
            pendingSpace = false
            scalars.append(scalar)
        }
        return String(scalars)
    }

// Generated from the URW Nimbus Sans AFM files (metric clones of Helvetica), indexed by WinAnsi code.
    static let regular: [UInt16] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0,
        556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
        0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667,
        278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
        400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
        667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
        722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
        556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
        556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
    ]
    static let bold: [UInt16] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
        975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
        333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
        611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0,
        556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
        0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667,
        278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
        400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
        722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
        722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
        556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
        611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
    ]
    static let cp1252High: [UInt32: UInt8] = [
        0x20AC: 0x80, 0x201A: 0x82, 0x0192: 0x83, 0x201E: 0x84, 0x2026: 0x85, 0x2020: 0x86, 0x2021: 0x87, 0x02C6: 0x88, 0x2030: 0x89, 0x0160: 0x8A, 0x2039: 0x8B, 0x0152: 0x8C, 0x017D: 0x8E, 0x2018: 0x91, 0x2019: 0x92, 0x201C: 0x93, 0x201D: 0x94, 0x2022: 0x95, 0x2013: 0x96, 0x2014: 0x97, 0x02DC: 0x98, 0x2122: 0x99, 0x0161: 0x9A, 0x203A: 0x9B, 0x0153: 0x9C, 0x017E: 0x9E, 0x0178: 0x9F,
    ]
}
