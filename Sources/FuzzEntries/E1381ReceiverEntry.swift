import SeparatorProtocol

/// What the receiver answered and delivered over one input.
public struct E1381Summary: Hashable, Sendable {
    /// Every byte written to the device, in order (ACK, NAK or EOT).
    public var answers: [UInt8] = []
    /// Every message text delivered, in order.
    public var messages: [[UInt8]] = []
    /// How often the receiver's timer fired with a deadline to act on.
    public var timeouts = 0
}

extension FuzzEntries {
    /// Starts an event in an `e1381Receiver` input (a device never sends 0xFF in a valid frame).
    public static let eventByte: UInt8 = 0xFF

    /// The E1381 receiver fed a device's bytes and what happens around them, so that timeouts, slow
    /// stores and shutdown are explored too. Bytes are line bytes, except that `FF x` is an event:
    ///
    ///     FF FF      the line byte 0xFF
    ///     FF 4k      time advances k seconds (k = 0: 10 ms)
    ///     FF 4k+1    the receiver's timer fires (time jumps to its deadline, if it has one)
    ///     FF 4k+2    the store: k%4 = 0 stored, 1 failed, 2 answers only when told, 3 answers at
    ///                the end of every chunk (the default)
    ///     FF 03      shutdown (stopAccepting); FF 4k+3 with k > 0 only ends the chunk
    ///
    /// The line bytes between two events arrive as one chunk. Two receivers get the same chunks, one
    /// cut after every LF and ENQ (so that each answer is told apart and checked by `ReceiverOracle`),
    /// one whole: they must answer and deliver alike.
    @discardableResult
    public static func e1381Receiver(_ data: [UInt8]) -> E1381Summary {
        var harness = ReceiverHarness()
        var chunk: [UInt8] = []
        var index = 0
        while index < data.count {
            let byte = data[index]
            index += 1
            guard byte == eventByte, index < data.count else {
                chunk.append(byte)
                continue
            }
            let event = data[index]
            index += 1
            if event == eventByte {
                chunk.append(byte)
                continue
            }
            harness.feed(chunk)
            chunk.removeAll(keepingCapacity: true)
            harness.perform(event)
        }
        harness.feed(chunk)
        return harness.summary
    }
}

private struct ReceiverHarness {
    /// The dialect's framing, with a message limit that inputs of a few KiB can reach.
    static let configuration: E1381Receiver.Configuration = {
        var configuration = SeparatorDialect.optiaStyle.framing
        configuration.maxMessageBytes = 2048
        return configuration
    }()

    var split = E1381Receiver(configuration: configuration)
    var whole = E1381Receiver(configuration: configuration)
    var oracle = ReceiverOracle()
    var now = Duration.zero
    var storesAtOnce = true
    var summary = E1381Summary()

    mutating func feed(_ chunk: [UInt8]) {
        guard !chunk.isEmpty else { return }
        var splitSeen: [E1381Receiver.Action] = []
        var start = 0
        while start < chunk.count {
            var end = start
            while end < chunk.count {
                let byte = chunk[end]
                end += 1
                if byte == ASCIIControl.lf || byte == ASCIIControl.enq { break }
            }
            let actions = split.receive(chunk[start..<end], now: now)
            oracle.observe(call: chunk[start..<end], actions: actions)
            record(actions)
            splitSeen += actions.filter(\.isObservable)
            start = end
        }
        let wholeSeen = whole.receive(chunk, now: now).filter(\.isObservable)
        precondition(
            splitSeen == wholeSeen,
            "e1381: answers depend on where the bytes were cut: \(splitSeen.brief) in pieces, \(wholeSeen.brief) whole")
        agree()
        if storesAtOnce, split.awaitingStore { store(succeeded: true) }
    }

    mutating func perform(_ event: UInt8) {
        let k = Int(event >> 2)
        switch event & 3 {
        case 0:
            now += k == 0 ? .milliseconds(10) : .seconds(k)
        case 1:
            guard let deadline = split.deadline else { return }
            now = max(now, deadline)
            let actions = split.timeout(now: now)
            let other = whole.timeout(now: now)
            precondition(actions == other, "e1381: the receivers time out differently: \(actions) and \(other)")
            oracle.observeTimeout(actions: actions)
            summary.timeouts += 1
            agree()
        case 2:
            switch k % 4 {
            case 0: store(succeeded: true)
            case 1: store(succeeded: false)
            case 2: storesAtOnce = false
            default: storesAtOnce = true
            }
        default:
            guard k == 0 else { return }
            split.stopAccepting()
            whole.stopAccepting()
            oracle.stopAccepting()
        }
    }

    mutating func store(succeeded: Bool) {
        let actions = succeeded ? split.messageStored(now: now) : split.messageNotStored(now: now)
        let other = succeeded ? whole.messageStored(now: now) : whole.messageNotStored(now: now)
        precondition(actions == other, "e1381: the receivers answer a store differently: \(actions) and \(other)")
        oracle.observeStore(succeeded: succeeded, actions: actions)
        record(actions)
        agree()
    }

    /// The state the caller acts on must not depend on how the bytes were cut either.
    func agree() {
        precondition(
            split.awaitingStore == whole.awaitingStore && split.deadline == whole.deadline,
            "e1381: receivers disagree: awaiting store \(split.awaitingStore)/\(whole.awaitingStore), deadline \(String(describing: split.deadline))/\(String(describing: whole.deadline))"
        )
    }

    mutating func record(_ actions: [E1381Receiver.Action]) {
        for action in actions {
            switch action {
            case .send(let bytes): summary.answers += bytes
            case .messageReceived(let text): summary.messages.append(text)
            case .event: break
            }
        }
    }
}

extension E1381Receiver.Action {
    /// What the device or the store sees; events are for logs and may be grouped differently.
    fileprivate var isObservable: Bool {
        if case .event = self { return false }
        return true
    }
}

extension [E1381Receiver.Action] {
    fileprivate var brief: String {
        map { action in
            switch action {
            case .send(let bytes): bytes.map { E1381.hexString($0) }.joined()
            case .messageReceived(let text): "message(\(text.count) bytes)"
            case .event(let event): "\(event)"
            }
        }.joined(separator: " ")
    }
}

/// Checks a receiver's answers against the bytes it was given, knowing only the wire rules: an
/// ACK answers an ENQ or a well-formed frame with the right checksum and frame number, never a
/// frame that fails them; a delivered message is the text of frames that were accepted; nothing is
/// acknowledged after shutdown. Each `observe` call must get one `receive` call's bytes that hold
/// no LF or ENQ but as their last byte, so that at most one frame or enquiry is answered in it.
public struct ReceiverOracle: Sendable {
    /// Bytes after the last STX, until its LF; nil outside a frame.
    private var frame: [UInt8]?
    private var expectedFrameNumber = 1
    /// Text of the frames acknowledged since the session started or the last message was delivered.
    private var acknowledgedText: [UInt8] = []
    /// A message was delivered and its last frame still waits for its answer.
    private var answerPending = false
    private var accepting = true

    public init() {}

    public mutating func stopAccepting() { accepting = false }

    public mutating func observe(call bytes: some Collection<UInt8>, actions: [E1381Receiver.Action]) {
        var completed: [UInt8]?
        var last: UInt8?
        for byte in bytes {
            switch byte {
            case ASCIIControl.stx:
                frame = []
            case ASCIIControl.eot, ASCIIControl.enq:
                // Inside a frame they abandon it; while a message is stored, the device gave up waiting.
                frame = nil
                answerPending = false
            case ASCIIControl.lf:
                completed = frame
                frame = nil
            default:
                frame?.append(byte)
            }
            last = byte
        }
        let answers = Self.answers(actions)
        let delivered = actions.compactMap { action -> [UInt8]? in
            if case .messageReceived(let text) = action { return text }
            return nil
        }
        // A frame is accepted with ACK, or with EOT after shutdown (accepted, and the device asked to stop).
        let acks = answers.filter { $0 == ASCIIControl.ack }.count
        let eots = answers.filter { $0 == ASCIIControl.eot }.count
        precondition(accepting || acks == 0, "e1381: ACK sent after shutdown")
        precondition(!accepting || eots == 0, "e1381: EOT sent while accepting")
        precondition(acks + eots <= 1, "e1381: \(acks + eots) acceptances in answer to one frame or enquiry")
        precondition(delivered.count <= 1, "e1381: \(delivered.count) messages delivered by one frame")

        if acks + eots == 1 {
            if last == ASCIIControl.enq {
                precondition(acks == 1, "e1381: an enquiry answered EOT")
                expectedFrameNumber = 1
                acknowledgedText = []
            } else {
                guard last == ASCIIControl.lf, let completed else {
                    preconditionFailure("e1381: \(acks == 1 ? "ACK" : "EOT") sent with neither a frame nor an enquiry to answer")
                }
                acknowledgedText += accept(completed, what: acks == 1 ? "ACK sent for" : "EOT (accepted) sent for")
            }
        }
        if let message = delivered.first {
            precondition(acks + eots == 0, "e1381: the last frame of a message answered before the message was stored")
            guard last == ASCIIControl.lf, let completed else {
                preconditionFailure("e1381: message delivered without a frame completing it")
            }
            let text = accept(completed, what: "message delivered by")
            precondition(completed[completed.count - 4] == ASCIIControl.etx, "e1381: message delivered by a frame ending ETB")
            let received = acknowledgedText + text
            precondition(
                message.last == ASCIIControl.cr && received.count >= message.count
                    && received.suffix(message.count).elementsEqual(message),
                "e1381: delivered message (\(message.count) bytes) is not the text of accepted frames (\(received.count) bytes)")
            acknowledgedText = []
            answerPending = true
        }
    }

    public mutating func observeTimeout(actions: [E1381Receiver.Action]) {
        precondition(
            Self.answers(actions).isEmpty && !actions.contains { if case .messageReceived = $0 { true } else { false } },
            "e1381: a timeout answered or delivered: \(actions)")
        frame = nil
        acknowledgedText = []
    }

    public mutating func observeStore(succeeded: Bool, actions: [E1381Receiver.Action]) {
        let answers = Self.answers(actions)
        if succeeded, answerPending {
            precondition(
                answers == [accepting ? ASCIIControl.ack : ASCIIControl.eot],
                "e1381: a stored message's last frame answered \(answers), expected \(accepting ? "ACK" : "EOT")")
        } else {
            precondition(answers.isEmpty, "e1381: answered \(answers) with no frame waiting for a stored message")
        }
        precondition(
            !actions.contains { if case .messageReceived = $0 { true } else { false } }, "e1381: a store delivered a message")
        answerPending = false
    }

    /// The text of a frame the receiver accepted; traps unless the frame is one it may accept.
    private mutating func accept(_ body: [UInt8], what: String) -> [UInt8] {
        let n = body.count
        precondition(n >= 5 && body[n - 1] == ASCIIControl.cr, "e1381: \(what) a frame without its trailer (\(n) bytes)")
        let terminator = body[n - 4]
        precondition(
            terminator == ASCIIControl.etx || terminator == ASCIIControl.etb, "e1381: \(what) a frame without ETX or ETB")
        var sum: UInt8 = 0
        for byte in body[0...(n - 4)] { sum &+= byte }
        let high = Self.nibble(body[n - 3])
        let low = Self.nibble(body[n - 2])
        precondition(
            high != nil && low != nil && high! << 4 | low! == sum,
            "e1381: \(what) a frame whose checksum fails: \(String(decoding: body[(n - 3)...(n - 2)], as: UTF8.self)), the sum is \(E1381.hexString(sum))"
        )
        let number = Int(body[0]) - 0x30
        precondition(
            number == expectedFrameNumber, "e1381: \(what) frame number \(number), expected \(expectedFrameNumber)")
        expectedFrameNumber = (expectedFrameNumber + 1) % 8
        let text = Array(body[1..<(n - 4)])
        precondition(text.count <= E1381.maxTextLength, "e1381: \(what) a frame of \(text.count) text bytes")
        precondition(
            !text.contains(where: ASCIIControl.isForbiddenInText), "e1381: \(what) a frame with a control byte in its text")
        return text
    }

    private static func nibble(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// The bytes sent, each `.send` checked to be one answer byte.
    private static func answers(_ actions: [E1381Receiver.Action]) -> [UInt8] {
        var answers: [UInt8] = []
        for case .send(let bytes) in actions {
            precondition(
                bytes.count == 1 && [ASCIIControl.ack, ASCIIControl.nak, ASCIIControl.eot].contains(bytes[0]),
                "e1381: sent \(bytes), not one ACK, NAK or EOT")
            answers += bytes
        }
        return answers
    }
}
