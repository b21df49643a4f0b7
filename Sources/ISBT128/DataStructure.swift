/// One of the data structures this module reads, recognised by its data identifier
/// (ST-001 2.1, Table 2): `=` and a FIN character for 001, `=<` for 003, `&>` for 005 and
/// `&*` for 007. Other ISBT 128 identifiers are refused as unsupported, not guessed at.
public enum DataStructure: Hashable, Sendable {
    case donationIdentificationNumber(DonationIdentificationNumber)
    case productCode(ProductCode)
    case dateTime(ISBTDateTime)

    public init(parsing text: String) throws(ISBT128Error) {
        let c = Array(text)
        guard c.count >= 2 else { throw .unsupportedDataIdentifier(text) }
        let identifier = String(c.prefix(2))
        switch (c[0], c[1]) {
        case ("=", "<"):
            self = .productCode(try ProductCode(dataStructure: text))
        case ("&", ">"), ("&", "*"):
            self = .dateTime(try ISBTDateTime(dataStructure: text))
        case ("=", let second):
            // Only the DIN has an alphanumeric second identifier character; a wrong one
            // (O, 0, lower case) is reported by the DIN's own check, with its position.
            guard let v = ASCII.value(second), ASCII.isUpper(v) || ASCII.isLower(v) || ASCII.isDigit(v) else {
                throw .unsupportedDataIdentifier(identifier)
            }
            self = .donationIdentificationNumber(try DonationIdentificationNumber(dataStructure: text))
        default:
            throw .unsupportedDataIdentifier(identifier)
        }
    }

    /// The bar code text of the value held.
    public var dataStructure: String {
        switch self {
        case .donationIdentificationNumber(let din): din.dataStructure
        case .productCode(let code): code.dataStructure
        case .dateTime(let dateTime): dateTime.dataStructure
        }
    }
}
