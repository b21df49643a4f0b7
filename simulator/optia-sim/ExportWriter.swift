import Quantities
import SeparatorProtocol
import SimulatorKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The export transport: the device plays the run on its simulated clock and,
/// when it ends, writes one CSV file under a temporary name and renames it,
/// so a reader never sees half a file (separator-interface.md, section 6).
struct ExportWriter {
    let scenario: Scenario
    let outbox: Outbox
    let seed: UInt64
    let directory: String
    let log: (String) -> Void

    func run() throws {
        let start = try RunStart(scenario: scenario, outbox: outbox, seed: seed, log: log)
        let runID = start.runID
        var engine = start.engine
        emit("run: \(runID)")
        // Messages are kept in the outbox until the file is renamed into place:
        // the outbox is the run's history if the simulator is restarted.
        while !engine.isFinished {
            guard let next = engine.nextEventTime else { break }
            var messages: [SeparatorMessage] = []
            for case .message(let message) in engine.advance(to: next) { messages.append(message) }
            _ = try outbox.enqueue(messages, at: next) { E1394Encoder.encode($0) }
        }
        try outbox.endRun()

        let mine = try outbox.pending.compactMap { entry -> (UInt64, SeparatorMessage)? in
            let message = try E1394Decoder.decode(entry.text)
            return message.order.runID == runID ? (entry.sequence, message) : nil
        }
        let export = try ExportRun(messages: mine.map(\.1))
        let text = ExportCSV.encode(export)
        let finalPath = "\(directory)/\(runID).csv"
        let temporaryPath = "\(directory)/.\(runID).csv.part"
        try writeFile(temporaryPath, Array(text.utf8))
        guard rename(temporaryPath, finalPath) == 0 else {
            throw ExportWriteError(path: finalPath, reason: String(cString: strerror(errno)))
        }
        for (sequence, _) in mine { try outbox.acknowledge(sequence) }
        log("wrote \(finalPath)")
        emit("export: \(finalPath)")
        emit("done: \(runID) last-sequence \(outbox.lastSequence)")
    }

    private func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExportWriteError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ExportWriteError(path: path, reason: String(cString: strerror(errno)))
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw ExportWriteError(path: path, reason: String(cString: strerror(errno))) }
    }
}

struct ExportWriteError: Error, CustomStringConvertible {
    var path: String
    var reason: String
    var description: String { "cannot write export file \(path): \(reason)" }
}
