import ISBT128
import Testing

@Suite struct DivisionCodeTests {
    @Test func fourUnitsAreA0ToD0() throws {
        let texts = try (0..<4).map { index throws(ISBT128Error) in try DivisionCode.firstLevel(index).text }
        #expect(texts == ["A0", "B0", "C0", "D0"])
    }

    @Test func firstLevelEnds() throws {
        #expect(try DivisionCode.firstLevel(0).text == "A0")
        #expect(try DivisionCode.firstLevel(25).text == "Z0")
        expectError(
            .divisionIndexOutOfRange(value: 26),
            message: "division code: first-level division index 26 is out of range 0-25 (A0 to Z0)."
        ) { _ = try DivisionCode.firstLevel(26) }
        expectError(
            .divisionIndexOutOfRange(value: -1),
            message: "division code: first-level division index -1 is out of range 0-25 (A0 to Z0)."
        ) { _ = try DivisionCode.firstLevel(-1) }
    }

    @Test func notDivided() throws {
        #expect(DivisionCode.notDivided.text == "00")
        #expect(try DivisionCode("00") == .notDivided)
    }

    @Test func secondLevelIsLowerCase() throws {
        #expect(try DivisionCode("Aa").text == "Aa")
        let second = "the second division character is a-z or 0-9"
        expectError(
            .characterNotAllowed(.divisionCode, position: 2, character: "A", rule: second),
            message: "division code: character 'A' at position 2 is not allowed (\(second))."
        ) { _ = try DivisionCode("AA") }
        let first = "the first division character is A-Z or 0-9"
        expectError(
            .characterNotAllowed(.divisionCode, position: 1, character: "a", rule: first),
            message: "division code: character 'a' at position 1 is not allowed (\(first))."
        ) { _ = try DivisionCode("a0") }
        expectError(
            .wrongLength(.divisionCode, expected: 2, actual: 1),
            message: "division code: expected 2 characters but found 1."
        ) { _ = try DivisionCode("A") }
    }
}
