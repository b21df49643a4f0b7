import Labels
import Testing

@Suite("Code 128 through libzint")
struct Code128Tests {
    @Test("ISBT 128 data: start B for the identifier, subset C for the digits")
    func isbtData() throws {
        let symbol = try Code128.encode("=G12341765432100")
        #expect(symbol.values.first == 104)  // start B
        #expect(symbol.values.contains(99))  // code C
        // start + "=" "G" + code C + 7 digit pairs + check = 12 characters of 11 modules, stop 13.
        #expect(symbol.modules.count == 12 * 11 + 13)
        #expect(symbol.modules.first == true && symbol.modules.suffix(2) == [true, true])
        #expect(try Code128.modules(for: "=G12341765432100") == symbol.modules)
    }

    @Test("libzint's error text explains a refusal")
    func errors() throws {
        let empty = try #require(throws: Code128.EncodingError.self) { try Code128.modules(for: "") }
        #expect(empty.message == "no data to encode")
        let long = try #require(throws: Code128.EncodingError.self) {
            try Code128.modules(for: String(repeating: "A1", count: 200))
        }
        // libzint's own errtxt, e.g. "Error 340: Input too long (160 character maximum)".
        #expect(long.message.lowercased().contains("too long"))
        let latin = try #require(throws: Code128.EncodingError.self) { try Code128.modules(for: "Ø") }
        #expect(latin.description.contains("not ASCII"))
    }

    @Test("encoding from many tasks at once gives the same symbols")
    func concurrent() async throws {
        let inputs = (0..<64).map { "=A9999\(String(1_000_000 + $0))00" }
        let expected = try inputs.map { try Code128.modules(for: $0) }
        let results = try await withThrowingTaskGroup(of: (Int, [Bool]).self) { group in
            for (index, input) in inputs.enumerated() {
                group.addTask { (index, try Code128.modules(for: input)) }
            }
            var collected = [[Bool]](repeating: [], count: inputs.count)
            for try await (index, modules) in group { collected[index] = modules }
            return collected
        }
        #expect(results == expected)
    }
}
