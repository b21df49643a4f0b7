import TOMLKit

/// Collects problems while the document is read; every read goes through
/// here so that each problem gets its line and key path.
final class Checker {
    let file: String
    let locator: KeyLocator
    private(set) var problems: [ConfigurationProblem] = []

    init(file: String, text: String) {
        self.file = file
        self.locator = KeyLocator(text: text)
    }

    func report(_ kind: ConfigurationProblem.Kind, _ path: String, _ message: String) {
        let position = locator.position(of: path)
        problems.append(
            ConfigurationProblem(
                kind: kind, file: file, line: position?.line ?? 1, column: position?.column,
                keyPath: path, message: message))
    }

    func report(_ problem: ConfigurationProblem) { problems.append(problem) }

    /// In line order, as an editor would walk them; TOMLKit hands keys back sorted by name.
    func sortedProblems() -> [ConfigurationProblem] {
        problems.enumerated().sorted { a, b in
            let (la, lb) = (a.element.line ?? .max, b.element.line ?? .max)
            if la != lb { return la < lb }
            let (ca, cb) = (a.element.column ?? 0, b.element.column ?? 0)
            if ca != cb { return ca < cb }
            return a.offset < b.offset
        }.map(\.element)
    }

    // MARK: Keys

    /// Reports keys that are not in `known`, suggesting the nearest known one.
    func unknownKeys(in table: TOMLTable, at path: String, known: [String], what: String) -> [String] {
        var unknown: [String] = []
        for key in table.keys where !known.contains(key) {
            unknown.append(key)
            var message = "\"\(key)\" is not a setting of \(what)"
            if let suggestion = Self.nearest(to: key, among: known) {
                message += "; did you mean \(suggestion)?"
            }
            report(.unknownKey, join(path, key), message)
        }
        return unknown
    }

    /// The known word closest to a typo, when it is close enough to be a typo.
    static func nearest(to word: String, among candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)? = nil
        for candidate in candidates {
            let d = editDistance(lower, candidate)
            if d < (best?.1 ?? .max) { best = (candidate, d) }
        }
        // A word cut short ("warn" for "warning") is a typo too.
        if lower.count >= 3, let longer = candidates.first(where: { $0.hasPrefix(lower) }) { return longer }
        guard let (candidate, distance) = best else { return nil }
        let tolerance = max(2, min(4, candidate.count / 4))
        return distance <= tolerance ? candidate : nil
    }

    /// Optimal-string-alignment distance: a swapped pair of letters counts once.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[x.count][y.count]
    }

    // MARK: Typed reads (nil when absent or of the wrong type; the latter is reported)

    func text(_ table: TOMLTable, _ key: String, at path: String) -> String? {
        guard let value = table[key]?.tomlValue else { return nil }
        guard let s = value.string else {
            wrongType(join(path, key), expected: "text in double quotes", found: value)
            return nil
        }
        return s
    }

    func integer(_ table: TOMLTable, _ key: String, at path: String) -> Int? {
        guard let value = table[key]?.tomlValue else { return nil }
        if let i = value.int { return i }
        if let d = value.double, d == d.rounded(), abs(d) < 1e15 {
            wrongType(join(path, key), expected: "a whole number", found: value, hint: "write \(Int(d))")
        } else {
            wrongType(join(path, key), expected: "a whole number", found: value)
        }
        return nil
    }

    /// A whole or decimal number.
    func number(_ table: TOMLTable, _ key: String, at path: String) -> Double? {
        guard let value = table[key]?.tomlValue else { return nil }
        if let i = value.int { return Double(i) }
        if let d = value.double, d.isFinite { return d }
        wrongType(join(path, key), expected: "a number", found: value)
        return nil
    }

    func textList(_ table: TOMLTable, _ key: String, at path: String) -> [String]? {
        guard let value = table[key]?.tomlValue else { return nil }
        guard let array = value.array else {
            wrongType(
                join(path, key), expected: "a list in brackets", found: value,
                hint: value.string.map { "write [\"\($0)\"]" })
            return nil
        }
        var items: [String] = []
        for element in array {
            guard let s = element.tomlValue.string else {
                wrongType(join(path, key), expected: "a list of texts in double quotes", found: element.tomlValue)
                return nil
            }
            items.append(s)
        }
        return items
    }

    /// `value` within `range` (inclusive), else an out-of-range problem, naming what it is for
    /// (`subject`, e.g. `for profile "x"`) and why the range ends there, when given.
    func within(_ value: Double, _ range: ClosedRange<Double>, unit: String, at path: String, subject: String? = nil, why: String? = nil) -> Bool {
        if range.contains(value) { return true }
        let u = unit.isEmpty ? "" : " " + unit
        var message = "\(format(value))\(u) is outside the allowed range (\(format(range.lowerBound)) to \(format(range.upperBound))\(u))"
        if let subject { message += " " + subject }
        if let why { message += ": " + why }
        report(.outOfRange, path, message)
        return false
    }

    func wrongType(_ path: String, expected: String, found: TOMLValue, hint: String? = nil) {
        var message = "must be \(expected), but is \(Self.describe(found))"
        if let hint {
            message += "; \(hint)"
        } else if let s = found.string, Double(s) != nil {
            message += "; remove the quotes"
        }
        report(.wrongType, path, message)
    }

    static func describe(_ value: TOMLValue) -> String {
        switch value.type {
        case .string: "the text \"\(value.string ?? "")\""
        case .int: "the whole number \(value.int ?? 0)"
        case .double: "the number \(format(value.double ?? 0))"
        case .bool: value.bool == true ? "true" : "false"
        case .array: "a list"
        case .table: "a table"
        case .date, .time, .dateTime: "a date or time"
        }
    }
}

func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

/// 60.0 → "60", 1.25 → "1.25": as the admin would have typed it (a default
/// read back from SI units, 1.7999999999999998, is shown as 1.8).
func format(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int(value)) }
    guard abs(value) >= 1e-6, abs(value) < 1e9 else { return String(value) }
    let rounded = (value * 1e9).rounded() / 1e9
    if rounded == rounded.rounded() { return String(Int(rounded)) }
    return String(rounded)
}
