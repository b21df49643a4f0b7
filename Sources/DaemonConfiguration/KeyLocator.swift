/// Line numbers for keys of a valid document, which TOMLKit does not give:
/// a scan of the text that follows table headers (`[daemon]`, the n-th
/// `[[device]]`) and `key =` lines within them. It only has to be right for
/// documents TOMLKit has already accepted.
struct KeyLocator {
    struct Position: Equatable {
        var line: Int
        var column: Int
    }

    /// "format", "daemon", "daemon.log_level", "device[2]", "device[2].baud" → where it starts.
    private(set) var positions: [String: Position] = [:]

    init(text: String) {
        var table = ""
        var arrayCounts: [String: Int] = [:]
        var openMultiline: Substring? = nil  // the delimiter of a multi-line string being skipped
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if let delimiter = openMultiline {
                if Self.count(of: delimiter, in: line) % 2 == 1 { openMultiline = nil }
                continue
            }
            let indent = line.prefix(while: { $0 == " " || $0 == "\t" }).count
            let body = line.dropFirst(indent)
            if body.hasPrefix("[[") {
                let name = Self.headerName(body.dropFirst(2), closing: "]]")
                let index = arrayCounts[name, default: 0] + 1
                arrayCounts[name] = index
                table = "\(name)[\(index)]"
                record(table, line: lineNumber, column: indent + 1)
            } else if body.hasPrefix("[") {
                table = Self.headerName(body.dropFirst(), closing: "]")
                record(table, line: lineNumber, column: indent + 1)
            } else if let key = Self.leadingKey(body) {
                record(table.isEmpty ? key : table + "." + key, line: lineNumber, column: indent + 1)
                for delimiter in ["\"\"\"", "'''"] where Self.count(of: Substring(delimiter), in: body) % 2 == 1 {
                    openMultiline = Substring(delimiter)
                }
            }
        }
    }

    /// Where `path` is; failing that, its nearest enclosing table or key.
    func position(of path: String) -> Position? {
        var candidate = path
        while true {
            if let found = positions[candidate] { return found }
            guard let cut = candidate.lastIndex(where: { $0 == "." || $0 == "[" }) else { return nil }
            candidate = String(candidate[..<cut])
        }
    }

    private mutating func record(_ path: String, line: Int, column: Int) {
        if positions[path] == nil { positions[path] = Position(line: line, column: column) }
    }

    private static func headerName(_ rest: Substring, closing: String) -> String {
        let inner = rest.firstRange(of: closing).map { rest[..<$0.lowerBound] } ?? rest
        return inner.split(separator: ".").map { unquote($0.trimmingBlanks()) }.joined(separator: ".")
    }

    /// The key of a `key = value` line (first segment of a dotted key, quotes removed).
    private static func leadingKey(_ body: Substring) -> String? {
        guard let first = body.first, first != "#" else { return nil }
        var key = ""
        var rest = body[...]
        if first == "\"" || first == "'" {
            guard let close = rest.dropFirst().firstIndex(of: first) else { return nil }
            key = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
        } else {
            let bare = rest.prefix(while: { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
            guard !bare.isEmpty else { return nil }
            key = String(bare)
            rest = rest.dropFirst(bare.count)
        }
        rest = rest.drop(while: { $0 == " " || $0 == "\t" })
        guard let next = rest.first, next == "=" || next == "." else { return nil }
        return key
    }

    private static func unquote(_ s: Substring) -> String {
        if s.count >= 2, let f = s.first, f == s.last, f == "\"" || f == "'" { return String(s.dropFirst().dropLast()) }
        return String(s)
    }

    private static func count(of needle: Substring, in haystack: Substring) -> Int {
        var n = 0
        var rest = haystack
        while let r = rest.firstRange(of: needle) {
            n += 1
            rest = rest[r.upperBound...]
        }
        return n
    }
}

extension Substring {
    func trimmingBlanks() -> Substring {
        var s = drop(while: { $0 == " " || $0 == "\t" })
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
