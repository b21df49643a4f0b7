import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Labels
import Testing

/// Collects what an XML parser sees: element names, attributes, text of <text> elements.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var texts: [String] = []
    private var current: String?

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        elements.append((name, attributes))
        if name == "text" { current = "" }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        current? += string
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text", let text = current {
            texts.append(text)
            current = nil
        }
    }
}

@Suite("SVG rendering")
struct SVGTests {
    @Test("well-formed XML with the layout's text, escaped, and libzint's bars")
    func wellFormed() throws {
        let name = #"<script>&"O'Neil"</script>"#
        let layout = try LabelLayout(content: Sample.content { $0.patientName = name })
        let svg = try SVG.render(layout)
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.contains("&lt;script&gt;&amp;&quot;O&apos;Neil&quot;&lt;/script&gt;"))
        #expect(!svg.contains("<script>"))

        let parser = XMLParser(data: Data(svg.utf8))
        let collector = SVGCollector()
        parser.delegate = collector
        #expect(parser.parse(), "\(String(describing: parser.parserError))")
        #expect(collector.elements.first?.name == "svg")
        #expect(collector.elements.first?.attributes["viewBox"] == "0 0 288 288")
        #expect(!collector.elements.contains { $0.name == "script" })
        #expect(collector.texts == layout.texts.map(\.text))
        let patient = layout.texts.filter { $0.field == .patientName }.map(\.text).joined(separator: " ")
        #expect(patient == "Patient: " + name)
        for value in [Sample.content.din.eyeReadable, Sample.content.expiration.eyeReadable, Sample.content.intendedUse] {
            #expect(collector.texts.contains(value))
        }

        // One <rect> per bar, plus the background, the check character box and the rules.
        let rects = collector.elements.filter { $0.name == "rect" }.count
        let bars = layout.barcodes.map { $0.symbol.bars.count }.reduce(0, +)
        #expect(rects == 1 + bars + layout.boxes.count)
        let turned = collector.elements.filter { $0.attributes["transform"]?.hasPrefix("rotate(90 ") == true }
        #expect(turned.count == 1)
    }
}
