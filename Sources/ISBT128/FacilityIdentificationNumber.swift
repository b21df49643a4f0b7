/// The five-character Facility Identification Number (FIN) `αpppp` that starts every DIN
/// (ST-001 2.4.1): α in A-N, P-Z, 1-9; then two of A-N, P-Z, 0-9; then two digits.
/// ICCBBA assigns FINs; the daemon takes its own from configuration.
public struct FacilityIdentificationNumber: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) throws(ISBT128Error) {
        let characters = Array(text)
        guard characters.count == 5 else {
            throw .wrongLength(.facilityIdentificationNumber, expected: 5, actual: characters.count)
        }
        try Self.check(characters, field: .facilityIdentificationNumber, firstPosition: 1)
        self.text = text
    }

    public var description: String { text }

    static let rules: [CharacterRule] = [.finFirst, .finMiddle, .finMiddle, .finDigit, .finDigit]

    static func check(
        _ characters: [Character], field: ISBT128Error.Field, firstPosition: Int
    ) throws(ISBT128Error) {
        try characters.check(rules, field: field, firstPosition: firstPosition)
    }
}

extension FacilityIdentificationNumber {
    /// For text already checked against `rules`.
    init(unchecked text: String) { self.text = text }
}
