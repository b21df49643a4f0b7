import ISBT128
import PropertyBased
import Testing

@Suite struct DonationIdentificationNumberTests {
    let g1234 = try! FacilityIdentificationNumber("G1234")

    @Test func specExample() throws {
        let din = try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321)
        #expect(din.thirteenCharacters == "G123417654321")
        #expect(din.keyboardCheckCharacter == "A")
        #expect(din.flags == "00")
        #expect(din.flagKind == .notUsed)
        #expect(din.dataStructure == "=G12341765432100")
        #expect(din.eyeReadable == "G1234 17 654321")
    }

    @Test func paddsYearAndSequence() throws {
        let din = try DonationIdentificationNumber(facility: g1234, year: 5, sequence: 42)
        #expect(din.thirteenCharacters == "G123405000042")
        #expect(din.eyeReadable == "G1234 05 000042")
        #expect(din.dataStructure == "=G12340500004200")
    }

    @Test func type3FlagsOfAppendixA2() throws {
        // ST-001 A.2: checksum 10 + 60 gives flags 70, data content G12341765432170.
        let din = try DonationIdentificationNumber(dataStructure: "=G12341765432170")
        #expect(din.type3Flags == "70")
        #expect(din.flagKind == .checkValue)
        #expect(din.eyeReadable == "G1234 17 654321")
        #expect(try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321, flags: "70") == din)
    }

    @Test func type3FlagsThatDisagreeAreRefused() {
        expectError(
            .flagCheckMismatch(.donationIdentificationNumber, expected: "70", found: "71"),
            message: "DIN: flags '71' are type 3 (check value) flags but the DIN's check value gives '70'."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G12341765432171") }
        expectError(
            .flagCheckMismatch(.flags, expected: "70", found: "96"),
            message: "DIN flag characters: flags '96' are type 3 (check value) flags "
                + "but the DIN's check value gives '70'."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321, flags: "96") }
    }

    @Test func iccbbaFlagExample() throws {
        // ST-001 7.4.1: "W0000 09 123456 02 G", flags 02 = container 2 of a set.
        let din = try DonationIdentificationNumber(dataStructure: "=W00000912345602")
        #expect(din.facility.text == "W0000")
        #expect(din.year == 9)
        #expect(din.sequence == 123_456)
        #expect(din.flags == "02")
        #expect(din.flagKind == .iccbbaDefined)
        #expect(din.eyeReadable == "W0000 09 123456")
        #expect(din.keyboardCheckCharacter == "G")
    }

    @Test(arguments: [
        ("00", DonationIdentificationNumber.FlagKind.notUsed), ("01", .iccbbaDefined), ("13", .iccbbaDefined),
        ("14", .reserved), ("19", .iccbbaDefined), ("20", .locallyDefined), ("59", .locallyDefined),
        ("70", .checkValue), ("97", .reserved), ("99", .reserved), ("AB", .reserved), ("R7", .reserved),
    ])
    func flagKinds(flags: String, kind: DonationIdentificationNumber.FlagKind) throws {
        let din = try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321, flags: flags)
        #expect(din.flagKind == kind)
        #expect(din.dataStructure == "=G123417654321" + flags)
    }

    @Test func withFlagsChecksToo() throws {
        let din = try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321)
        #expect(try din.withFlags("03").dataStructure == "=G12341765432103")
        #expect(try din.withFlags(din.type3Flags).dataStructure == "=G12341765432170")
        #expect(throws: ISBT128Error.self) { try din.withFlags("61") }
    }

    @Test func constructionErrors() {
        expectError(
            .yearOutOfRange(.donationIdentificationNumber, value: 100, allowed: 0...99),
            message: "DIN: year 100 is out of range 0-99."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 100, sequence: 1) }
        expectError(
            .yearOutOfRange(.donationIdentificationNumber, value: -1, allowed: 0...99),
            message: "DIN: year -1 is out of range 0-99."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: -1, sequence: 1) }
        expectError(
            .sequenceOutOfRange(value: 1_000_000),
            message: "DIN: sequence number 1000000 is out of range 0-999999."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 26, sequence: 1_000_000) }
        expectError(
            .sequenceOutOfRange(value: -1),
            message: "DIN: sequence number -1 is out of range 0-999999."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 26, sequence: -1) }
        expectError(
            .wrongLength(.flags, expected: 2, actual: 1),
            message: "DIN flag characters: expected 2 characters but found 1."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 26, sequence: 1, flags: "0") }
        let flagRule = "flag characters are 0-9, A-H, J-N, P or R-Y"
        expectError(
            .characterNotAllowed(.flags, position: 1, character: "I", rule: flagRule),
            message: "DIN flag characters: character 'I' at position 1 is not allowed (\(flagRule))."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 26, sequence: 1, flags: "I0") }
        expectError(
            .characterNotAllowed(.flags, position: 2, character: "Q", rule: flagRule),
            message: "DIN flag characters: character 'Q' at position 2 is not allowed (\(flagRule))."
        ) { _ = try DonationIdentificationNumber(facility: g1234, year: 26, sequence: 1, flags: "0Q") }
    }

    @Test func parseErrors() {
        let identifier = "'=' and a FIN character (A-N, P-Z, 1-9)"
        expectError(
            .wrongLength(.donationIdentificationNumber, expected: 16, actual: 0),
            message: "DIN: expected 16 characters but found 0."
        ) { _ = try DonationIdentificationNumber(dataStructure: "") }
        expectError(
            .wrongDataIdentifier(.donationIdentificationNumber, expected: identifier, found: "G1"),
            message: "DIN: the data identifier must be \(identifier) but is 'G1'."
        ) { _ = try DonationIdentificationNumber(dataStructure: "G12341765432100") }
        expectError(
            .wrongDataIdentifier(.donationIdentificationNumber, expected: identifier, found: "=<"),
            message: "DIN: the data identifier must be \(identifier) but is '=<'."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=<S12341A0") }
        expectError(
            .wrongLength(.donationIdentificationNumber, expected: 16, actual: 15),
            message: "DIN: expected 16 characters but found 15."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G1234176543210") }
        let first = "facility identification numbers start with A-N, P-Z or 1-9"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 2, character: "O", rule: first),
            message: "DIN: character 'O' at position 2 is not allowed (\(first))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=O12341765432100") }
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 2, character: "g", rule: first),
            message: "DIN: character 'g' at position 2 is not allowed (\(first))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=g12341765432100") }
        let finDigit = "the 4th and 5th characters of a facility identification number are digits"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 6, character: "A", rule: finDigit),
            message: "DIN: character 'A' at position 6 is not allowed (\(finDigit))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G123A1765432100") }
        let year = "the year of a DIN is two digits"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 7, character: "A", rule: year),
            message: "DIN: character 'A' at position 7 is not allowed (\(year))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G1234A765432100") }
        let sequence = "the sequence number of a DIN is six digits"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 11, character: "X", rule: sequence),
            message: "DIN: character 'X' at position 11 is not allowed (\(sequence))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G12341765X32100") }
        let flag = "flag characters are 0-9, A-H, J-N, P or R-Y"
        expectError(
            .characterNotAllowed(.donationIdentificationNumber, position: 15, character: "I", rule: flag),
            message: "DIN: character 'I' at position 15 is not allowed (\(flag))."
        ) { _ = try DonationIdentificationNumber(dataStructure: "=G123417654321I0") }
    }

    @Test func keyboardEntry() throws {
        let din = try DonationIdentificationNumber(facility: g1234, year: 17, sequence: 654_321)
        #expect(try DonationIdentificationNumber(keyboardEntry: "G123417654321A") == din)
        #expect(try DonationIdentificationNumber(keyboardEntry: "G1234 17 654321 A") == din)
        #expect(try DonationIdentificationNumber(keyboardEntry: "g123417654321a") == din)
        // The '*' check character of ST-001 Figure 22.
        #expect(try DonationIdentificationNumber(keyboardEntry: "A9999 17 345628 *").sequence == 345_628)
    }

    @Test func keyboardEntryWithWrongCheckCharacterIsRefused() {
        expectError(
            .checkCharacterMismatch(.keyboardEntry, expected: "A", found: "B"),
            message: "DIN keyboard entry: check character 'B' does not match 'A' computed from the other "
                + "characters; something was mistyped."
        ) { _ = try DonationIdentificationNumber(keyboardEntry: "G1234 17 654321 B") }
        // Two digits swapped: the check character catches it.
        expectError(
            .checkCharacterMismatch(.keyboardEntry, expected: "C", found: "A"),
            message: "DIN keyboard entry: check character 'A' does not match 'C' computed from the other "
                + "characters; something was mistyped."
        ) { _ = try DonationIdentificationNumber(keyboardEntry: "G1234 17 654312 A") }
    }

    @Test func keyboardEntryErrorsCountPositionsAsTyped() {
        expectError(
            .wrongLength(.keyboardEntry, expected: 14, actual: 13),
            message: "DIN keyboard entry: expected 14 characters but found 13."
        ) { _ = try DonationIdentificationNumber(keyboardEntry: "G1234 17 654321") }
        let sequence = "the sequence number of a DIN is six digits"
        expectError(
            .characterNotAllowed(.keyboardEntry, position: 15, character: "X", rule: sequence),
            message: "DIN keyboard entry: character 'X' at position 15 is not allowed (\(sequence))."
        ) { _ = try DonationIdentificationNumber(keyboardEntry: "G1234 17 65432X A") }
        let check = "mod 37-2 characters are 0-9, A-Z and *"
        expectError(
            .characterNotAllowed(.keyboardEntry, position: 17, character: "-", rule: check),
            message: "DIN keyboard entry: character '-' at position 17 is not allowed (\(check))."
        ) { _ = try DonationIdentificationNumber(keyboardEntry: "G1234 17 654321 -") }
    }

    @Test func roundTrips() async {
        let flagChoices = ["00", "01", "05", "19", "20", "59", "97", "AB", "R7", "type 3"]
        await propertyCheck(
            count: 500, input: Generators.fin, Gen.int(in: 0...99), Gen.int(in: 0...999_999),
            Gen.int(in: 0...(flagChoices.count - 1))
        ) { fin, year, sequence, flagChoice in
            guard let fin else {
                Issue.record("the FIN generator made an invalid FIN")
                return
            }
            do {
                let plain = try DonationIdentificationNumber(facility: fin, year: year, sequence: sequence)
                let flags = flagChoices[flagChoice] == "type 3" ? plain.type3Flags : flagChoices[flagChoice]
                let din = try plain.withFlags(flags)
                #expect(din.dataStructure.count == 16)
                #expect(try DonationIdentificationNumber(dataStructure: din.dataStructure) == din)
                #expect(try DataStructure(parsing: din.dataStructure) == .donationIdentificationNumber(din))
                let typed = din.eyeReadable + " " + String(din.keyboardCheckCharacter)
                #expect(try DonationIdentificationNumber(keyboardEntry: typed) == plain)
                #expect(Mod37_2.isValid(din.thirteenCharacters + String(din.keyboardCheckCharacter)))
            } catch {
                Issue.record("\(error)")
            }
        }
    }
}
