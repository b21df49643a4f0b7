import SeparatorProtocol

/// The smallest correct host for the separator interface, built on the
/// protocol module: it answers E1381, decodes E1394 and keeps each message
/// once, keyed by device serial number and sequence number. The simulator's
/// `monitor` and `decode` commands and the integration tests use it; the
/// daemon does the same with a durable store.
public struct ReferenceHost: Sendable {
    public struct Key: Hashable, Sendable {
        public var serialNumber: String
        public var sequence: UInt64
    }

    public enum Outcome: Equatable, Sendable {
        /// A new message, stored.
        case stored(SeparatorMessage)
        /// A message stored before, acknowledged again and not stored twice.
        case duplicate(Key)
        /// Frames intact but records that do not parse: kept with the reason.
        case quarantined(text: [UInt8], reason: String)
    }

    public private(set) var receiver: E1381Receiver
    public private(set) var messages: [SeparatorMessage] = []
    public private(set) var quarantine: [(text: [UInt8], reason: String)] = []
    public private(set) var duplicates = 0
    private var seen: Set<Key> = []

    public init(configuration: E1381Receiver.Configuration = .init()) {
        receiver = E1381Receiver(configuration: configuration)
    }

    public var deadline: Duration? { receiver.deadline }

    /// Feeds bytes from the device; returns bytes to answer and what was stored.
    public mutating func receive(_ bytes: some Collection<UInt8>, now: Duration) -> (answer: [UInt8], outcomes: [Outcome]) {
        process(receiver.receive(bytes, now: now), now: now)
    }

    public mutating func timeout(now: Duration) -> (answer: [UInt8], outcomes: [Outcome]) {
        process(receiver.timeout(now: now), now: now)
    }

    private mutating func process(_ actions: [E1381Receiver.Action], now: Duration) -> (answer: [UInt8], outcomes: [Outcome]) {
        var answer: [UInt8] = []
        var outcomes: [Outcome] = []
        var queue = actions[...]
        while let action = queue.popFirst() {
            switch action {
            case .send(let bytes):
                answer += bytes
            case .messageReceived(let text):
                outcomes.append(store(text))
                // Stored (in memory): now the last frame may be answered.
                queue += receiver.messageStored(now: now)
            case .event:
                break
            }
        }
        return (answer, outcomes)
    }

    private mutating func store(_ text: [UInt8]) -> Outcome {
        do {
            let message = try E1394Decoder.decode(text)
            let key = Key(serialNumber: message.device.serialNumber, sequence: message.sequenceNumber)
            guard seen.insert(key).inserted else {
                duplicates += 1
                return .duplicate(key)
            }
            messages.append(message)
            return .stored(message)
        } catch {
            quarantine.append((text, error.description))
            return .quarantined(text: text, reason: error.description)
        }
    }
}

/// Decodes a capture's device bytes as a host would, answering nothing back:
/// one line per message, for regression files and for people.
public enum CaptureDecoder {
    public struct Result: Sendable {
        public var host: ReferenceHost
        public var lines: [String]
    }

    public static func decode(_ capture: Capture) -> Result {
        var host = ReferenceHost()
        var lines: [String] = []
        for chunk in capture.chunks where chunk.direction == .deviceToHost {
            let now = Duration.nanoseconds(Int64(chunk.time * 1e9))
            if let deadline = host.deadline, now >= deadline {
                lines += host.timeout(now: now).outcomes.map(describe)
            }
            lines += host.receive(chunk.bytes, now: now).outcomes.map(describe)
        }
        return Result(host: host, lines: lines)
    }

    /// A stable one-line rendering of an outcome.
    public static func describe(_ outcome: ReferenceHost.Outcome) -> String {
        switch outcome {
        case .stored(let m):
            var line = "\(m.device.serialNumber) #\(m.sequenceNumber) \(m.kind.rawValue) \(m.order.runID) \(m.timestamp.wire)"
            for r in m.results {
                switch r.value {
                case .number(let v): line += " \(r.code.rawValue)=\(v)"
                case .text(let t): line += " \(r.code.rawValue)=\"\(t)\""
                }
                if !r.unit.isEmpty { line += "[\(r.unit)]" }
            }
            for c in m.comments { line += " \(c.code)^\(c.text)^\(c.severity.rawValue)" }
            return line
        case .duplicate(let key):
            return "\(key.serialNumber) #\(key.sequence) duplicate"
        case .quarantined(_, let reason):
            return "quarantined: \(reason)"
        }
    }
}
