/// The division code `ds` of a product code (data structure 003, ST-001 2.4.3): `00` when the
/// product is not divided, a capital letter for first-level divisions (`A0`, `B0`, ...), a
/// lower-case letter for second-level ones (`Aa`). `d` is A-Z or 0-9, `s` is a-z or 0-9.
public struct DivisionCode: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ISBT128Error) {
        let c = Array(text)
        guard c.count == 2 else { throw .wrongLength(.divisionCode, expected: 2, actual: c.count) }
        try c.check(Self.rules, field: .divisionCode, firstPosition: 1)
        self.text = text
    }

    init(unchecked text: String) { self.text = text }

    static let rules: [CharacterRule] = [.divisionFirst, .divisionSecond]

    public static let notDivided = DivisionCode(unchecked: "00")

    /// The first-level division `index` of a product split into units: 0 -> "A0", 1 -> "B0",
    /// ... 25 -> "Z0".
    public static func firstLevel(_ index: Int) throws(ISBT128Error) -> DivisionCode {
        guard (0...25).contains(index) else { throw .divisionIndexOutOfRange(value: index) }
        return DivisionCode(unchecked: String(Character(Unicode.Scalar(UInt8(0x41 + index)))) + "0")
    }

    public var description: String { text }
}
