import Foundation
import Labels
import Testing

@Suite("PDF rendering, read back with poppler and zbar")
struct PDFTests {
    /// Rasterises the PDF at 300 dpi and returns what zbarimg decodes, one entry per symbol.
    static func scan(_ pdf: [UInt8], in directory: ScratchDirectory) async throws -> [String] {
        let pdfURL = directory.file("label.pdf")
        try Data(pdf).write(to: pdfURL)
        let status = try await runTool("/usr/bin/pdftoppm", ["-r", "300", "-png", "-singlefile", pdfURL.path, directory.file("label").path])
        #expect(status == 0)
        let decoded = directory.file("zbar.txt")
        // zbarimg exits 0 when it found symbols, 4 when it found none.
        try await runTool("/usr/bin/zbarimg", ["-q", directory.file("label.png").path], output: decoded)
        let text = try String(contentsOf: decoded, encoding: .utf8)
        return text.split(separator: "\n").map(String.init)
    }

    static func text(of pdf: [UInt8], mode: String, in directory: ScratchDirectory) async throws -> String {
        let pdfURL = directory.file("text.pdf")
        try Data(pdf).write(to: pdfURL)
        let out = directory.file("text-\(mode).txt")
        let status = try await runTool("/usr/bin/pdftotext", [mode, "-enc", "UTF-8", pdfURL.path, out.path])
        #expect(status == 0)
        return try String(contentsOf: out, encoding: .utf8)
    }

    @Test("each barcode scans as exactly its data structure, nothing else is found", arguments: PrinterResolution.allCases)
    func barcodesScan(resolution: PrinterResolution) async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let layout = try LabelLayout(content: Sample.content, stock: Sample.stock(resolution))
        let lines = try await Self.scan(try PDF.render(layout), in: directory)
        let expected = [
            Sample.content.din.dataStructure, Sample.content.productCode.dataStructure,
            Sample.content.collection.dataStructure, Sample.content.expiration.dataStructure,
        ].map { "CODE-128:" + $0 }
        #expect(lines.sorted() == expected.sorted())
    }

    @Test("every eye-readable value is in the PDF's text")
    func eyeReadableText() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let layout = try LabelLayout(content: Sample.content)
        let pdf = try PDF.render(layout)
        let laidOut = try await Self.text(of: pdf, mode: "-layout", in: directory)
        let raw = try await Self.text(of: pdf, mode: "-raw", in: directory).collapsingWhitespace

        let c = Sample.content
        let values = [
            c.din.eyeReadable, c.dinCheckCharacter, c.productCode.eyeReadable, c.collection.eyeReadable,
            c.expiration.eyeReadable, c.patientName, c.patientID, c.patientBirthDate, c.volume, c.unitLine,
            c.intendedUse, c.facilityName,
        ] + c.cellLines + c.warnings + c.facilityAddress
        for value in values {
            #expect(laidOut.contains(value), "\(value) missing from pdftotext -layout output")
        }
        // Wrapped fields: whole in reading order, and every printed line in the laid-out text.
        for value in [c.storage, c.productName] {
            #expect(raw.contains(value), "\(value) missing from pdftotext -raw output")
        }
        for text in layout.texts where text.rotation == .none {
            #expect(laidOut.contains(text.text), "line \(text.text) missing")
        }
        #expect(raw.contains(c.dinFlags))
    }

    @Test("PDF string escapes and characters outside WinAnsi")
    func escaping() async throws {
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        let content = Sample.content { $0.patientName = #"O'Brien (Jr) \ Łő 李"# }
        let layout = try LabelLayout(content: content)
        let text = try await Self.text(of: try PDF.render(layout), mode: "-layout", in: directory)
        // Outside WinAnsi: Ł and ő become their base letters, a CJK character a visible "?";
        // the layout's own text (what ZPL and SVG print too) is the same.
        #expect(text.contains(#"O'Brien (Jr) \ Lo ?"#), "\(text)")
        #expect(layout.texts.contains { $0.text.hasSuffix(#"O'Brien (Jr) \ Lo ?"#) })
        #expect(ZPL.render(layout).contains("Lo ?"))
    }

    @Test("header, objects and cross-reference offsets are consistent")
    func structure() throws {
        let layout = try LabelLayout(content: Sample.content)
        let pdf = try PDF.render(layout)
        let text = String(decoding: pdf, as: UTF8.self)
        #expect(text.hasPrefix("%PDF-1.4\n"))
        #expect(text.hasSuffix("%%EOF\n"))
        #expect(text.contains("/MediaBox [0 0 288 288]"))
        #expect(text.contains("/BaseFont /Helvetica /Encoding /WinAnsiEncoding"))

        let bytes = pdf
        func line(at offset: Int) -> String {
            let end = bytes[offset...].firstIndex(of: 0x0A) ?? bytes.endIndex
            return String(decoding: bytes[offset..<end], as: UTF8.self)
        }
        let tail = text.components(separatedBy: "startxref\n").last ?? ""
        let xref = try #require(Int(tail.prefix(while: { $0.isNumber })))
        #expect(line(at: xref) == "xref")
        // The table: "0 7", the free entry, then one 20-byte entry per object.
        var entryStart = xref + "xref\n0 7\n".utf8.count
        #expect(line(at: xref + 5) == "0 7")
        #expect(Array(bytes[entryStart..<entryStart + 20]) == Array("0000000000 65535 f \n".utf8))
        for object in 1...6 {
            entryStart += 20
            let entry = String(decoding: bytes[entryStart..<entryStart + 20], as: UTF8.self)
            #expect(entry.hasSuffix(" 00000 n \n"))
            let offset = try #require(Int(entry.prefix(10)))
            #expect(line(at: offset) == "\(object) 0 obj")
        }
        // The content stream's /Length counts its bytes, not the end-of-line before "endstream".
        let streamObject = try #require(text.range(of: "6 0 obj\n<< /Length "))
        let length = try #require(Int(text[streamObject.upperBound...].prefix(while: { $0.isNumber })))
        let start = try #require(text.range(of: "stream\n", range: streamObject.upperBound..<text.endIndex))
        let end = try #require(text.range(of: "endstream", range: start.upperBound..<text.endIndex))
        #expect(text.utf8.distance(from: start.upperBound, to: end.lowerBound) == length + 1)
    }
}
