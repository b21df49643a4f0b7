import Foundation
import Labels
import Testing

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

@Suite("ZPL rendering")
struct ZPLTests {
    static let knownCommands: Set<String> = ["XA", "CI", "PW", "LL", "LH", "FO", "A0", "FH", "FD", "FS", "BY", "BC", "GB", "PQ", "XZ"]

    @Test("one label: its stock, UTF-8, and the copies asked for")
    func oneLabel() throws {
        let layout = try LabelLayout(content: Sample.content)
        let zpl = ZPL.render(layout, copies: 2)
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
}
