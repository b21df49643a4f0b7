/// Why a label could not be laid out.
public enum LabelLayoutError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The field does not fit even at the smallest type size.
    case doesNotFit(field: LabelField, reason: String)
    /// A barcode's data is missing, not printable ASCII, or refused by libzint.
    case invalidBarcodeData(field: LabelField, reason: String)
    /// A required eye-readable text is empty.
    case missingText(field: LabelField)
    case invalidStock(reason: String)

    public var description: String {
        switch self {
        case .doesNotFit(let field, let reason): "label field \(field) does not fit: \(reason)"
        case .invalidBarcodeData(let field, let reason): "label field \(field) cannot be bar-coded: \(reason)"
        case .missingText(let field): "label field \(field) has no eye-readable text"
        case .invalidStock(let reason): "label stock is not usable: \(reason)"
        }
    }
}

/// A unit's cryostorage label as positioned elements, the one source of the ZPL, PDF and
/// SVG renderings.
///
/// The regions follow the ISBT 128 four-quadrant label (ST-004 for cellular therapy
/// products): upper left the DIN with its flags and boxed check character, then the
/// collecting facility; upper right the product code, product name and unit contents;
/// lower left the collection date and the patient; lower right the expiry and storage;
/// intended use and warnings across the foot of the label. Barcodes keep 10-module quiet
/// zones, modules are whole printer dots (about 0.25 mm) and bars are 10 mm tall. Text that
/// does not fit is wrapped where wrapping is allowed and all type is reduced step by step;
/// if even the smallest size fails, the error names the field.
public struct LabelLayout: Hashable, Sendable {
    public let stock: LabelStock
    /// In drawing order; no two overlap, except a box and the text it encloses.
    public let elements: [LabelElement]
    /// The factor applied to the design type sizes to make everything fit (1 = none).
    public let scale: Double

    public var texts: [TextElement] { elements.compactMap { if case .text(let t) = $0 { t } else { nil } } }
    public var barcodes: [BarcodeElement] { elements.compactMap { if case .barcode(let b) = $0 { b } else { nil } } }
    public var boxes: [BoxElement] { elements.compactMap { if case .box(let b) = $0 { b } else { nil } } }

    public init(content: LabelContent, stock: LabelStock = LabelStock()) throws {
        try Self.validate(stock)
        let symbols = try Symbols(content)
        for (field, text) in [
            (LabelField.din, content.din.eyeReadable), (.productCode, content.productCode.eyeReadable),
            (.collection, content.collection.eyeReadable), (.expiration, content.expiration.eyeReadable),
        ] where TextMetrics.sanitize(text).isEmpty {
            throw LabelLayoutError.missingText(field: field)
        }
        var failure: Overflow?
        for scale in Design.scales {
            do {
                var composer = Composer(content: content, stock: stock, symbols: symbols, scale: scale)
                elements = try composer.compose()
                self.stock = stock
                self.scale = scale
                return
            } catch {
                failure = error
            }
        }
        let last = failure ?? Overflow(field: .din, reason: "no type size fits")
        throw LabelLayoutError.doesNotFit(field: last.field, reason: last.reason)
    }

    static func validate(_ stock: LabelStock) throws {
        let values = [stock.widthPoints, stock.heightPoints, stock.marginPoints]
        guard values.allSatisfy({ $0.isFinite }), stock.marginPoints >= 0 else {
            throw LabelLayoutError.invalidStock(reason: "sizes must be finite and the margin not negative")
        }
        let area = stock.printableArea
        guard area.width > 0, area.height > 0 else {
            throw LabelLayoutError.invalidStock(reason: "the margins leave no printable area")
        }
        // ZPL ^PW/^LL take at most 32000 dots; 100 inches is far beyond any label.
        guard stock.widthPoints <= 7200, stock.heightPoints <= 7200 else {
            throw LabelLayoutError.invalidStock(reason: "larger than 100 inches")
        }
    }
}

/// Design sizes in points, before scaling.
enum Design {
    static let scales: [Double] = stride(from: 1.0, through: 0.5, by: -0.05).map { $0 }
    static let minimumFontSize = 5.0
    static let gutter = 3 * LabelStock.pointsPerMillimetre
    static let ruleThickness = 0.75
    static let ruleGap = 2.5
    static let boxLineWidth = 0.75
    static let boxPadding = 1.2
    /// ISBT 128 asks for an X dimension near 0.25 mm; it is rounded to whole printer dots.
    static let moduleMillimetres = 0.25
    static let barHeightMillimetres = 10.0
    static let quietZoneModules = 10
    static let gapAfterBarcode = 1.5
    static let fieldGap = 1.2
    static let inlineGap = 2.0

    static let caption = 6.5
    static let dinText = 12.0
    static let flags = 8.0
    static let checkCharacter = 12.0
    static let productCode = 10.0
    static let productName = 9.0
    static let unitLine = 9.0
    static let volume = 8.5
    static let cellLine = 8.0
    static let date = 10.0
    static let patientName = 8.5
    static let patientDetail = 8.0
    static let facilityName = 7.5
    static let facilityAddress = 7.0
    static let storage = 8.0
    static let intendedUse = 11.0
    static let warning = 8.0
    static let alert = 8.5
}

/// A field that did not fit at one scale.
struct Overflow: Error {
    let field: LabelField
    let reason: String
}

/// The four Code 128 symbols, encoded once (they do not depend on the type size).
struct Symbols {
    let din, productCode, collection, expiration: Code128.Symbol

    init(_ content: LabelContent) throws {
        func encode(_ field: LabelField, _ data: String) throws -> Code128.Symbol {
            guard !data.isEmpty else { throw LabelLayoutError.invalidBarcodeData(field: field, reason: "the data structure is empty") }
            // ISBT 128 data structures are printable ASCII; anything else would not scan as typed.
            guard data.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
                throw LabelLayoutError.invalidBarcodeData(field: field, reason: "\(String(reflecting: data)) has characters outside printable ASCII")
            }
            do {
                return try Code128.encode(data)
            } catch let error as Code128.EncodingError {
                throw LabelLayoutError.invalidBarcodeData(field: field, reason: error.message)
            }
        }
        din = try encode(.din, content.din.dataStructure)
        productCode = try encode(.productCode, content.productCode.dataStructure)
        collection = try encode(.collection, content.collection.dataStructure)
        expiration = try encode(.expiration, content.expiration.dataStructure)
    }
}

/// A column that stacks elements downwards from y = 0; bands move it into place afterwards.
struct Column {
    let x: Double
    let width: Double
    let centred: Bool
    let scale: Double
    let stock: LabelStock
    var y = 0.0
    var elements: [LabelElement] = []

    init(x: Double, width: Double, centred: Bool = false, scale: Double, stock: LabelStock) {
        self.x = x
        self.width = width
        self.centred = centred
        self.scale = scale
        self.stock = stock
    }

    var maxX: Double { x + width }
    /// Height used, without the gap after the last element.
    var height: Double { elements.map(\.frame.maxY).max() ?? 0 }

    func size(_ design: Double) -> Double { max(Design.minimumFontSize, design * scale) }

    /// Adds `text` wrapped to at most `maxLines` lines; empty text adds nothing.
    mutating func text(_ field: LabelField, _ raw: String, design: Double, weight: FontWeight, maxLines: Int = 1, prefix: String = "") throws(Overflow) {
        let body = TextMetrics.printable(raw)
        guard !body.isEmpty else { return }
        let fontSize = size(design)
        let lines = try Self.wrap(field, prefix + body, width: width, size: fontSize, weight: weight, maxLines: maxLines)
        for line in lines {
            let advance = TextMetrics.width(of: line, size: fontSize, weight: weight)
            let lineX = centred ? x + (width - advance) / 2 : x
            let element = TextElement(field: field, text: line, fontSize: fontSize, weight: weight, x: lineX, y: y)
            elements.append(.text(element))
            y = element.frame.maxY
        }
        y += Design.fieldGap * scale
    }

    /// Adds `text` in a stroked box as wide as the column (a warning nobody should miss); empty text adds nothing.
    mutating func boxedText(_ field: LabelField, _ raw: String, design: Double, weight: FontWeight, maxLines: Int) throws(Overflow) {
        let inset = Design.boxLineWidth + Design.boxPadding
        var inner = Column(x: x + inset, width: width - 2 * inset, centred: centred, scale: scale, stock: stock)
        inner.y = y + inset
        try inner.text(field, raw, design: design, weight: weight, maxLines: maxLines)
        guard let textBottom = inner.elements.map(\.frame.maxY).max() else { return }
        let frame = LabelRect(x: x, y: y, width: width, height: textBottom + inset - y)
        elements.append(.box(BoxElement(field: field, frame: frame, style: .stroked(lineWidth: Design.boxLineWidth))))
        elements += inner.elements
        y = frame.maxY + Design.fieldGap * scale
    }

    /// Greedy word wrap; fails when a word is wider than the column or more lines are needed.
    static func wrap(_ field: LabelField, _ text: String, width: Double, size: Double, weight: FontWeight, maxLines: Int) throws(Overflow) -> [String] {
        var lines: [String] = []
        var current = ""
        func fits(_ line: String) -> Bool { TextMetrics.width(of: line, size: size, weight: weight) <= width + 1e-9 }
        for word in text.split(separator: " ") {
            let candidate = current.isEmpty ? String(word) : current + " " + word
            if fits(candidate) {
                current = candidate
                continue
            }
            guard fits(String(word)) else {
                throw Overflow(field: field, reason: "\(String(reflecting: String(word.prefix(40)))) is wider than \(NumberText.format(width)) pt even at \(NumberText.format(size)) pt type")
            }
            lines.append(current)
            current = String(word)
        }
        if !current.isEmpty { lines.append(current) }
        guard lines.count <= maxLines else {
            let allowed = maxLines == 1 ? "one line" : "\(maxLines) lines"
            throw Overflow(field: field, reason: "needs \(lines.count) lines of \(NumberText.format(width)) pt at \(NumberText.format(size)) pt type; \(allowed) allowed")
        }
        return lines
    }

    /// Adds a barcode with its quiet zones, bars aligned to whole printer dots.
    mutating func barcode(_ field: LabelField, _ symbol: Code128.Symbol) throws(Overflow) {
        let dot = stock.resolution.pointsPerDot
        let moduleDots = max(1, (Design.moduleMillimetres * LabelStock.pointsPerMillimetre / dot).rounded())
        let moduleWidth = moduleDots * dot
        let quiet = Double(Design.quietZoneModules) * moduleWidth
        let barsX = Self.snapUp(x + quiet, dot)
        let barHeight = (Design.barHeightMillimetres * LabelStock.pointsPerMillimetre / dot).rounded() * dot
        let element = BarcodeElement(
            field: field, symbol: symbol, x: barsX, y: Self.snapUp(y, dot),
            moduleWidth: moduleWidth, barHeight: barHeight, quietZoneModules: Design.quietZoneModules)
        guard element.frame.maxX <= maxX + 1e-9 else {
            throw Overflow(field: field, reason: "the barcode needs \(NumberText.format(element.frame.width)) pt with its quiet zones; the region is \(NumberText.format(width)) pt wide")
        }
        elements.append(.barcode(element))
        y = element.frame.maxY + Design.gapAfterBarcode
    }

    /// Eye-readable DIN, flag characters turned a quarter, check character in a box.
    mutating func dinRow(din: String, flags: String, check: String) throws(Overflow) {
        let dinText = TextMetrics.printable(din)
        let flagText = TextMetrics.printable(flags)
        let checkText = TextMetrics.printable(check)
        var row: [(element: LabelElement, height: Double)] = []
        var cursor = x
        let main = TextElement(field: .din, text: dinText, fontSize: size(Design.dinText), weight: .bold, x: cursor, y: 0)
        row.append((.text(main), main.frame.height))
        cursor = main.frame.maxX + Design.inlineGap * scale
        if !flagText.isEmpty {
            let flagElement = TextElement(field: .dinFlags, text: flagText, fontSize: size(Design.flags), weight: .bold, rotation: .clockwise90, x: cursor, y: 0)
            row.append((.text(flagElement), flagElement.frame.height))
            cursor = flagElement.frame.maxX + Design.inlineGap * scale
        }
        if !checkText.isEmpty {
            let inset = Design.boxLineWidth + Design.boxPadding
            let checkElement = TextElement(field: .dinCheckCharacter, text: checkText, fontSize: size(Design.checkCharacter), weight: .bold, x: cursor + inset, y: inset)
            let box = BoxElement(
                field: .dinCheckCharacter,
                frame: LabelRect(x: cursor, y: 0, width: checkElement.frame.width + 2 * inset, height: checkElement.frame.height + 2 * inset),
                style: .stroked(lineWidth: Design.boxLineWidth))
            row.append((.box(box), box.frame.height))
            row.append((.text(checkElement), box.frame.height))
            cursor = box.frame.maxX
        }
        guard cursor <= maxX + 1e-9 else {
            throw Overflow(field: .din, reason: "the eye-readable DIN, flags and check character need \(NumberText.format(cursor - x)) pt; the region is \(NumberText.format(width)) pt wide")
        }
        // Centre every part on the row's middle line.
        let rowHeight = row.map(\.height).max() ?? 0
        for (element, height) in row {
            elements.append(element.moved(dy: y + (rowHeight - height) / 2))
        }
        y += rowHeight + Design.fieldGap * scale
    }

    static func snapUp(_ value: Double, _ dot: Double) -> Double {
        (value / dot - 1e-9).rounded(.up) * dot
    }

    /// The first element reaching below `limit` (relative to this column's top).
    func firstBelow(_ limit: Double) -> LabelElement? {
        elements.first { $0.frame.maxY > limit + 1e-9 }
    }
}

extension LabelElement {
    func moved(dy: Double) -> LabelElement {
        switch self {
        case .text(let t):
            .text(TextElement(field: t.field, text: t.text, fontSize: t.fontSize, weight: t.weight, rotation: t.rotation, x: t.frame.x, y: t.frame.y + dy))
        case .barcode(let b):
            .barcode(BarcodeElement(field: b.field, symbol: b.symbol, x: b.x, y: b.y + dy, moduleWidth: b.moduleWidth, barHeight: b.barHeight, quietZoneModules: b.quietZoneModules))
        case .box(let b):
            .box(BoxElement(field: b.field, frame: LabelRect(x: b.frame.x, y: b.frame.y + dy, width: b.frame.width, height: b.frame.height), style: b.style))
        }
    }
}

/// Places the content at one type scale.
struct Composer {
    let content: LabelContent
    let stock: LabelStock
    let symbols: Symbols
    let scale: Double

    mutating func compose() throws(Overflow) -> [LabelElement] {
        let area = stock.printableArea
        let dot = stock.resolution.pointsPerDot
        let columnWidth = (area.width - Design.gutter) / 2
        let leftX = area.x
        let rightX = area.x + columnWidth + Design.gutter
        func column(_ x: Double) -> Column { Column(x: x, width: columnWidth, scale: scale, stock: stock) }
        let c = content

        // Foot: intended use and warnings across the whole width, bottom-aligned.
        var foot = Column(x: area.x, width: area.width, centred: true, scale: scale, stock: stock)
        if let alert = c.alert {
            try foot.boxedText(.alert, alert, design: Design.alert, weight: .bold, maxLines: 2)
        }
        try foot.text(.intendedUse, c.intendedUse, design: Design.intendedUse, weight: .bold, maxLines: 2)
        for (index, warning) in c.warnings.enumerated() {
            try foot.text(.warning(index), warning, design: Design.warning, weight: .bold, maxLines: 2)
        }

        // Upper left: DIN, then the collecting facility.
        var upperLeft = column(leftX)
        try upperLeft.barcode(.din, symbols.din)
        try upperLeft.dinRow(din: c.din.eyeReadable, flags: c.dinFlags, check: c.dinCheckCharacter)
        try upperLeft.text(.unitLine, c.unitLine, design: Design.unitLine, weight: .bold)
        try upperLeft.text(.facilityName, c.facilityName, design: Design.facilityName, weight: .bold, maxLines: 2)
        for (index, line) in c.facilityAddress.enumerated() {
            try upperLeft.text(.facilityAddress(index), line, design: Design.facilityAddress, weight: .regular)
        }

        // Upper right: product code, product name, what the unit holds.
        var upperRight = column(rightX)
        try upperRight.barcode(.productCode, symbols.productCode)
        try upperRight.text(.productCode, c.productCode.eyeReadable, design: Design.productCode, weight: .bold)
        try upperRight.text(.productName, c.productName, design: Design.productName, weight: .bold, maxLines: 3)
        try upperRight.text(.volume, c.volume, design: Design.volume, weight: .regular, prefix: "Volume: ")
        for (index, line) in c.cellLines.enumerated() {
            try upperRight.text(.cellLine(index), line, design: Design.cellLine, weight: .regular)
        }

        // Lower left: collection date and time, the patient.
        var lowerLeft = column(leftX)
        try lowerLeft.text(.collectionCaption, "Collected", design: Design.caption, weight: .regular)
        try lowerLeft.barcode(.collection, symbols.collection)
        try lowerLeft.text(.collection, c.collection.eyeReadable, design: Design.date, weight: .bold, maxLines: 2)
        try lowerLeft.text(.patientName, c.patientName, design: Design.patientName, weight: .bold, maxLines: 2, prefix: "Patient: ")
        try lowerLeft.text(.patientID, c.patientID, design: Design.patientDetail, weight: .regular, prefix: "ID: ")
        try lowerLeft.text(.patientBirthDate, c.patientBirthDate, design: Design.patientDetail, weight: .regular, prefix: "DOB: ")

        // Lower right: expiry and storage.
        var lowerRight = column(rightX)
        try lowerRight.text(.expirationCaption, "Expires", design: Design.caption, weight: .regular)
        try lowerRight.barcode(.expiration, symbols.expiration)
        try lowerRight.text(.expiration, c.expiration.eyeReadable, design: Design.date, weight: .bold, maxLines: 2)
        try lowerRight.text(.storage, c.storage, design: Design.storage, weight: .regular, maxLines: 3)

        // Vertical placement. Bands start on whole dots so barcodes stay on the dot grid.
        let ruleSpace = 2 * Design.ruleGap + Design.ruleThickness
        let topY = Column.snapUp(area.y, dot)
        let topHeight = max(upperLeft.height, upperRight.height)
        let footHeight = foot.height
        let footTop = area.maxY - footHeight
        let bottomLimit = foot.elements.isEmpty ? area.maxY : footTop - ruleSpace
        let bottomHeight = max(lowerLeft.height, lowerRight.height)
        let earliest = Column.snapUp(topY + topHeight + ruleSpace, dot)
        // Like the ISBT quadrants, the lower barcodes start half-way down when there is room.
        let preferred = Column.snapUp(stock.heightPoints / 2, dot)
        let latest = ((bottomLimit - bottomHeight) / dot + 1e-9).rounded(.down) * dot
        let bottomY = max(earliest, min(preferred, latest))
        if bottomY + bottomHeight > bottomLimit + 1e-9 {
            // Blame the upper band if it reaches past the middle of the label, else the lower one.
            let excess = NumberText.format(bottomY + bottomHeight - bottomLimit)
            let reason = "the label is full (\(excess) pt too long at \(NumberText.format(scale * 100)) % type)"
            let middle = stock.heightPoints / 2 - ruleSpace / 2 - topY
            for upper in [upperLeft, upperRight] {
                if let crossing = upper.firstBelow(middle) { throw Overflow(field: crossing.field, reason: reason) }
            }
            for lower in [lowerLeft, lowerRight] {
                if let crossing = lower.firstBelow(bottomLimit - bottomY) { throw Overflow(field: crossing.field, reason: reason) }
            }
            throw Overflow(field: .intendedUse, reason: reason)
        }

        var elements: [LabelElement] = []
        for upper in [upperLeft, upperRight] { elements += upper.elements.map { $0.moved(dy: topY) } }
        for lower in [lowerLeft, lowerRight] { elements += lower.elements.map { $0.moved(dy: bottomY) } }
        elements += foot.elements.map { $0.moved(dy: footTop) }

        // Rules: one between the upper and lower regions, one above the foot, and a
        // vertical one in the gutter of each band.
        func rule(x: Double, y: Double, width: Double, height: Double) -> LabelElement {
            .box(BoxElement(field: .rule, frame: LabelRect(x: x, y: y, width: width, height: height), style: .filled))
        }
        let topBottom = topY + topHeight
        elements.append(rule(x: area.x, y: (topBottom + bottomY - Design.ruleThickness) / 2, width: area.width, height: Design.ruleThickness))
        if !foot.elements.isEmpty {
            elements.append(rule(x: area.x, y: footTop - Design.ruleGap - Design.ruleThickness, width: area.width, height: Design.ruleThickness))
        }
        let gutterX = area.x + columnWidth + (Design.gutter - Design.ruleThickness) / 2
        elements.append(rule(x: gutterX, y: topY, width: Design.ruleThickness, height: topHeight))
        elements.append(rule(x: gutterX, y: bottomY, width: Design.ruleThickness, height: bottomHeight))
        return elements
    }
}
