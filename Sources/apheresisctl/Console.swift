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
        // Ctrl-C, a kill or a hang-up while echo is off must not leave the terminal silent.
        let previous = PromptSignals.install(restoring: saved)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
            PromptSignals.uninstall(previous)
            write(2, "\n")
        }
        return readLine(strippingNewline: true)
    }
}

/// SIGINT, SIGTERM and SIGHUP during a password prompt: the handler puts the terminal's settings
/// back, ends the line, and exits 130 for SIGINT (as a shell reports Ctrl-C); SIGTERM and SIGHUP
/// are then raised again with their default action, so the parent sees the signal itself.
/// Only async-signal-safe calls in the handler (tcsetattr, write, signal, raise, _exit).
enum PromptSignals {
    static let signals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// Read by the handler: written before the handler is installed, not after. On the heap, not a
    /// global `termios`: AddressSanitizer caught the assignment to such a global writing past it
    /// (60 bytes copied into a global it sized at 57; `make check-asan`, docs/reliability.md).
    nonisolated(unsafe) static let saved: UnsafeMutablePointer<termios> = {
        let pointer = UnsafeMutablePointer<termios>.allocate(capacity: 1)
        pointer.initialize(to: termios())
        return pointer
    }()

    static func install(restoring settings: termios) -> [sigaction] {
        saved.pointee = settings
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            tcsetattr(0, TCSAFLUSH, PromptSignals.saved)
            _ = Glibc.write(2, "\n", 1)
            if signal == SIGINT { _exit(130) }
            Glibc.signal(signal, SIG_DFL)
            raise(signal)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        return signals.map { number in
            var old = sigaction()
            sigaction(number, &action, &old)
            return old
        }
    }

    static func uninstall(_ previous: [sigaction]) {
        for (number, old) in zip(signals, previous) {
            var old = old
            sigaction(number, &old, nil)
        }
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
