/// A one-page PDF 1.4 of the label, written by hand: the standard Helvetica fonts in
/// WinAnsiEncoding (nothing embedded), bars as filled rectangles, boxes as strokes.
public enum PDF {
    /// The PDF file's bytes. The page is the stock's size.
    public static func render(_ layout: LabelLayout) throws -> [UInt8] {
        let height = layout.stock.heightPoints
        var content = "q\n0 g\n0 G\n"
        for element in layout.elements {
            switch element {
            case .text(let text):
                let (x, y) = text.baselineStart
                let font = text.weight == .bold ? "/F2" : "/F1"
                // Text matrix: the baseline direction and the glyphs' up direction in PDF space.
                let matrix: String
                switch text.rotation {
                case .none: matrix = "1 0 0 1"
                case .clockwise90: matrix = "0 -1 1 0"
                case .clockwise180: matrix = "-1 0 0 -1"
                case .clockwise270: matrix = "0 1 -1 0"
                }
                content += "BT \(font) \(n(text.fontSize)) Tf \(matrix) \(n(x)) \(n(height - y)) Tm (\(literal(text.text))) Tj ET\n"
            case .barcode(let barcode):
                for bar in barcode.bars {
                    content += "\(n(bar.x)) \(n(height - bar.maxY)) \(n(bar.width)) \(n(bar.height)) re\n"
                }
                content += "f\n"
            case .box(let box):
                switch box.style {
                case .filled:
                    content += "\(n(box.frame.x)) \(n(height - box.frame.maxY)) \(n(box.frame.width)) \(n(box.frame.height)) re f\n"
                case .stroked(let lineWidth):
                    // The stroke is centred on the path: inset by half the line width so it stays in the frame.
                    let path = box.frame.insetBy(lineWidth / 2)
                    content += "\(n(lineWidth)) w \(n(path.x)) \(n(height - path.maxY)) \(n(path.width)) \(n(path.height)) re S\n"
                }
            }
        }
        content += "Q"
        let stream = Array(content.utf8)

        let objects: [[UInt8]] = [
            Array("<< /Type /Catalog /Pages 2 0 R >>".utf8),
            Array("<< /Type /Pages /Kids [3 0 R] /Count 1 >>".utf8),
            Array(("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 \(n(layout.stock.widthPoints)) \(n(height))]"
                + " /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>").utf8),
            Array("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".utf8),
            Array("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".utf8),
            Array("<< /Length \(stream.count) >>\nstream\n".utf8) + stream + Array("\nendstream".utf8),
        ]

        // A comment with bytes above 127 tells transfer tools the file is binary.
        var file: [UInt8] = Array("%PDF-1.4\n%".utf8) + [0xE2, 0xE3, 0xCF, 0xD3, 0x0A]
        var offsets: [Int] = []
        for (index, body) in objects.enumerated() {
            offsets.append(file.count)
            file += Array("\(index + 1) 0 obj\n".utf8) + body + Array("\nendobj\n".utf8)
        }
        let xref = file.count
        // Each cross-reference entry is exactly 20 bytes: 10-digit offset, 5-digit generation, type, EOL.
        var table = "xref\n0 \(objects.count + 1)\n0000000000 65535 f \n"
        for offset in offsets {
            let digits = String(offset)
            table += String(repeating: "0", count: 10 - digits.count) + digits + " 00000 n \n"
        }
        table += "trailer\n<< /Size \(objects.count + 1) /Root 1 0 R >>\nstartxref\n\(xref)\n%%EOF\n"
        file += Array(table.utf8)
        return file
    }

    static func n(_ value: Double) -> String { NumberText.format(value) }

    /// A PDF literal string in WinAnsi: `( ) \` escaped, bytes above 126 as octal escapes
    /// so the content stream stays ASCII.
    static func literal(_ text: String) -> String {
        var out = ""
        for byte in TextMetrics.winAnsi(text) {
            switch byte {
            case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"):
                out += "\\" + String(UnicodeScalar(byte))
            case 0x20...0x7E:
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let octal = String(byte, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            }
        }
        return out
    }
}
