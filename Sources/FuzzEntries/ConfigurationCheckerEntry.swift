import DaemonConfiguration

/// The problems `apheresisd --check-config` would list for a file.
public struct ConfigurationSummary: Hashable, Sendable {
    public var problems: [String]
    /// Each problem's line, in the order listed.
    public var lines: [Int]
}

extension FuzzEntries {
    /// A configuration file's bytes through the checker `apheresisd --check-config` runs, made text
    /// as it makes it (invalid UTF-8 replaced). Every problem must carry a line of the file and a
    /// message, listed in line order.
    @discardableResult
    public static func configurationChecker(_ data: [UInt8]) -> ConfigurationSummary {
        let text = String(decoding: data, as: UTF8.self)
        let problems = DaemonConfiguration.check(text: text, file: "fuzz.toml")
        // Lines end at LF (a CR before it is part of the ending); one more for a last line without its end.
        let lines = text.utf8.count { $0 == UInt8(ascii: "\n") } + 1
        // TOML allows no NUL: a file with one must not pass (the parser would stop reading at it).
        precondition(problems.count > 0 || !text.utf8.contains(0), "config: a file with a NUL byte has no problems")
        var previous = 1
        for problem in problems {
            guard let line = problem.line else { preconditionFailure("config: a problem without a line: \(problem)") }
            precondition((1...lines).contains(line), "config: a problem on line \(line) of \(lines): \(problem)")
            precondition(line >= previous, "config: problems out of line order: line \(line) after line \(previous)")
            precondition(problem.column.map { $0 >= 1 } ?? true, "config: a problem in column \(problem.column ?? 0): \(problem)")
            precondition(!problem.message.isEmpty, "config: a problem without a message on line \(line)")
            previous = line
        }
        return ConfigurationSummary(problems: problems.map(\.description), lines: problems.compactMap(\.line))
    }
}
