import ApheresisCore

/// `[product]`: the clinic's product practice and identification (product-records.md).
/// Facility number and product description code come from ICCBBA and have no real default:
/// a configuration file without them cannot make products. The demo (no file) uses
/// placeholders that say so on every label.
public struct ProductSettings: Sendable, Equatable {
    /// ICCBBA facility identification number (5 characters); nil when not configured.
    public var facilityIdentificationNumber: String?
    public var facilityName: String
    public var facilityAddress: [String]
    /// ICCBBA product description code (5 characters, from the licensed database); nil when not configured.
    public var productDescriptionCode: String?
    public var productName: String
    public var dinFlags: String
    public var policy: ProductPolicy
    /// Printed on every label.
    public var storage: String
    /// Expiry after collection (local policy for cryopreserved cells).
    public var shelfLifeDays: Int
    /// ISBT 128 dates are local to the facility; nil means the machine's time zone.
    public var timeZone: String?
    public var labels: LabelSettings

    public init(
        facilityIdentificationNumber: String?, facilityName: String, facilityAddress: [String],
        productDescriptionCode: String?, productName: String, dinFlags: String = "00",
        policy: ProductPolicy = .referencePractice, storage: String = ProductSettings.defaultStorage,
        shelfLifeDays: Int = ProductSettings.defaultShelfLifeDays, timeZone: String? = nil, labels: LabelSettings = LabelSettings()
    ) {
        self.facilityIdentificationNumber = facilityIdentificationNumber
        self.facilityName = facilityName
        self.facilityAddress = facilityAddress
        self.productDescriptionCode = productDescriptionCode
        self.productName = productName
        self.dinFlags = dinFlags
        self.policy = policy
        self.storage = storage
        self.shelfLifeDays = shelfLifeDays
        self.timeZone = timeZone
        self.labels = labels
    }

    public static let defaultStorage = "Store in liquid nitrogen at or below -150 C"
    public static let defaultShelfLifeDays = 3650
    public static let defaultProductName = "MNC, APHERESIS - CD3+ T LYMPHOCYTES, CRYOPRESERVED"

    /// A file without `[product]`: the practice of product-records.md, but no identification.
    public static let unconfigured = ProductSettings(
        facilityIdentificationNumber: nil, facilityName: "", facilityAddress: [], productDescriptionCode: nil,
        productName: defaultProductName)

    /// The demo's placeholders: not ICCBBA assignments, and the facility text says so.
    public static let demo = ProductSettings(
        facilityIdentificationNumber: "A9999", facilityName: "DEMO FACILITY - NOT FOR CLINICAL USE",
        facilityAddress: ["apheresisd demo configuration"], productDescriptionCode: "S9999",
        productName: defaultProductName)
}

/// `[labels]`: label stock and printer.
public struct LabelSettings: Sendable, Equatable {
    public var widthInches: Double = 4
    public var heightInches: Double = 4
    public var printerDotsPerInch: Int = 203
    /// A raw label printer's address as written (`PrinterAddress`'s rule); nil: ZPL goes to files only.
    public var printer: String?
    public init(widthInches: Double = 4, heightInches: Double = 4, printerDotsPerInch: Int = 203, printer: String? = nil) {
        self.widthInches = widthInches
        self.heightInches = heightInches
        self.printerDotsPerInch = printerDotsPerInch
        self.printer = printer
    }
}
