/// Data structure 003, Product Code: `=<αooootds` (ST-001 2.4.3).
///
/// `αoooo` is the product description code (from ICCBBA's licensed database, so configured),
/// `t` the type of collection (Table 7), `ds` the division code. That reading of `tds` holds
/// only for α = E, F, H, S, P, X0 and YA-YZ; for the other categories `tds` is a three-digit
/// pack code (or locally defined), so those codes are refused here rather than misread.
public struct ProductCode: Hashable, Sendable {
    // Set only through the initialisers, which check them; `withDivision(_:)` changes the division.
    public private(set) var descriptionCode: String
    public private(set) var typeOfCollection: TypeOfCollection
    public private(set) var division: DivisionCode

    public init(
        descriptionCode: String, typeOfCollection: TypeOfCollection, division: DivisionCode
    ) throws(ISBT128Error) {
        let c = Array(descriptionCode)
        guard c.count == 5 else { throw .wrongLength(.productDescriptionCode, expected: 5, actual: c.count) }
        try c.check(Self.descriptionRules, field: .productDescriptionCode, firstPosition: 1)
        try Self.checkCategory(descriptionCode)
        self.descriptionCode = descriptionCode
        self.typeOfCollection = typeOfCollection
        self.division = division
    }

    /// Parses the bar code text `=<αooootds`; positions in errors count from the `=`.
    public init(dataStructure text: String) throws(ISBT128Error) {
        let c = Array(text)
        guard c.count >= 2, c[0] == "=", c[1] == "<" else {
            throw .wrongDataIdentifier(.productCode, expected: "'=<'", found: String(c.prefix(2)))
        }
        guard c.count == 10 else { throw .wrongLength(.productCode, expected: 10, actual: c.count) }
        try Array(c[2..<7]).check(Self.descriptionRules, field: .productCode, firstPosition: 3)
        let descriptionCode = String(c[2..<7])
        try Self.checkCategory(descriptionCode)
        try CharacterRule.typeOfCollection.check(c[7], field: .productCode, position: 8)
        guard let type = try? TypeOfCollection(code: c[7]) else {
            throw .unknownTypeOfCollection(.productCode, code: c[7])
        }
        try Array(c[8..<10]).check(DivisionCode.rules, field: .productCode, firstPosition: 9)
        self.descriptionCode = descriptionCode
        self.typeOfCollection = type
        self.division = DivisionCode(unchecked: String(c[8..<10]))
    }

    /// The same product with another division, e.g. one per unit of a split collection.
    public func withDivision(_ division: DivisionCode) -> ProductCode {
        var copy = self
        copy.division = division
        return copy
    }

    /// The eight data characters, `αooootds`.
    public var dataContent: String { descriptionCode + String(typeOfCollection.code) + division.text }

    /// What the bar code carries: "=<S12341A0".
    public var dataStructure: String { "=<" + dataContent }

    /// As ICCBBA prints it under the bar code: the data content without the data identifier
    /// (ST-001 7.4.2.1), e.g. "E4306V00" on the blood label of Figure 20.
    public var eyeReadable: String { dataContent }
}

extension ProductCode {
    static let descriptionRules: [CharacterRule] = [.descriptionFirst] + Array(repeating: .descriptionRest, count: 4)

    /// ST-001 2.4.3: `t` is type of collection and `ds` the division only for these categories.
    static func checkCategory(_ descriptionCode: String) throws(ISBT128Error) {
        let c = Array(descriptionCode)
        let ok: Bool =
            switch c[0] {
            case "E", "F", "H", "S", "P": true
            case "X": c[1] == "0"
            case "Y": ASCII.isUpper(ASCII.value(c[1]) ?? 0)
            default: false
            }
        guard ok else { throw .unsupportedProductCategory(descriptionCode: descriptionCode) }
    }
}
