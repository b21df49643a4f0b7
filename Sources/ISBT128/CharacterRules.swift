/// One position's allowed characters and the sentence that says so in an error message.
/// ISBT 128 data content is plain ASCII, so everything is decided on the ASCII value.
struct CharacterRule: Sendable {
    let allows: @Sendable (UInt8) -> Bool
    let explanation: String

    func check(_ character: Character, field: ISBT128Error.Field, position: Int) throws(ISBT128Error) {
        guard let value = ASCII.value(character), allows(value) else {
            throw .characterNotAllowed(field, position: position, character: character, rule: explanation)
        }
    }
}

enum ASCII {
    /// The ASCII value of a one-scalar character; nil for anything else (including "\r\n").
    static func value(_ character: Character) -> UInt8? {
        guard character.unicodeScalars.count == 1 else { return nil }
        return character.asciiValue
    }

    static func isDigit(_ v: UInt8) -> Bool { (0x30...0x39).contains(v) }
    static func isUpper(_ v: UInt8) -> Bool { (0x41...0x5A).contains(v) }
    static func isLower(_ v: UInt8) -> Bool { (0x61...0x7A).contains(v) }

    /// The number written by characters already checked to be digits.
    static func number(_ characters: some Sequence<Character>) -> Int {
        characters.reduce(0) { $0 * 10 + Int(($1.asciiValue ?? 0x30) - 0x30) }
    }

    static func padded(_ value: Int, width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

extension CharacterRule {
    static let digit = CharacterRule(allows: ASCII.isDigit, explanation: "only digits 0-9 are allowed here")

    // ST-001 2.4.1: alpha (first FIN character) is {A-N; P-Z; 1-9}; O and 0 are left out so a
    // DIN cannot be confused with another data structure's identifier or misread.
    static let finFirst = CharacterRule(
        allows: { (ASCII.isUpper($0) && $0 != 0x4F) || (0x31...0x39).contains($0) },
        explanation: "facility identification numbers start with A-N, P-Z or 1-9"
    )
    // ST-001 2.4.1: pppp is {A-N; P-Z; 0-9} twice, then two digits (today all four are digits).
    static let finMiddle = CharacterRule(
        allows: { (ASCII.isUpper($0) && $0 != 0x4F) || ASCII.isDigit($0) },
        explanation: "the 2nd and 3rd characters of a facility identification number are A-N, P-Z or 0-9"
    )
    static let finDigit = CharacterRule(
        allows: ASCII.isDigit,
        explanation: "the 4th and 5th characters of a facility identification number are digits"
    )
    static let yearDigit = CharacterRule(allows: ASCII.isDigit, explanation: "the year of a DIN is two digits")
    static let sequenceDigit = CharacterRule(
        allows: ASCII.isDigit, explanation: "the sequence number of a DIN is six digits")
    // ST-001 2.4.1: ff is {0-9}, {A-H; J-N; P; R-Y}.
    static let flag = CharacterRule(
        allows: { v in
            ASCII.isDigit(v) || (ASCII.isUpper(v) && !"IOQZ".utf8.contains(v))
        },
        explanation: "flag characters are 0-9, A-H, J-N, P or R-Y"
    )
    static let mod37 = CharacterRule(
        allows: { ASCII.isDigit($0) || ASCII.isUpper($0) || $0 == 0x2A },
        explanation: "mod 37-2 characters are 0-9, A-Z and *"
    )
    // ST-001 2.4.3: alpha is {A-Z}, oooo is {A-Z; 0-9}.
    static let descriptionFirst = CharacterRule(
        allows: ASCII.isUpper, explanation: "product description codes start with a letter A-Z")
    static let descriptionRest = CharacterRule(
        allows: { ASCII.isUpper($0) || ASCII.isDigit($0) },
        explanation: "the 2nd to 5th characters of a product description code are A-Z or 0-9"
    )
    // ST-001 2.4.3: d is {A-Z; 0-9}, s is {a-z; 0-9} (capital first level, lower-case second level).
    static let divisionFirst = CharacterRule(
        allows: { ASCII.isUpper($0) || ASCII.isDigit($0) },
        explanation: "the first division character is A-Z or 0-9"
    )
    static let divisionSecond = CharacterRule(
        allows: { ASCII.isLower($0) || ASCII.isDigit($0) },
        explanation: "the second division character is a-z or 0-9"
    )
    static let typeOfCollection = CharacterRule(
        allows: { ASCII.isUpper($0) || ASCII.isLower($0) || ASCII.isDigit($0) },
        explanation: "the type of collection is one letter or digit"
    )
    static let dateDigit = CharacterRule(allows: ASCII.isDigit, explanation: "dates and times are digits")
}

extension Array where Element == Character {
    /// Checks `self[i]` against `rules[i]`, reporting positions as `firstPosition + i`.
    func check(
        _ rules: [CharacterRule], field: ISBT128Error.Field, firstPosition: Int
    ) throws(ISBT128Error) {
        for (i, rule) in rules.enumerated() {
            try rule.check(self[i], field: field, position: firstPosition + i)
        }
    }
}
