import ISBT128
import Testing

@Suite struct FacilityIdentificationNumberTests {
    @Test(arguments: ["G1234", "A9999", "W0000", "V0043", "1AB12", "ZZ999", "9P000"])
    func acceptsFormsOfST001(text: String) throws {
        let fin = try FacilityIdentificationNumber(text)
        #expect(fin.text == text)
        #expect(fin.description == text)
    }

    @Test func refusesOAndZeroFirst() {
        let rule = "facility identification numbers start with A-N, P-Z or 1-9"
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 1, character: "O", rule: rule),
            message: "FIN: character 'O' at position 1 is not allowed (\(rule))."
        ) { _ = try FacilityIdentificationNumber("O1234") }
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 1, character: "0", rule: rule),
            message: "FIN: character '0' at position 1 is not allowed (\(rule))."
        ) { _ = try FacilityIdentificationNumber("01234") }
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 1, character: "g", rule: rule),
            message: "FIN: character 'g' at position 1 is not allowed (\(rule))."
        ) { _ = try FacilityIdentificationNumber("g1234") }
    }

    @Test func refusesOInTheMiddleAndLettersAtTheEnd() {
        let middle = "the 2nd and 3rd characters of a facility identification number are A-N, P-Z or 0-9"
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 3, character: "O", rule: middle),
            message: "FIN: character 'O' at position 3 is not allowed (\(middle))."
        ) { _ = try FacilityIdentificationNumber("G1O34") }
        let end = "the 4th and 5th characters of a facility identification number are digits"
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 4, character: "A", rule: end),
            message: "FIN: character 'A' at position 4 is not allowed (\(end))."
        ) { _ = try FacilityIdentificationNumber("G12A4") }
        expectError(
            .characterNotAllowed(.facilityIdentificationNumber, position: 5, character: "é", rule: end),
            message: "FIN: character 'é' at position 5 is not allowed (\(end))."
        ) { _ = try FacilityIdentificationNumber("G123é") }
    }

    @Test func refusesWrongLength() {
        expectError(
            .wrongLength(.facilityIdentificationNumber, expected: 5, actual: 4),
            message: "FIN: expected 5 characters but found 4."
        ) { _ = try FacilityIdentificationNumber("G123") }
        expectError(
            .wrongLength(.facilityIdentificationNumber, expected: 5, actual: 6),
            message: "FIN: expected 5 characters but found 6."
        ) { _ = try FacilityIdentificationNumber("G12345") }
    }
}
