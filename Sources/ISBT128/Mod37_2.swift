/// ISO/IEC 7064 MOD 37-2, the keyboard entry check character K of ST-001 section 7.5 and
/// Appendix A (Table 35: 0-9 are 0-9, A-Z are 10-35, * is 36).
///
/// The "pure system recursive method" of ISO/IEC 7064 section 7.1, as in ST-001 A.3:
/// s = ((s + v) * 2) mod 37 for each character, then check = (38 - s) mod 37. This equals the
/// weighted sum of Appendix A (value times 2^n, n counted from the right) without overflow.
public enum Mod37_2 {
    static let alphabet: [Character] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*")

    /// The Table 35 value of a character, or nil if it is not in 0-9, A-Z, *.
    public static func value(of character: Character) -> Int? {
        guard let v = ASCII.value(character) else { return nil }
        if ASCII.isDigit(v) { return Int(v) - 0x30 }
        if ASCII.isUpper(v) { return Int(v) - 0x41 + 10 }
        return v == 0x2A ? 36 : nil
    }

    /// The check value 0...36 (type 3 DIN flags are 60 plus this).
    public static func checkValue(for characters: String) throws(ISBT128Error) -> Int {
        var sum = 0
        for (i, character) in characters.enumerated() {
            guard let v = value(of: character) else {
                throw .characterNotAllowed(
                    .checkCharacterInput, position: i + 1, character: character,
                    rule: CharacterRule.mod37.explanation)
            }
            sum = ((sum + v) * 2) % 37
        }
        return (38 - sum) % 37
    }

    /// The check character K for `characters` (0-9, A-Z, *). Throws on any other character.
    public static func checkCharacter(for characters: String) throws(ISBT128Error) -> Character {
        alphabet[try checkValue(for: characters)]
    }

    /// Whether the last character is the check character of the ones before it.
    public static func isValid(_ charactersWithCheck: String) -> Bool {
        guard let check = charactersWithCheck.last else { return false }
        guard let expected = try? checkCharacter(for: String(charactersWithCheck.dropLast())) else { return false }
        return check == expected
    }
}

extension Mod37_2 {
    /// For text already known to hold only 0-9, A-Z, *.
    static func checkValue(validated characters: String) -> Int {
        var sum = 0
        for character in characters {
            sum = ((sum + (value(of: character) ?? 0)) * 2) % 37
        }
        return (38 - sum) % 37
    }
}
