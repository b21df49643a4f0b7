/// Text that TOMLKit must not be handed, found before it is (both found by fuzzing, issue 13):
///
/// - a NUL: TOMLKit passes the text to its parser as a C string, which the NUL would end, and the
///   rest of the file would be ignored without a word;
/// - a table header whose key starts with neither a bare-key character nor a quote (`[=]`, `[é]`,
///   `[` alone on its line): toml++ (inside TOMLKit) asserts that it cannot happen, so it aborts the
///   process in a debug build and is undefined behaviour in a release build.
///
/// Both are invalid TOML, reported as syntax problems at their place. Everything else is left to
/// the parser: this only needs to know where strings, comments and values are.
enum TOMLGuard {
    static func problem(in text: String, file: String) -> ConfigurationProblem? {
        let bytes = Array(text.utf8)
        if let nul = bytes.firstIndex(of: 0) {
            return syntax(bytes, at: nul, file: file, "a NUL character (byte 0), which a text file cannot hold")
        }
        if let bad = malformedHeader(bytes) {
            return syntax(
                bytes, at: bad, file: file,
                "a table header's name must start with a letter, digit, _ or - (or be quoted), as in [daemon] or [[device]]")
        }
        return nil
    }

    private static func syntax(_ bytes: [UInt8], at offset: Int, file: String, _ what: String) -> ConfigurationProblem {
        let before = bytes[..<offset]
        let lineStart = before.lastIndex(of: newline).map { $0 + 1 } ?? 0
        return ConfigurationProblem(
            kind: .syntax, file: file, line: before.count { $0 == newline } + 1, column: offset - lineStart + 1, keyPath: "",
            message: "not valid TOML: \(what)")
    }

    private static let newline = UInt8(ascii: "\n")

    /// The offset of the first character after `[` or `[[` (and blanks) of a table header that is
    /// neither a bare-key character, a quote nor the closing `]`.
    static func malformedHeader(_ bytes: [UInt8]) -> Int? {
        var i = 0
        var depth = 0  // open arrays and inline tables of a value
        var atLineStart = true
        func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        func skipBlanks(_ j: inout Int) { while j < bytes.count, isBlank(bytes[j]) { j += 1 } }
        func starts(_ s: StaticString, at j: Int) -> Bool {
            let count = s.utf8CodeUnitCount
            guard j + count <= bytes.count else { return false }
            return (0..<count).allSatisfy { bytes[j + $0] == s.utf8Start[$0] }
        }
        /// Past the string starting at `j` (a quote); single-line strings also end at their line's end.
        func skipString(from j: Int) -> Int {
            let quote = bytes[j]
            let basic = quote == UInt8(ascii: "\"")
            let delimiter: StaticString = basic ? "\"\"\"" : "'''"
            if starts(delimiter, at: j) {
                var k = j + 3
                while k < bytes.count {
                    if basic, bytes[k] == UInt8(ascii: "\\") {
                        k += 2
                    } else if starts(delimiter, at: k) {
                        k += 3
                        while k < bytes.count, bytes[k] == quote { k += 1 }  // up to two quotes may close it
                        return k
                    } else {
                        k += 1
                    }
                }
                return k
            }
            var k = j + 1
            while k < bytes.count, bytes[k] != newline {
                if basic, bytes[k] == UInt8(ascii: "\\") {
                    k += 2
                    continue
                }
                if bytes[k] == quote { return k + 1 }
                k += 1
            }
            return k
        }

        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case newline:
                atLineStart = true
                i += 1
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1
            case UInt8(ascii: "#"):
                while i < bytes.count, bytes[i] != newline { i += 1 }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                i = skipString(from: i)
                atLineStart = false
            case UInt8(ascii: "[") where depth == 0 && atLineStart:
                var j = i + 1
                skipBlanks(&j)
                var arrayOfTables = false
                if j < bytes.count, bytes[j] == UInt8(ascii: "["), j == i + 1 {
                    arrayOfTables = true
                    j += 1
                    skipBlanks(&j)
                }
                if j < bytes.count {
                    let c = bytes[j]
                    let keyStart =
                        (0x30...0x39).contains(c) || (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c)
                        || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "'")
                    // The parser itself refuses the blank name `[]` and the split brackets of `[ [`.
                    if !keyStart, c != UInt8(ascii: "]"), arrayOfTables || c != UInt8(ascii: "[") { return j }
                }
                // The rest of the header line: its key may hold quoted text.
                i = j
                while i < bytes.count, bytes[i] != newline {
                    if bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") { i = skipString(from: i) } else { i += 1 }
                }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                atLineStart = false
                i += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
                atLineStart = false
                i += 1
            default:
                atLineStart = false
                i += 1
            }
        }
        return nil
    }
}
