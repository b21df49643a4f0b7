/// A rectangle on the stock in points, origin at the top-left corner, y growing downwards
/// (the way label printers count).
public struct LabelRect: Hashable, Sendable, CustomStringConvertible {
    public var x: Double
    public var y: Double
    public var width: Double
    public var height: Double

    public init(x: Double, y: Double, width: Double, height: Double) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }

    public var minX: Double { x }
    public var minY: Double { y }
    public var maxX: Double { x + width }
    public var maxY: Double { y + height }

    /// True when the two share area; rectangles that only touch do not overlap.
    public func overlaps(_ other: LabelRect) -> Bool {
        minX < other.maxX && other.minX < maxX && minY < other.maxY && other.minY < maxY
    }

    /// True when `other` lies inside this rectangle (within `tolerance` points).
    public func contains(_ other: LabelRect, tolerance: Double = 1e-6) -> Bool {
        other.minX >= minX - tolerance && other.maxX <= maxX + tolerance
            && other.minY >= minY - tolerance && other.maxY <= maxY + tolerance
    }

    public func insetBy(_ amount: Double) -> LabelRect {
        LabelRect(x: x + amount, y: y + amount, width: width - 2 * amount, height: height - 2 * amount)
    }

    public var description: String {
        "(x \(NumberText.format(x)), y \(NumberText.format(y)), w \(NumberText.format(width)), h \(NumberText.format(height)))"
    }
}

/// Which part of the content an element shows; errors name it the way `LabelContent` does.
public enum LabelField: Hashable, Sendable, CustomStringConvertible {
    case din, dinFlags, dinCheckCharacter
    case productCode, productName
    case collection, collectionCaption
    case expiration, expirationCaption
    case unitLine, volume, cellLine(Int)
    case storage, intendedUse, warning(Int)
    case patientName, patientID, patientBirthDate
    case facilityName, facilityAddress(Int)
    /// A boxed warning across the label (LabelContent.alert).
    case alert
    /// Rules between the label's regions.
    case rule

    public var description: String {
        switch self {
        case .din: "din"
        case .dinFlags: "dinFlags"
        case .dinCheckCharacter: "dinCheckCharacter"
        case .productCode: "productCode"
        case .productName: "productName"
        case .collection: "collection"
        case .collectionCaption: "collection caption"
        case .expiration: "expiration"
        case .expirationCaption: "expiration caption"
        case .unitLine: "unitLine"
        case .volume: "volume"
        case .cellLine(let index): "cellLines[\(index)]"
        case .storage: "storage"
        case .intendedUse: "intendedUse"
        case .warning(let index): "warnings[\(index)]"
        case .patientName: "patientName"
        case .patientID: "patientID"
        case .patientBirthDate: "patientBirthDate"
        case .facilityName: "facilityName"
        case .facilityAddress(let index): "facilityAddress[\(index)]"
        case .alert: "alert"
        case .rule: "rule"
        }
    }
}

public enum FontWeight: String, Hashable, Sendable {
    /// Helvetica in PDF and SVG.
    case regular
    /// Helvetica-Bold in PDF and SVG.
    case bold
}

/// Turns of the text, clockwise as seen on the label.
public enum TextRotation: Int, Hashable, Sendable {
    case none = 0
    /// Reads top to bottom (ZPL orientation R).
    case clockwise90 = 90
    /// Upside down (ZPL orientation I).
    case clockwise180 = 180
    /// Reads bottom to top (ZPL orientation B).
    case clockwise270 = 270
}

/// One line of text.
public struct TextElement: Hashable, Sendable {
    public let field: LabelField
    /// Control and format characters already removed.
    public let text: String
    /// Font size (em) in points.
    public let fontSize: Double
    public let weight: FontWeight
    public let rotation: TextRotation
    /// Length of the line along its baseline (Helvetica metrics).
    public let advance: Double
    /// Where the line sits on the stock after rotation.
    public let frame: LabelRect

    /// Height of the line box: ascenders of accented capitals to descenders.
    public static let lineHeightFactor = 1.15
    /// From the top of the line box to the baseline.
    public static let baselineFactor = 0.92

    public var lineHeight: Double { fontSize * Self.lineHeightFactor }
    public var baselineOffset: Double { fontSize * Self.baselineFactor }

    public init(field: LabelField, text: String, fontSize: Double, weight: FontWeight, rotation: TextRotation = .none, x: Double, y: Double) {
        self.field = field
        self.text = text
        self.fontSize = fontSize
        self.weight = weight
        self.rotation = rotation
        let advance = TextMetrics.width(of: text, size: fontSize, weight: weight)
        self.advance = advance
        let lineHeight = fontSize * Self.lineHeightFactor
        switch rotation {
        case .none, .clockwise180: frame = LabelRect(x: x, y: y, width: advance, height: lineHeight)
        case .clockwise90, .clockwise270: frame = LabelRect(x: x, y: y, width: lineHeight, height: advance)
        }
    }

    /// Start of the baseline on the stock (top-left origin) and its direction, for renderers.
    var baselineStart: (x: Double, y: Double) {
        let descent = lineHeight - baselineOffset
        switch rotation {
        case .none: return (frame.minX, frame.minY + baselineOffset)
        case .clockwise90: return (frame.minX + descent, frame.minY)
        case .clockwise180: return (frame.maxX, frame.minY + descent)
        case .clockwise270: return (frame.minX + baselineOffset, frame.maxY)
        }
    }
}

/// A horizontal Code 128 symbol whose bars come from libzint.
public struct BarcodeElement: Hashable, Sendable {
    public let field: LabelField
    public let symbol: Code128.Symbol
    /// Left edge of the first bar.
    public let x: Double
    /// Top of the bars.
    public let y: Double
    /// Narrowest bar or space (the X dimension), a whole number of printer dots.
    public let moduleWidth: Double
    public let barHeight: Double
    /// Light margin kept on each side, in modules.
    public let quietZoneModules: Int

    public var data: String { symbol.data }

    /// The bars only.
    public var barsFrame: LabelRect {
        LabelRect(x: x, y: y, width: Double(symbol.modules.count) * moduleWidth, height: barHeight)
    }

    /// The bars with their quiet zones: nothing else may be drawn here.
    public var frame: LabelRect {
        let quiet = Double(quietZoneModules) * moduleWidth
        let bars = barsFrame
        return LabelRect(x: bars.x - quiet, y: bars.y, width: bars.width + 2 * quiet, height: bars.height)
    }

    /// Each bar as a rectangle on the stock.
    public var bars: [LabelRect] {
        symbol.bars.map { run in
            LabelRect(x: x + Double(run.start) * moduleWidth, y: y, width: Double(run.width) * moduleWidth, height: barHeight)
        }
    }
}

public enum BoxStyle: Hashable, Sendable {
    /// An outline drawn inside the frame.
    case stroked(lineWidth: Double)
    /// A solid rectangle (rules).
    case filled
}

/// A box around text (the check character) or a rule between regions.
public struct BoxElement: Hashable, Sendable {
    public let field: LabelField
    /// Outer edges, stroke included.
    public let frame: LabelRect
    public let style: BoxStyle

    /// The area inside the stroke; what a box encloses must lie in here.
    public var interior: LabelRect {
        switch style {
        case .stroked(let lineWidth): frame.insetBy(lineWidth)
        case .filled: LabelRect(x: frame.midX, y: frame.midY, width: 0, height: 0)
        }
    }
}

extension LabelRect {
    var midX: Double { x + width / 2 }
    var midY: Double { y + height / 2 }
}

public enum LabelElement: Hashable, Sendable {
    case text(TextElement)
    case barcode(BarcodeElement)
    case box(BoxElement)

    /// The area the element claims; for barcodes the quiet zones are included.
    public var frame: LabelRect {
        switch self {
        case .text(let text): text.frame
        case .barcode(let barcode): barcode.frame
        case .box(let box): box.frame
        }
    }

    public var field: LabelField {
        switch self {
        case .text(let text): text.field
        case .barcode(let barcode): barcode.field
        case .box(let box): box.field
        }
    }
}
