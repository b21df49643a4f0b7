/// ZPL II for Zebra-compatible thermal printers.
///
/// Every field is written with `^FH_` and anything that could end a field or start a
/// command (`^`, `~`, the `_` escape itself, control bytes) is written as a hex escape, so
/// text such as a patient name can never inject commands. Text is UTF-8 (`^CI28`).
public enum ZPL {
    /// One label format, `^XA` ... `^XZ`; `copies` becomes `^PQ`, clamped to the 1...99,999,999
    /// that ^PQ takes (a bad count must not stop the daemon).
    public static func render(_ layout: LabelLayout, copies requested: Int = 1) -> String {
        let copies = min(max(requested, 1), 99_999_999)
        let stock = layout.stock
        var lines = [
            "^XA",
            "^CI28",
            "^PW\(stock.dots(stock.widthPoints))",
            "^LL\(stock.dots(stock.heightPoints))",
            "^LH0,0",
        ]
        for element in layout.elements {
            switch element {
            case .text(let text):
                let height = max(10, stock.dots(text.fontSize))
                lines.append(
                    "^FO\(stock.dots(text.frame.x)),\(stock.dots(text.frame.y))^A0\(orientation(text.rotation)),\(height),\(height)"
                        + "^FH_^FD\(escapeText(text.text))^FS")
            case .barcode(let barcode):
                // The printer draws the bars from the same symbol characters libzint chose,
                // without an interpretation line: the layout prints its own eye-readable text.
                lines.append(
                    "^FO\(stock.dots(barcode.x)),\(stock.dots(barcode.y))^BY\(max(1, stock.dots(barcode.moduleWidth)))"
                        + "^BCN,\(max(1, stock.dots(barcode.barHeight))),N,N,N,N^FH_^FD\(barcodeData(barcode.symbol))^FS")
            case .box(let box):
                let width = max(1, stock.dots(box.frame.width))
                let height = max(1, stock.dots(box.frame.height))
                let thickness: Int
                switch box.style {
                case .stroked(let lineWidth): thickness = min(max(1, stock.dots(lineWidth)), min(width, height))
                case .filled: thickness = min(width, height)
                }
                lines.append("^FO\(stock.dots(box.frame.x)),\(stock.dots(box.frame.y))^GB\(width),\(height),\(thickness),B,0^FS")
            }
        }
        lines.append("^PQ\(copies)")
        lines.append("^XZ")
        return lines.joined(separator: "\n")
    }

    static func orientation(_ rotation: TextRotation) -> String {
        switch rotation {
        case .none: "N"
        case .clockwise90: "R"
        case .clockwise180: "I"
        case .clockwise270: "B"
        }
    }

    /// Field data for `^FH_`: UTF-8 kept, `^ ~ _` and control bytes as `_XX`.
    static func escapeText(_ text: String) -> String {
        var bytes: [UInt8] = []
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "^") || byte == UInt8(ascii: "~") || byte == UInt8(ascii: "_") {
                bytes += hexEscape(byte)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexEscape(_ byte: UInt8) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return [UInt8(ascii: "_"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
    }

    /// `^BC` field data naming each symbol character: start code (`>9` A, `>:` B, `>;` C),
    /// code set changes (`>5` C, `>6` B, `>7` A), subset C and A as digit pairs, subset B as
    /// text with `>` written `><`, `~` as `>=`, DEL as `>1`, and `^`/`_` hex-escaped.
    static func barcodeData(_ symbol: Code128.Symbol) -> String {
        guard let start = symbol.values.first else { return "" }
        var out: [UInt8] = Array((start == 103 ? ">9" : start == 104 ? ">:" : ">;").utf8)
        func pair(_ value: Int) -> [UInt8] { [UInt8(0x30 + value / 10), UInt8(0x30 + value % 10)] }
        Code128.walk(symbol.values) { set, value, reading in
            switch reading {
            case .digits(let high, let low):
                out += [high, low]
            case .character where set == .a:
                out += pair(value)
            case .character(let byte):
                switch byte {
                case UInt8(ascii: ">"): out += Array("><".utf8)
                case UInt8(ascii: "~"): out += Array(">=".utf8)
                case 0x7F: out += Array(">1".utf8)
                case UInt8(ascii: "^"), UInt8(ascii: "_"): out += hexEscape(byte)
                default: out.append(byte)
                }
            case .switchTo(.c): out += Array(">5".utf8)
            case .switchTo(.b): out += Array(">6".utf8)
            case .switchTo(.a): out += Array(">7".utf8)
            case .shift: out += Array(">4".utf8)
            case .unsupported(let value):
                // Function characters; libzint does not produce them for ASCII data.
                let code: [Int: String] = [96: ">2", 97: ">3", 100: ">6", 101: ">7", 102: ">8"]
                out += Array((code[value] ?? "").utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
