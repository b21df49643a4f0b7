/// An SVG 1.1 document of the label (for the dashboard's preview), in points.
/// Text keeps its Unicode form; `textLength` holds each line to the width the layout
/// measured with Helvetica metrics, whatever font the browser substitutes.
public enum SVG {
    public static func render(_ layout: LabelLayout) throws -> String {
        let w = n(layout.stock.widthPoints)
        let h = n(layout.stock.heightPoints)
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(w)pt" height="\(h)pt" viewBox="0 0 \(w) \(h)">
            <rect x="0" y="0" width="\(w)" height="\(h)" fill="#ffffff"/>

            """
        for element in layout.elements {
            switch element {
            case .text(let text):
                let (x, y) = text.baselineStart
                let weight = text.weight == .bold ? " font-weight=\"bold\"" : ""
                let rotate = text.rotation == .none ? "" : " transform=\"rotate(\(text.rotation.rawValue) \(n(x)) \(n(y)))\""
                out += "<text x=\"\(n(x))\" y=\"\(n(y))\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"\(n(text.fontSize))\"\(weight)"
                    + " textLength=\"\(n(text.advance))\" lengthAdjust=\"spacingAndGlyphs\"\(rotate)>\(escape(text.text))</text>\n"
            case .barcode(let barcode):
                out += "<g fill=\"#000000\" shape-rendering=\"crispEdges\">"
                for bar in barcode.bars {
                    out += "<rect x=\"\(n(bar.x))\" y=\"\(n(bar.y))\" width=\"\(n(bar.width))\" height=\"\(n(bar.height))\"/>"
                }
                out += "</g>\n"
            case .box(let box):
                switch box.style {
                case .filled:
                    out += "<rect x=\"\(n(box.frame.x))\" y=\"\(n(box.frame.y))\" width=\"\(n(box.frame.width))\" height=\"\(n(box.frame.height))\" fill=\"#000000\"/>\n"
                case .stroked(let lineWidth):
                    let path = box.frame.insetBy(lineWidth / 2)
                    out += "<rect x=\"\(n(path.x))\" y=\"\(n(path.y))\" width=\"\(n(path.width))\" height=\"\(n(path.height))\" fill=\"none\" stroke=\"#000000\" stroke-width=\"\(n(lineWidth))\"/>\n"
                }
            }
        }
        out += "</svg>\n"
        return out
    }

    static func n(_ value: Double) -> String { NumberText.format(value) }

    /// Escapes text for element content and attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}
