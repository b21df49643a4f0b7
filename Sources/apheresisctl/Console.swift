import ArgumentParser
import Foundation
import Glibc

/// Terminal input and output. Writes go straight to the file descriptors (the `print` and
/// `stderr` globals are not concurrency-safe).
enum Console {
    static func out(_ text: String) { write(1, text + "\n") }
    static func error(_ text: String) { write(2, "apheresisctl: " + text + "\n") }

    private static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// A password: prompted without echo at a terminal, else the next line of standard input.
    /// Read on a GCD thread: reading a terminal blocks.
    static func password(_ prompt: String) async throws -> String {
        let line: String? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: readSecret(prompt)) }
        }
        guard let line, !line.isEmpty else {
            error("no password given for \(prompt.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ":")))")
            throw ExitCode(1)
        }
        return line
    }

    private static func readSecret(_ prompt: String) -> String? {
        guard isatty(0) == 1 else { return readLine(strippingNewline: true) }
        write(2, prompt)
        var saved = termios()
        tcgetattr(0, &saved)
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
            write(2, "\n")
        }
        return readLine(strippingNewline: true)
    }
}

/// Plain text tables: columns padded to their widest cell.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
