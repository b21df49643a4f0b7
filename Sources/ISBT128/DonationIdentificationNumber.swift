/// Data structure 001, Donation Identification Number: `=αppppyynnnnnnff` (ST-001 2.4.1).
///
/// The 13-character DIN is the FIN `αpppp`, the two-digit nominal year `yy` and the sequence
/// `nnnnnn`; the data identifier is `=` followed by α, which is also the DIN's first character.
/// The flags `ff` are not part of the DIN; neither is the keyboard check character K (7.5).
public struct DonationIdentificationNumber: Hashable, Sendable {
    /// The kinds of flag values of ST-001 Table 3 [RT004]; the label needs it, since type 1
    /// and 2 flags are printed (rotated), while "00" need not be and type 3 must not be (7.4.1).
    public enum FlagKind: Hashable, Sendable {
        /// `00`: flags not used.
        case notUsed
        /// Type 1, `01`-`19` except `14`: defined by ICCBBA (e.g. `01` container 1 of a set).
        case iccbbaDefined
        /// Type 2, `20`-`59`: defined by the facility, meaningful only within it.
        case locallyDefined
        /// Type 3, `60`-`96`: 60 plus the mod 37-2 check value of the 13 characters.
        case checkValue
        /// `14`, `97`-`99` and alphanumeric values: reserved for future assignment.
        case reserved
    }

    // Set only through the initialisers, which check them; `withFlags(_:)` changes flags.
    public private(set) var facility: FacilityIdentificationNumber
    /// The last two digits of the nominal year in which the DIN was assigned, 0...99.
    public private(set) var year: Int
    /// The sequence number within the nominal year for the FIN, 0...999_999.
    public private(set) var sequence: Int
    /// Two flag characters, `"00"` when not used.
    public private(set) var flags: String

    public init(
        facility: FacilityIdentificationNumber, year: Int, sequence: Int, flags: String = "00"
    ) throws(ISBT128Error) {
        guard (0...99).contains(year) else {
            throw .yearOutOfRange(.donationIdentificationNumber, value: year, allowed: 0...99)
        }
        guard (0...999_999).contains(sequence) else { throw .sequenceOutOfRange(value: sequence) }
        self.facility = facility
        self.year = year
        self.sequence = sequence
        self.flags = "00"
        try Self.checkFlags(Array(flags), checkValue: checkValue, field: .flags, firstPosition: 1)
        self.flags = flags
    }

    /// Parses the bar code text `=αppppyynnnnnnff`; positions in errors count from the `=`.
    public init(dataStructure text: String) throws(ISBT128Error) {
        let c = Array(text)
        guard let first = c.first else { throw .wrongLength(.donationIdentificationNumber, expected: 16, actual: 0) }
        let expectedIdentifier = "'=' and a FIN character (A-N, P-Z, 1-9)"
        guard first == "=" else {
            throw .wrongDataIdentifier(
                .donationIdentificationNumber, expected: expectedIdentifier, found: String(c.prefix(2)))
        }
        // Every other ISBT 128 data identifier has a non-alphanumeric second character (ST-001 2.1).
        if c.count >= 2, let v = ASCII.value(c[1]), !(ASCII.isUpper(v) || ASCII.isLower(v) || ASCII.isDigit(v)) {
            throw .wrongDataIdentifier(
                .donationIdentificationNumber, expected: expectedIdentifier, found: String(c.prefix(2)))
        }
        guard c.count == 16 else {
            throw .wrongLength(.donationIdentificationNumber, expected: 16, actual: c.count)
        }
        let thirteen = Array(c[1..<14])
        try thirteen.check(Self.thirteenRules, field: .donationIdentificationNumber, firstPosition: 2)
        self.init(validatedThirteen: thirteen)
        let flags = Array(c[14..<16])
        try Self.checkFlags(flags, checkValue: checkValue, field: .donationIdentificationNumber, firstPosition: 15)
        self.flags = String(flags)
    }

    /// Reads what a person typed from the label: the 13 DIN characters and the boxed check
    /// character K, which must match. Spaces are ignored (the label prints "G1234 17 654321 A")
    /// and lower-case letters read as capitals (a DIN has none). Flags are "00".
    /// Positions in errors count in the text as typed, spaces included.
    public init(keyboardEntry: String) throws(ISBT128Error) {
        var kept: [(character: Character, position: Int)] = []
        for (i, character) in keyboardEntry.enumerated() where character != " " {
            kept.append((Self.capital(character), i + 1))
        }
        guard kept.count == 14 else { throw .wrongLength(.keyboardEntry, expected: 14, actual: kept.count) }
        for (rule, entry) in zip(Self.thirteenRules + [.mod37], kept) {
            try rule.check(entry.character, field: .keyboardEntry, position: entry.position)
        }
        self.init(validatedThirteen: kept.prefix(13).map(\.character))
        let typed = kept[13].character
        guard typed == keyboardCheckCharacter else {
            throw .checkCharacterMismatch(.keyboardEntry, expected: keyboardCheckCharacter, found: typed)
        }
    }

    /// The same DIN with other flags, checked as in `init(facility:year:sequence:flags:)`.
    public func withFlags(_ flags: String) throws(ISBT128Error) -> DonationIdentificationNumber {
        try DonationIdentificationNumber(facility: facility, year: year, sequence: sequence, flags: flags)
    }

    /// `αppppyynnnnnn`, e.g. "G123417654321".
    public var thirteenCharacters: String {
        facility.text + ASCII.padded(year, width: 2) + ASCII.padded(sequence, width: 6)
    }

    /// The mod 37-2 check value 0...36 of the 13 characters (ST-001 Appendix A, step 6).
    public var checkValue: Int { Mod37_2.checkValue(validated: thirteenCharacters) }

    /// K, printed boxed after the eye-readable DIN (ST-001 7.5); "A" for G123417654321.
    public var keyboardCheckCharacter: Character { Mod37_2.alphabet[checkValue] }

    /// Type 3 flags for this DIN: 60 plus the check value (ST-001 Appendix A.2), e.g. "70".
    public var type3Flags: String { String(60 + checkValue) }

    public var flagKind: FlagKind {
        let c = Array(flags)
        guard c.count == 2, let a = ASCII.value(c[0]), let b = ASCII.value(c[1]),
            ASCII.isDigit(a), ASCII.isDigit(b)
        else { return .reserved }
        switch ASCII.number(c) {
        case 0: return .notUsed
        case 14: return .reserved
        case 1...19: return .iccbbaDefined
        case 20...59: return .locallyDefined
        case 60...96: return .checkValue
        default: return .reserved
        }
    }

    /// What the bar code carries: "=G12341765432100".
    public var dataStructure: String { "=" + thirteenCharacters + flags }

    /// The 13 characters spaced as ICCBBA prints them, "G1234 17 654321" (no flags, no K).
    public var eyeReadable: String {
        "\(facility.text) \(ASCII.padded(year, width: 2)) \(ASCII.padded(sequence, width: 6))"
    }
}

extension DonationIdentificationNumber {
    static let thirteenRules: [CharacterRule] =
        FacilityIdentificationNumber.rules + [.yearDigit, .yearDigit]
        + Array(repeating: .sequenceDigit, count: 6)

    /// For 13 characters already checked against `thirteenRules`; flags "00".
    init(validatedThirteen c: [Character]) {
        facility = FacilityIdentificationNumber(unchecked: String(c[0..<5]))
        year = ASCII.number(c[5..<7])
        sequence = ASCII.number(c[7..<13])
        flags = "00"
    }

    /// ST-001 2.4.1 and Table 3: two characters of 0-9, A-H, J-N, P, R-Y; values 60-96 are
    /// type 3 flags and must carry this DIN's check value. Reserved values are accepted, so a
    /// label made under a later version of the standard still reads.
    static func checkFlags(
        _ flags: [Character], checkValue: Int, field: ISBT128Error.Field, firstPosition: Int
    ) throws(ISBT128Error) {
        guard flags.count == 2 else { throw .wrongLength(field, expected: 2, actual: flags.count) }
        try flags.check([.flag, .flag], field: field, firstPosition: firstPosition)
        guard flags.allSatisfy({ ASCII.isDigit($0.asciiValue ?? 0) }) else { return }
        let value = ASCII.number(flags)
        if (60...96).contains(value), value != 60 + checkValue {
            throw .flagCheckMismatch(field, expected: String(60 + checkValue), found: String(flags))
        }
    }

    static func capital(_ character: Character) -> Character {
        guard let v = ASCII.value(character), ASCII.isLower(v) else { return character }
        return Character(Unicode.Scalar(v - 0x20))
    }
}
