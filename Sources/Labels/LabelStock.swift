/// Thermal printer resolutions the ZPL renderer supports.
public enum PrinterResolution: Int, Hashable, Sendable, Codable, CaseIterable {
    case dpi203 = 203
    case dpi300 = 300

    public var dotsPerInch: Int { rawValue }

    /// Points (1/72 inch) per printer dot.
    public var pointsPerDot: Double { 72 / Double(rawValue) }
}

/// The label stock. All lengths are in points (1/72 inch).
public struct LabelStock: Hashable, Sendable, Codable {
    public var widthPoints: Double
    public var heightPoints: Double
    /// Kept clear on every edge: printers cannot print to the edge of the stock.
    public var marginPoints: Double
    public var resolution: PrinterResolution

    public static let pointsPerInch = 72.0
    public static let pointsPerMillimetre = 72.0 / 25.4

    /// 4 x 4 inch stock, 2 mm margins, 203 dpi.
    public init(
        widthPoints: Double = 4 * 72,
        heightPoints: Double = 4 * 72,
        marginPoints: Double = 2 * LabelStock.pointsPerMillimetre,
        resolution: PrinterResolution = .dpi203
    ) {
        self.widthPoints = widthPoints
        self.heightPoints = heightPoints
        self.marginPoints = marginPoints
        self.resolution = resolution
    }

    /// The area inside the margins.
    public var printableArea: LabelRect {
        LabelRect(
            x: marginPoints, y: marginPoints,
            width: widthPoints - 2 * marginPoints, height: heightPoints - 2 * marginPoints)
    }

    /// `points` in whole printer dots (ZPL positions and sizes).
    public func dots(_ points: Double) -> Int {
        Int((points / resolution.pointsPerDot).rounded())
    }
}
