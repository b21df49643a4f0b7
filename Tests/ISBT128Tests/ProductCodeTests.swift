import ISBT128
import PropertyBased
import Testing

@Suite struct ProductCodeTests {
    @Test func autologousUndivided() throws {
        let code = try ProductCode(
            descriptionCode: "S1234", typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        #expect(code.dataStructure == "=<S1234100")
        #expect(code.eyeReadable == "S1234100")
    }

    @Test func fourUnitsGetA0ToD0() throws {
        let base = try ProductCode(
            descriptionCode: "S1234", typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        let units = try (0..<4).map { index throws(ISBT128Error) in
            base.withDivision(try DivisionCode.firstLevel(index))
        }
        #expect(units.map(\.dataStructure) == ["=<S12341A0", "=<S12341B0", "=<S12341C0", "=<S12341D0"])
        #expect(units.map(\.eyeReadable) == ["S12341A0", "S12341B0", "S12341C0", "S12341D0"])
        #expect(Set(units).count == 4)
    }

    @Test func iccbbaExamples() throws {
        // ST-001 v6.2.2 Figure 20 prints "Product: E4306V00" on a blood label.
        let blood = try ProductCode(dataStructure: "=<E4306V00")
        #expect(blood.descriptionCode == "E4306")
        #expect(blood.typeOfCollection.meaning == "Volunteer homologous (allogeneic) (default)")
        #expect(blood.division == .notDivided)
        #expect(blood.eyeReadable == "E4306V00")
        // Figure 3: S12954A0 is description code S1295, collection type 4, division A0.
        let cellular = try ProductCode(dataStructure: "=<S12954A0")
        #expect(cellular.descriptionCode == "S1295")
        #expect(cellular.typeOfCollection.meaning == "Designated")
        #expect(cellular.division.text == "A0")
    }

    @Test(arguments: ["E0001", "F1234", "H0010", "S1194", "P0001", "X0123", "YA123", "YZ999", "SAB12"])
    func categoriesWithTypeAndDivision(descriptionCode: String) throws {
        let code = try ProductCode(
            descriptionCode: descriptionCode, typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        #expect(try ProductCode(dataStructure: code.dataStructure) == code)
    }

    @Test(arguments: ["T0326", "V0006", "M0001", "N0001", "R0001", "W0001", "X1234", "Y1234", "A1234", "D0001"])
    func categoriesWithPackCodesAreRefused(descriptionCode: String) {
        expectError(
            .unsupportedProductCategory(descriptionCode: descriptionCode),
            message: "product code: description code '\(descriptionCode)' is of a category whose last three "
                + "characters are not type of collection and division (only E, F, H, S, P, X0 and YA-YZ codes "
                + "are read here)."
        ) {
            _ = try ProductCode(
                descriptionCode: descriptionCode, typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        }
    }

    @Test func constructionErrors() {
        expectError(
            .wrongLength(.productDescriptionCode, expected: 5, actual: 4),
            message: "product description code: expected 5 characters but found 4."
        ) {
            _ = try ProductCode(
                descriptionCode: "S123", typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        }
        let first = "product description codes start with a letter A-Z"
        expectError(
            .characterNotAllowed(.productDescriptionCode, position: 1, character: "s", rule: first),
            message: "product description code: character 's' at position 1 is not allowed (\(first))."
        ) {
            _ = try ProductCode(
                descriptionCode: "s1234", typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        }
        let rest = "the 2nd to 5th characters of a product description code are A-Z or 0-9"
        expectError(
            .characterNotAllowed(.productDescriptionCode, position: 5, character: "-", rule: rest),
            message: "product description code: character '-' at position 5 is not allowed (\(rest))."
        ) {
            _ = try ProductCode(
                descriptionCode: "S123-", typeOfCollection: .forAutologousUseOnly, division: .notDivided)
        }
    }

    @Test func parseErrors() {
        expectError(
            .wrongDataIdentifier(.productCode, expected: "'=<'", found: "=>"),
            message: "product code: the data identifier must be '=<' but is '=>'."
        ) { _ = try ProductCode(dataStructure: "=>026329") }
        expectError(
            .wrongLength(.productCode, expected: 10, actual: 9),
            message: "product code: expected 10 characters but found 9."
        ) { _ = try ProductCode(dataStructure: "=<S12341A") }
        let first = "product description codes start with a letter A-Z"
        expectError(
            .characterNotAllowed(.productCode, position: 3, character: "1", rule: first),
            message: "product code: character '1' at position 3 is not allowed (\(first))."
        ) { _ = try ProductCode(dataStructure: "=<12341 A0") }
        expectError(
            .unsupportedProductCategory(descriptionCode: "T0326"),
            message: "product code: description code 'T0326' is of a category whose last three characters are "
                + "not type of collection and division (only E, F, H, S, P, X0 and YA-YZ codes are read here)."
        ) { _ = try ProductCode(dataStructure: "=<T0326003") }
        expectError(
            .unknownTypeOfCollection(.productCode, code: "Z"),
            message: "product code: code 'Z' is not a type of collection in ST-001 Table 7."
        ) { _ = try ProductCode(dataStructure: "=<S1234ZA0") }
        let typeRule = "the type of collection is one letter or digit"
        expectError(
            .characterNotAllowed(.productCode, position: 8, character: " ", rule: typeRule),
            message: "product code: character ' ' at position 8 is not allowed (\(typeRule))."
        ) { _ = try ProductCode(dataStructure: "=<S1234 A0") }
        let division = "the first division character is A-Z or 0-9"
        expectError(
            .characterNotAllowed(.productCode, position: 9, character: "a", rule: division),
            message: "product code: character 'a' at position 9 is not allowed (\(division))."
        ) { _ = try ProductCode(dataStructure: "=<S12341a0") }
        let second = "the second division character is a-z or 0-9"
        expectError(
            .characterNotAllowed(.productCode, position: 10, character: "B", rule: second),
            message: "product code: character 'B' at position 10 is not allowed (\(second))."
        ) { _ = try ProductCode(dataStructure: "=<S12341AB") }
    }

    @Test func roundTrips() async {
        let letters = Array("EFHSP")
        let rest = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        await propertyCheck(
            count: 400, input: Gen.int(in: 0...Int(Int32.max)),
            Gen.int(in: 0...(TypeOfCollection.all.count - 1)), Gen.int(in: -1...25)
        ) { n, typeIndex, divisionIndex in
            let description = characters(from: n, alphabets: [letters, rest, rest, rest, rest])
            do {
                let division = divisionIndex < 0 ? DivisionCode.notDivided : try DivisionCode.firstLevel(divisionIndex)
                let code = try ProductCode(
                    descriptionCode: description, typeOfCollection: TypeOfCollection.all[typeIndex],
                    division: division)
                #expect(code.dataStructure.count == 10)
                #expect(try ProductCode(dataStructure: code.dataStructure) == code)
                #expect(try DataStructure(parsing: code.dataStructure) == .productCode(code))
            } catch {
                Issue.record("\(error)")
            }
        }
    }
}
