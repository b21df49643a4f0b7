import ISBT128
import Testing

@Suite struct DataStructureTests {
    @Test func recognisesEachByItsIdentifier() throws {
        let din = try DataStructure(parsing: "=G12341765432100")
        guard case .donationIdentificationNumber(let value) = din else {
            Issue.record("not a DIN: \(din)")
            return
        }
        #expect(value.keyboardCheckCharacter == "A")

        let product = try DataStructure(parsing: "=<S12341A0")
        #expect(product == .productCode(try ProductCode(dataStructure: "=<S12341A0")))

        let collected = try DataStructure(parsing: "&*0263291430")
        let collectedValue = try ISBTDateTime(kind: .collection, year: 2026, month: 11, day: 25, hour: 14, minute: 30)
        #expect(collected == .dateTime(collectedValue))
        let expires = try DataStructure(parsing: "&>0263291430")
        let expiresValue = try ISBTDateTime(kind: .expiration, year: 2026, month: 11, day: 25, hour: 14, minute: 30)
        #expect(expires == .dateTime(expiresValue))

        for text in ["=G12341765432170", "=<E4306V00", "&>0283662359", "&*0000010000"] {
            #expect(try DataStructure(parsing: text).dataStructure == text)
        }
    }

    @Test func refusesOtherIdentifiers() {
        let known = "(DIN '=', product code '=<', collection date and time '&*', expiration date and time '&>')."
        for identifier in ["=%", "=>", "=*", "&(", "&a", "XY", "=="] {
            expectError(
                .unsupportedDataIdentifier(identifier),
                message: "data structure: '\(identifier)' is not a data identifier this module reads \(known)"
            ) { _ = try DataStructure(parsing: identifier + "6200") }
        }
        expectError(
            .unsupportedDataIdentifier(""),
            message: "data structure: the text is empty; expected an ISBT 128 data identifier."
        ) { _ = try DataStructure(parsing: "") }
        expectError(
            .unsupportedDataIdentifier("="),
            message: "data structure: '=' is not a data identifier this module reads \(known)"
        ) { _ = try DataStructure(parsing: "=") }
    }

    @Test func aBadFirstFINCharacterIsReportedAsSuch() {
        // "=O" and "=0" look like a DIN; the DIN check names the character and its position.
        let rule = "facility identification numbers start with A-N, P-Z or 1-9"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 2, character: "O", rule: rule),
            message: "DIN: character 'O' at position 2 is not allowed (\(rule))."
        ) { _ = try DataStructure(parsing: "=O12341765432100") }
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 2, character: "0", rule: rule),
            message: "DIN: character '0' at position 2 is not allowed (\(rule))."
        ) { _ = try DataStructure(parsing: "=012341765432100") }
    }

    @Test func errorsFromTheStructureFound() {
        expectError(
            .wrongLength(.productCode, expected: 10, actual: 9),
            message: "product code: expected 10 characters but found 9."
        ) { _ = try DataStructure(parsing: "=<S12341A") }
        expectError(
            .dayOfYearOutOfRange(.dateTime(.collection), year: 2026, value: 366, daysInYear: 365),
            message: "collection date and time: Julian day 366 is out of range for 2026, which has 365 days."
        ) { _ = try DataStructure(parsing: "&*0263661430") }
    }
}
