import Quantities
import SeparatorProtocol
import TextFormats

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The simulated separator's durable memory: the per-device sequence counter,
/// the store-and-forward queue of messages not yet fully acknowledged, and the
/// progress of the run in hand. A restart of the simulator (or of the host)
/// loses nothing and repeats no sequence number.
///
/// On disk it is an append-only log of lines, so that recording a message or
/// an acknowledgement is one `write(2)`; a process killed mid-write leaves at
/// most a partial last line, which loading ignores. The log is rewritten
/// (temporary file, then rename) when it grows past `compactionThreshold` and
/// twice its size after the previous rewrite.
///
///     optia-sim-state 1
///     seq <last sequence number assigned> <last run number>
///     run <run number> <run id> <seed> <scenario name, hex>
///     m <sequence> <run time s> <message text, hex>
///     a <sequence>
///     p <run id> <run time s>
///     end <run id>
///
/// Writes survive the process being killed (they are in the page cache);
/// with `fsync` they also survive a power cut, at the cost of a disk flush
/// per message.
public final class Outbox {
    public struct ActiveRun: Equatable, Sendable {
        public var number: Int
        public var runID: String
        public var seed: UInt64
        public var scenarioName: String
        /// Simulated time of the last message recorded for this run.
        public var lastTime: Seconds
    }

    public struct Entry: Equatable, Sendable {
        public var sequence: UInt64
        public var text: [UInt8]
    }

    public let path: String
    public private(set) var lastSequence: UInt64 = 0
    public private(set) var lastRunNumber: Int = 0
    public private(set) var activeRun: ActiveRun?
    /// Messages not yet acknowledged, oldest first.
    public private(set) var pending: [Entry] = []
    public let fsync: Bool
    public var compactionThreshold = 4 << 20

    private var fd: Int32 = -1
    private var bytesWritten = 0
    /// Size of the log right after the last rewrite: the next rewrite waits
    /// until the log has grown well past it, so a long queue is not rewritten
    /// on every acknowledgement.
    private var bytesAfterRewrite = 0

    public init(path: String, fsync: Bool = false) throws(OutboxError) {
        self.path = path
        self.fsync = fsync
        if access(path, F_OK) == 0 {
            try load()
        }
        try rewrite()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    public func beginRun(runID: String, seed: UInt64, scenarioName: String) throws(OutboxError) {
        lastRunNumber += 1
        activeRun = ActiveRun(number: lastRunNumber, runID: runID, seed: seed, scenarioName: scenarioName, lastTime: .zero)
        try append("run \(lastRunNumber) \(runID) \(seed) \(Hex.encode(scenarioName.utf8))\n")
    }

    /// Assigns the next sequence numbers, encodes and records the messages in
    /// one write, and returns them as queued.
    public func enqueue(
        _ messages: [SeparatorMessage], at time: Seconds, encode: (SeparatorMessage) -> [UInt8]
    ) throws(OutboxError) -> [Entry] {
        var lines = ""
        var entries: [Entry] = []
        var sequence = lastSequence
        for var message in messages {
            sequence += 1
            message.sequenceNumber = sequence
            let text = encode(message)
            entries.append(Entry(sequence: sequence, text: text))
            lines += "m \(sequence) \(time.value) \(Hex.encode(text))\n"
        }
        if messages.isEmpty, let run = activeRun {
            lines = "p \(run.runID) \(time.value)\n"
        }
        guard !lines.isEmpty else { return [] }
        try append(lines)
        lastSequence = sequence
        pending += entries
        activeRun?.lastTime = time
        return entries
    }

    /// The message was fully acknowledged: it leaves the queue for good.
    public func acknowledge(_ sequence: UInt64) throws(OutboxError) {
        guard let index = pending.firstIndex(where: { $0.sequence == sequence }) else { return }
        pending.remove(at: index)
        try append("a \(sequence)\n")
        if bytesWritten > max(compactionThreshold, 2 * bytesAfterRewrite) { try rewrite() }
    }

    public func endRun() throws(OutboxError) {
        guard let run = activeRun else { return }
        activeRun = nil
        try append("end \(run.runID)\n")
    }

    // MARK: - Disk

    private func load() throws(OutboxError) {
        let data: [UInt8]
        do { data = try readWholeFile(path) } catch { throw OutboxError(path: path, line: nil, reason: error.description) }
        var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        // A partial last line is what a kill in the middle of a write leaves.
        if data.last != 0x0A { lines.removeLast() }
        var queued: [UInt64: [UInt8]] = [:]
        var order: [UInt64] = []
        for (index, raw) in lines.enumerated() {
            let lineNumber = index + 1
            let fields = raw.split(separator: 0x20).map { String(decoding: $0, as: UTF8.self) }
            func fail(_ why: String) -> OutboxError { OutboxError(path: path, line: lineNumber, reason: why) }
            if lineNumber == 1 {
                guard fields == ["optia-sim-state", "1"] else { throw fail("not an optia-sim state file (expected 'optia-sim-state 1')") }
                continue
            }
            guard let tag = fields.first else { continue }
            switch tag {
            case "seq":
                guard fields.count == 3, let s = UInt64(fields[1]), let r = Int(fields[2]) else { throw fail("bad 'seq' line") }
                lastSequence = max(lastSequence, s)
                lastRunNumber = max(lastRunNumber, r)
            case "run":
                guard fields.count == 5, let number = Int(fields[1]), let seed = UInt64(fields[3]),
                    let name = Hex.decode(fields[4])
                else { throw fail("bad 'run' line") }
                lastRunNumber = max(lastRunNumber, number)
                activeRun = ActiveRun(
                    number: number, runID: fields[2], seed: seed,
                    scenarioName: String(decoding: name, as: UTF8.self), lastTime: .zero)
            case "m":
                guard fields.count == 4, let s = UInt64(fields[1]), let t = Double(fields[2]), let text = Hex.decode(fields[3])
                else { throw fail("bad 'm' line") }
                if queued[s] == nil { order.append(s) }
                queued[s] = text
                lastSequence = max(lastSequence, s)
                activeRun?.lastTime = Seconds(t)
            case "a":
                guard fields.count == 2, let s = UInt64(fields[1]) else { throw fail("bad 'a' line") }
                queued[s] = nil
            case "p":
                guard fields.count == 3, let t = Double(fields[2]) else { throw fail("bad 'p' line") }
                if activeRun?.runID == fields[1] { activeRun?.lastTime = Seconds(t) }
            case "end":
                guard fields.count == 2 else { throw fail("bad 'end' line") }
                if activeRun?.runID == fields[1] { activeRun = nil }
            default:
                throw fail("unknown line type '\(tag)'")
            }
        }
        pending = order.compactMap { s in queued[s].map { Entry(sequence: s, text: $0) } }
    }

    /// Writes the current state to a fresh file and renames it over the log.
    private func rewrite() throws(OutboxError) {
        var text = "optia-sim-state 1\nseq \(lastSequence) \(lastRunNumber)\n"
        if let run = activeRun {
            text += "run \(run.number) \(run.runID) \(run.seed) \(Hex.encode(run.scenarioName.utf8))\n"
            text += "p \(run.runID) \(run.lastTime.value)\n"
        }
        for entry in pending { text += "m \(entry.sequence) \(activeRun?.lastTime.value ?? 0) \(Hex.encode(entry.text))\n" }
        let temporary = path + ".tmp"
        let newFD = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard newFD >= 0 else { throw OutboxError(path: temporary, line: nil, reason: SystemErrorText.current("open")) }
        var ok = writeFully(newFD, Array(text.utf8))
        if ok && fsync { ok = Glibc.fsync(newFD) == 0 }
        guard ok, rename(temporary, path) == 0 else {
            let reason = SystemErrorText.current("write/rename")
            close(newFD)
            throw OutboxError(path: path, line: nil, reason: reason)
        }
        close(newFD)
        if fd >= 0 { close(fd) }
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw OutboxError(path: path, line: nil, reason: SystemErrorText.current("open")) }
        bytesWritten = text.utf8.count
        bytesAfterRewrite = bytesWritten
    }

    private func append(_ text: String) throws(OutboxError) {
        let bytes = Array(text.utf8)
        guard writeFully(fd, bytes), !fsync || Glibc.fsync(fd) == 0 else {
            throw OutboxError(path: path, line: nil, reason: SystemErrorText.current("write"))
        }
        bytesWritten += bytes.count
    }
}

public struct OutboxError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var reason: String
    public var description: String {
        if let line { return "state file \(path), line \(line): \(reason)" }
        return "state file \(path): \(reason)"
    }
}

enum SystemErrorText {
    static func current(_ operation: String) -> String { "\(operation): \(String(cString: strerror(errno)))" }
}

struct FileReadError: Error { var description: String }

func readWholeFile(_ path: String) throws(FileReadError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileReadError(description: SystemErrorText.current("open")) }
    defer { close(fd) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 { return result }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileReadError(description: SystemErrorText.current("read"))
        }
        result += buffer[0..<n]
    }
}

func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += n
    }
    return true
}
