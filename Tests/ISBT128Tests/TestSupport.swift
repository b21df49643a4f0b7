import ISBT128
import PropertyBased
import Testing

/// Runs `body`, which must throw exactly `expected`, whose message must be `message`.
func expectError(
    _ expected: ISBT128Error, message: String,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected \(expected) but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as ISBT128Error {
        #expect(error == expected, sourceLocation: sourceLocation)
        #expect(error.description == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected) but \(error) was thrown", sourceLocation: sourceLocation)
    }
}

enum Alphabets {
    static let mod37 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*")
    static let finFirst = Array("ABCDEFGHIJKLMNPQRSTUVWXYZ123456789")
    static let finMiddle = Array("ABCDEFGHIJKLMNPQRSTUVWXYZ0123456789")
    static let digits = Array("0123456789")
}

/// Picks characters by reading `n` as a mixed-radix number, one digit per alphabet.
func characters(from n: Int, alphabets: [[Character]]) -> String {
    var rest = n
    var result = ""
    for alphabet in alphabets {
        result.append(alphabet[rest % alphabet.count])
        rest /= alphabet.count
    }
    return result
}

enum Generators {
    /// Every FIN form ST-001 allows, including the future alphabetic 2nd and 3rd characters.
    static let fin = Gen.int(in: 0...Int(Int32.max)).map { n in
        // Valid by construction, so a throw here is a bug the test reports.
        try? FacilityIdentificationNumber(
            characters(
                from: n,
                alphabets: [
                    Alphabets.finFirst, Alphabets.finMiddle, Alphabets.finMiddle, Alphabets.digits,
                    Alphabets.digits,
                ]))
    }

    static let mod37String = Gen.int(in: 0...Int(Int32.max)).array(of: 1...20).map { numbers in
        String(numbers.map { Alphabets.mod37[$0 % 37] })
    }
}
