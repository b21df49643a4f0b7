/// A value printed twice: as a Code 128 barcode and as eye-readable text.
public struct Barcoded: Hashable, Sendable, Codable {
    /// The ISBT 128 data structure as scanned, identifier included (e.g. "=G12341765432100").
    public var dataStructure: String
    /// The text printed for people (e.g. "G1234 17 654321").
    public var eyeReadable: String

    public init(dataStructure: String, eyeReadable: String) {
        self.dataStructure = dataStructure
        self.eyeReadable = eyeReadable
    }
}

/// Everything a unit's cryostorage label shows, already formatted (rounding happens where
/// these strings are composed, not here).
public struct LabelContent: Hashable, Sendable, Codable {
    public var din: Barcoded
    /// The two flag characters printed beside the eye-readable DIN.
    public var dinFlags: String
    /// ISO/IEC 7064 mod 37-2 keyboard check character, printed in a box.
    public var dinCheckCharacter: String
    public var productCode: Barcoded
    public var productName: String
    public var collection: Barcoded
    public var expiration: Barcoded
    public var unitLine: String
    public var volume: String
    public var cellLines: [String]
    public var storage: String
    public var intendedUse: String
    public var warnings: [String]
    public var patientName: String
    public var patientID: String
    public var patientBirthDate: String
    public var facilityName: String
    public var facilityAddress: [String]
    /// A warning printed in bold across the label above the intended use, boxed (e.g. a unit whose
    /// dose is outside the configured band); nil for none.
    public var alert: String?

    public init(
        din: Barcoded, dinFlags: String, dinCheckCharacter: String,
        productCode: Barcoded, productName: String,
        collection: Barcoded, expiration: Barcoded,
        unitLine: String, volume: String, cellLines: [String],
        storage: String, intendedUse: String, warnings: [String],
        patientName: String, patientID: String, patientBirthDate: String,
        facilityName: String, facilityAddress: [String], alert: String? = nil
    ) {
        self.din = din
        self.dinFlags = dinFlags
        self.dinCheckCharacter = dinCheckCharacter
        self.productCode = productCode
        self.productName = productName
        self.collection = collection
        self.expiration = expiration
        self.unitLine = unitLine
        self.volume = volume
        self.cellLines = cellLines
        self.storage = storage
        self.intendedUse = intendedUse
        self.warnings = warnings
        self.patientName = patientName
        self.patientID = patientID
        self.patientBirthDate = patientBirthDate
        self.facilityName = facilityName
        self.facilityAddress = facilityAddress
        self.alert = alert
    }
}
