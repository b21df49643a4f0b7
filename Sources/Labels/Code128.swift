import CZint

/// Code 128 symbols drawn by libzint.
///
/// libzint chooses the code sets (B for the ISBT 128 identifier characters, C for digit
/// runs); the module row it produces is read back into symbol values so that the ZPL
/// renderer can ask the printer for exactly the same symbol characters, and the bars a
/// printer draws have the width the layout reserved.
public enum Code128 {
    /// Why libzint (or the check of its output) refused the data.
    public struct EncodingError: Error, Hashable, Sendable, CustomStringConvertible {
        public let data: String
        public let message: String

        public var description: String { "Code 128 cannot encode \(String(reflecting: data)): \(message)" }
    }

    /// One encoded symbol: the modules (true = bar) without quiet zones, and the symbol
    /// values from the start character through the check character (the stop is implied).
    public struct Symbol: Hashable, Sendable {
        public let data: String
        public let modules: [Bool]
        public let values: [Int]

        /// Runs of bars as (first module, number of modules).
        public var bars: [(start: Int, width: Int)] {
            var runs: [(start: Int, width: Int)] = []
            var index = 0
            while index < modules.count {
                if modules[index] {
                    let start = index
                    while index < modules.count, modules[index] { index += 1 }
                    runs.append((start, index - start))
                } else {
                    index += 1
                }
            }
            return runs
        }
    }

    /// The module row of `data`: true for a bar module, false for a space; no quiet zones.
    public static func modules(for data: String) throws -> [Bool] {
        try encode(data).modules
    }

    /// Encodes `data` (ASCII only) with libzint's BARCODE_CODE128 and checks the result.
    public static func encode(_ data: String) throws -> Symbol {
        let bytes = Array(data.utf8)
        // libzint 2.11 accepts empty input and draws a symbol without data.
        guard !bytes.isEmpty else { throw EncodingError(data: data, message: "no data to encode") }
        // Bytes above 127 would make libzint insert FNC4 (ISO 8859-1 extension), which the
        // ZPL translation and the ISBT 128 character set do not need.
        if let bad = bytes.firstIndex(where: { $0 > 0x7F }) {
            throw EncodingError(data: data, message: "byte \(bad + 1) is not ASCII")
        }
        guard let symbol = ZBarcode_Create() else {
            throw EncodingError(data: data, message: "libzint could not allocate a symbol")
        }
        // Each call owns its symbol, so concurrent calls from any thread do not share state.
        defer { ZBarcode_Delete(symbol) }
        symbol.pointee.symbology = BARCODE_CODE128
        symbol.pointee.input_mode = DATA_MODE
        symbol.pointee.show_hrt = 0

        let status = bytes.withUnsafeBufferPointer { buffer in
            ZBarcode_Encode(symbol, buffer.baseAddress, Int32(buffer.count))
        }
        if status != 0 {
            // Warnings count as failures too: a label barcode must be exactly as asked.
            let text = withUnsafeBytes(of: &symbol.pointee.errtxt) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            throw EncodingError(data: data, message: text.isEmpty ? "libzint error \(status)" : text)
        }
        let width = Int(symbol.pointee.width)
        guard symbol.pointee.rows == 1, width > 0, width <= 144 * 8 else {
            throw EncodingError(data: data, message: "libzint returned \(symbol.pointee.rows) rows of \(width) modules")
        }
        // Row 0 of encoded_data holds one bit per module, least significant bit first.
        let modules = withUnsafeBytes(of: &symbol.pointee.encoded_data) { raw in
            (0..<width).map { x in (raw[x >> 3] >> UInt8(x & 7)) & 1 == 1 }
        }
        let values = try symbolValues(of: modules, data: data)
        guard let decoded = decodeText(values), decoded == data else {
            throw EncodingError(data: data, message: "libzint's symbol does not decode back to the data")
        }
        return Symbol(data: data, modules: modules, values: values)
    }

    // MARK: Reading the module row back

    /// Bar/space widths of symbol values 0...106 (ISO/IEC 15417); the stop (106) includes
    /// its final 2-module bar.
    static let patterns: [String] = [
        "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212", "221213",
        "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221", "223211", "221132",
        "221231", "213212", "223112", "312131", "311222", "321122", "321221", "312212", "322112", "322211",
        "212123", "212321", "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
        "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121", "313121", "211331",
        "231131", "213113", "213311", "213131", "311123", "311321", "331121", "312113", "312311", "332111",
        "314111", "221411", "431111", "111224", "111422", "121124", "121421", "141122", "141221", "112214",
        "112412", "122114", "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
        "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
        "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311", "113141",
        "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
    ]

    static let valueOfPattern: [String: Int] = {
        var table: [String: Int] = [:]
        for (value, pattern) in patterns.enumerated() { table[pattern] = value }
        return table
    }()

    /// Splits the module row into 11-module symbol characters and verifies start, check and stop.
    static func symbolValues(of modules: [Bool], data: String) throws -> [Int] {
        var runs: [Int] = []
        var index = 0
        while index < modules.count {
            let colour = modules[index]
            var length = 0
            while index < modules.count, modules[index] == colour { index += 1; length += 1 }
            runs.append(length)
        }
        func fail(_ why: String) -> EncodingError { EncodingError(data: data, message: "libzint's symbol is not valid Code 128: \(why)") }
        guard modules.first == true, runs.count >= 7, (runs.count - 7) % 6 == 0 else { throw fail("unexpected bar count") }
        var values: [Int] = []
        var position = 0
        while position + 7 < runs.count {
            let key = runs[position..<position + 6].map(String.init).joined()
            guard let value = valueOfPattern[key], value < 106 else { throw fail("unknown character \(key)") }
            values.append(value)
            position += 6
        }
        guard runs[position...].map(String.init).joined() == patterns[106] else { throw fail("no stop character") }
        guard values.count >= 2, (103...105).contains(values[0]) else { throw fail("no start character") }
        var sum = values[0]
        for (weight, value) in values.dropFirst().dropLast().enumerated() { sum += (weight + 1) * value }
        guard sum % 103 == values.last else { throw fail("check character mismatch") }
        return values
    }

    enum CodeSet { case a, b, c }

    /// One step of reading symbol values: what each data value means in its code set.
    enum Reading {
        case character(UInt8)
        case digits(UInt8, UInt8)
        case switchTo(CodeSet)
        case shift
        case unsupported(Int)
    }

    /// Walks the data values (between start and check) with their code sets.
    static func walk(_ values: [Int], _ visit: (CodeSet, Int, Reading) -> Void) {
        guard values.count >= 2 else { return }
        var set: CodeSet = values[0] == 103 ? .a : values[0] == 104 ? .b : .c
        var shifted = false
        for value in values.dropFirst().dropLast() {
            let current: CodeSet = shifted ? (set == .a ? .b : .a) : set
            shifted = false
            let reading: Reading
            switch (current, value) {
            case (.c, 0..<100): reading = .digits(UInt8(0x30 + value / 10), UInt8(0x30 + value % 10))
            case (.c, 100), (.a, 100): reading = .switchTo(.b)
            case (.c, 101), (.b, 101): reading = .switchTo(.a)
            case (.a, 99), (.b, 99): reading = .switchTo(.c)
            case (.a, 98), (.b, 98): reading = .shift
            case (.a, 0..<64): reading = .character(UInt8(value + 32))
            case (.a, 64..<96): reading = .character(UInt8(value - 64))
            case (.b, 0..<96): reading = .character(UInt8(value + 32))
            default: reading = .unsupported(value)  // FNC1-4 never arise from plain ASCII data
            }
            visit(current, value, reading)
            switch reading {
            case .switchTo(let next): set = next
            case .shift: shifted = true
            default: break
            }
        }
    }

    /// The data a scanner would report for these symbol values; nil if they hold a function character.
    static func decodeText(_ values: [Int]) -> String? {
        var bytes: [UInt8] = []
        var supported = true
        walk(values) { _, _, reading in
            switch reading {
            case .character(let byte): bytes.append(byte)
            case .digits(let high, let low): bytes += [high, low]
            case .switchTo, .shift: break
            case .unsupported: supported = false
            }
        }
        return supported ? String(decoding: bytes, as: UTF8.self) : nil
    }
}
