import Labels
import Testing

@Suite("Label layout geometry")
struct LayoutTests {
    static let millimetre = LabelStock.pointsPerMillimetre

    /// Overlaps are allowed only where a stroked box encloses text inside its stroke.
    static func checkGeometry(_ layout: LabelLayout) {
        let area = layout.stock.printableArea
        for element in layout.elements {
            #expect(area.contains(element.frame), "\(element.field) at \(element.frame) leaves the printable area")
        }
        let elements = layout.elements
        for i in elements.indices {
            for j in elements.indices where j > i {
                let a = elements[i], b = elements[j]
                guard a.frame.overlaps(b.frame) else { continue }
                let enclosed: Bool
                switch (a, b) {
                case (.box(let box), .text(let text)), (.text(let text), .box(let box)):
                    if case .stroked = box.style { enclosed = box.interior.contains(text.frame) } else { enclosed = false }
                default:
                    enclosed = false
                }
                #expect(enclosed, "\(a.field) \(a.frame) overlaps \(b.field) \(b.frame)")
            }
        }
    }

    @Test("nothing overlaps and everything is inside the stock", arguments: PrinterResolution.allCases)
    func geometry(resolution: PrinterResolution) throws {
        let layout = try LabelLayout(content: Sample.content, stock: Sample.stock(resolution))
        Self.checkGeometry(layout)
        #expect(layout.scale == 1)
        #expect(layout.barcodes.count == 4)
        #expect(layout.boxes.contains { $0.field == .dinCheckCharacter })
    }

    @Test("barcodes: whole-dot modules near 0.25 mm, 10-module quiet zones, bars at least 8 mm", arguments: PrinterResolution.allCases)
    func barcodeDimensions(resolution: PrinterResolution) throws {
        let layout = try LabelLayout(content: Sample.content, stock: Sample.stock(resolution))
        let dot = resolution.pointsPerDot
        for barcode in layout.barcodes {
            let dots = barcode.moduleWidth / dot
            #expect(abs(dots - dots.rounded()) < 1e-9)
            #expect(barcode.moduleWidth >= 0.24 * Self.millimetre && barcode.moduleWidth <= 0.26 * Self.millimetre)
            #expect(barcode.barHeight >= 8 * Self.millimetre)
            #expect(barcode.quietZoneModules == 10)
            #expect(abs(barcode.frame.width - barcode.barsFrame.width - 20 * barcode.moduleWidth) < 1e-9)
            #expect(abs((barcode.x / dot) - (barcode.x / dot).rounded()) < 1e-6)
            #expect(abs((barcode.y / dot) - (barcode.y / dot).rounded()) < 1e-6)
            #expect(barcode.symbol.modules.count % 11 == 2)
        }
    }

    @Test("ISBT 128 quadrants")
    func quadrants() throws {
        let layout = try LabelLayout(content: Sample.content)
        let middle = layout.stock.widthPoints / 2
        let half = layout.stock.heightPoints / 2
        func barcode(_ field: LabelField) throws -> LabelRect {
            try #require(layout.barcodes.first { $0.field == field }).frame
        }
        #expect(try barcode(.din).maxX <= middle && barcode(.din).maxY <= half)
        #expect(try barcode(.productCode).minX >= middle && barcode(.productCode).maxY <= half)
        #expect(try barcode(.collection).maxX <= middle && barcode(.collection).minY >= half)
        #expect(try barcode(.expiration).minX >= middle && barcode(.expiration).minY >= half)
        // The eye-readable DIN sits under its barcode, flags turned beside it, then the boxed check character.
        let din = try #require(layout.texts.first { $0.field == .din })
        let flags = try #require(layout.texts.first { $0.field == .dinFlags })
        let box = try #require(layout.boxes.first { $0.field == .dinCheckCharacter })
        #expect(din.frame.minY >= (try barcode(.din).maxY))
        #expect(flags.rotation == .clockwise90 && flags.frame.minX >= din.frame.maxX)
        #expect(box.frame.minX >= flags.frame.maxX)
    }

    @Test("a long product name wraps and the type shrinks, still inside the stock", arguments: PrinterResolution.allCases)
    func longText(resolution: PrinterResolution) throws {
        let name = String(repeating: "HPC, Apheresis, CD3+ enriched, volume reduced, cryopreserved in DMSO ", count: 2)
        let content = Sample.content {
            $0.productName = name
            $0.storage = "Store in the vapour phase of liquid nitrogen at or below -150 C; do not thaw until the day of infusion"
            $0.warnings.append("Advise patient of communicable disease risks")
        }
        let layout = try LabelLayout(content: content, stock: Sample.stock(resolution))
        Self.checkGeometry(layout)
        let lines = layout.texts.filter { $0.field == .productName }.map(\.text)
        #expect(lines.count > 1)
        #expect(lines.joined(separator: " ") == name.collapsingWhitespace)
        #expect(layout.scale < 1)
    }

    @Test("text that cannot fit names its field")
    func tooLong() throws {
        let name = String(repeating: "Annabelle ", count: 200)
        let error = try #require(throws: LabelLayoutError.self) {
            try LabelLayout(content: Sample.content { $0.patientName = name })
        }
        guard case .doesNotFit(let field, _) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(field == .patientName)
        #expect(error.description.contains("patientName"))

        let word = String(repeating: "W", count: 120)
        let wordError = try #require(throws: LabelLayoutError.self) {
            try LabelLayout(content: Sample.content { $0.facilityName = word })
        }
        #expect(wordError.description.contains("facilityName"))

        let lines = (1...40).map { "Marker \($0): 12.5 x 10^6 cells" }
        let crowded = try #require(throws: LabelLayoutError.self) {
            try LabelLayout(content: Sample.content { $0.cellLines = lines })
        }
        guard case .doesNotFit(.cellLine(let index), _) = crowded, index > 0 else {
            Issue.record("unexpected \(crowded)")
            return
        }
    }

    @Test("a barcode wider than its quadrant names its field")
    func barcodeTooWide() throws {
        let stock = LabelStock(widthPoints: 2 * 72, heightPoints: 4 * 72)
        let error = try #require(throws: LabelLayoutError.self) {
            try LabelLayout(content: Sample.content, stock: stock)
        }
        #expect(error == .doesNotFit(field: .din, reason: error.reason))
    }

    @Test("bad barcode data and missing eye-readable text are refused")
    func invalidData() throws {
        #expect(throws: LabelLayoutError.invalidBarcodeData(field: .din, reason: #""=G1234é" has characters outside printable ASCII"#)) {
            try LabelLayout(content: Sample.content { $0.din.dataStructure = "=G1234é" })
        }
        #expect(throws: LabelLayoutError.invalidBarcodeData(field: .expiration, reason: "the data structure is empty")) {
            try LabelLayout(content: Sample.content { $0.expiration.dataStructure = "" })
        }
        #expect(throws: LabelLayoutError.missingText(field: .collection)) {
            try LabelLayout(content: Sample.content { $0.collection.eyeReadable = " \n" })
        }
        #expect(throws: LabelLayoutError.self) {
            try LabelLayout(content: Sample.content, stock: LabelStock(marginPoints: 200))
        }
    }

    @Test("control and format characters never reach a text element")
    func sanitised() throws {
        let layout = try LabelLayout(content: Sample.content { $0.patientName = "DOE,\r\n\tJANE\u{202E}\u{0007}  X" })
        let name = try #require(layout.texts.first { $0.field == .patientName })
        #expect(name.text == "Patient: DOE, JANE X")
    }
}

extension LabelLayoutError {
    var reason: String {
        switch self {
        case .doesNotFit(_, let reason), .invalidBarcodeData(_, let reason), .invalidStock(let reason): reason
        case .missingText: ""
        }
    }
}
