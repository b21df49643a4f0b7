import ISBT128
import Testing

@Suite struct TypeOfCollectionTests {
    @Test func autologousUseOnlyIsCodeOne() throws {
        // ST-001 v6.2.2 Table 7 [RT008]: "1 (one)  For autologous use only".
        #expect(TypeOfCollection.forAutologousUseOnly.code == "1")
        #expect(TypeOfCollection.forAutologousUseOnly.meaning == "For autologous use only")
        #expect(try TypeOfCollection(code: "1") == .forAutologousUseOnly)
    }

    @Test func tableHasEveryCodeOnce() throws {
        #expect(TypeOfCollection.all.count == 29)
        #expect(Set(TypeOfCollection.all.map(\.code)).count == TypeOfCollection.all.count)
        for type in TypeOfCollection.all {
            #expect(try TypeOfCollection(code: type.code) == type)
        }
        // Case matters: V volunteer homologous, r paid research, A autologous eligible for crossover.
        #expect(try TypeOfCollection(code: "V").meaning == "Volunteer homologous (allogeneic) (default)")
        #expect(try TypeOfCollection(code: "r").meaning
            == "Paid research (Product not intended for human application)")
        #expect(try TypeOfCollection(code: "A").meaning == "Autologous, eligible for crossover")
    }

    @Test func unknownCodeIsRefused() {
        expectError(
            .unknownTypeOfCollection(.typeOfCollection, code: "Z"),
            message: "type of collection: code 'Z' is not a type of collection in ST-001 Table 7."
        ) { _ = try TypeOfCollection(code: "Z") }
        expectError(
            .unknownTypeOfCollection(.typeOfCollection, code: "v"),
            message: "type of collection: code 'v' is not a type of collection in ST-001 Table 7."
        ) { _ = try TypeOfCollection(code: "v") }
    }
}
