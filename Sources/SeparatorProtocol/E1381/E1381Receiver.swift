/// Why a frame was answered NAK.
public enum FrameError: Hashable, Sendable {
    case badChecksum(expected: UInt8, received: UInt8)
    /// `received` is nil when the FN byte is not a digit 0-7.
    case badFrameNumber(expected: Int, received: Int?)
    /// For a frame cut off on the fly, `length` is the text received so far (the limit + 1).
    case textTooLong(length: Int)
    /// `offset` counts from the first text byte (0-based).
    case forbiddenCharacter(byte: UInt8, offset: Int)
    case malformedFrame(MalformedFrameReason)
}

public enum MalformedFrameReason: Hashable, Sendable {
    /// Fewer bytes between STX and LF than FN, terminator, C1, C2 and CR need.
    case tooShort(length: Int)
    case missingCarriageReturn
    case missingTerminator
    case checksumNotHex
}

/// Why accumulated message text was thrown away (the device sends it again).
public enum PartialMessageReason: Hashable, Sendable {
    case endOfTransmission
    case timeout
    case enquiryMidSession
    /// A new H record started before the previous message reached its L record.
    case newHeader
    case messageTooLarge
}

/// What the receiver saw, for logs and metrics.
public enum ReceiverEvent: Hashable, Sendable {
    case sessionStarted
    case sessionEnded
    case frameAccepted(frameNumber: Int)
    case frameRejected(FrameError)
    /// STX, EOT or ENQ arrived inside a frame; the unfinished frame is dropped unanswered.
    case frameInterrupted(byteCount: Int)
    case partialMessageDiscarded(PartialMessageReason)
    /// ENQ answered NAK: not accepting, or the previous message is still being stored.
    case establishmentRefused
    case strayBytesIgnored(count: Int)
    case timedOut
}

/// The daemon side of ASTM E1381: bytes and time in, answers and messages out.
/// No clock and no I/O inside: the caller passes monotonic `now` with every input
/// and calls `timeout(now:)` once `now >= deadline`.
public struct E1381Receiver: Sendable {
    public struct Configuration: Hashable, Sendable {
        /// How long to wait for the next frame after an answer.
        public var frameTimeout: Duration
        /// Message text beyond this is discarded rather than buffered.
        public var maxMessageBytes: Int
        public var maxTextLength: Int
        public init(frameTimeout: Duration = .seconds(30), maxMessageBytes: Int = 1 << 20, maxTextLength: Int = E1381.maxTextLength) {
            self.frameTimeout = frameTimeout
            self.maxMessageBytes = maxMessageBytes
            self.maxTextLength = maxTextLength
        }
    }

    public enum Action: Hashable, Sendable {
        /// ACK, NAK or EOT to write to the device.
        case send([UInt8])
        /// A complete message text, H through L, records CR-terminated. Its last frame
        /// stays unanswered until `messageStored(now:)`.
        case messageReceived([UInt8])
        case event(ReceiverEvent)
    }

    private enum Phase: Sendable { case idle, session, awaitingStore }
    private enum FrameState: Sendable { case outside, collecting, skipping }

    public let configuration: Configuration
    public private(set) var isAccepting = true
    public private(set) var deadline: Duration?
    /// True from `.messageReceived` until `messageStored(now:)`.
    public private(set) var awaitingStore = false

    private var phase = Phase.idle
    private var frameState = FrameState.outside
    /// Bytes between STX and LF of the frame being received.
    private var frame: [UInt8] = []
    private var expectedFrameNumber = 1
    /// The device still waits for the answer to the message's last frame.
    private var answerOnStore = false

    // Message text and enough record state to see where the message ends.
    private var message: [UInt8] = []
    private var atRecordStart = true
    private var recordType: UInt8 = 0
    private var lastRecordWasTerminator = false
    private var discardingOversized = false

    private var output: [Action] = []
    private var strayCount = 0

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        frame.reserveCapacity(maxFrameBody + 1)
    }

    /// FN + text + terminator + C1 C2 + CR.
    private var maxFrameBody: Int { max(1, configuration.maxTextLength) + 5 }

    // MARK: Inputs

    public mutating func receive(_ bytes: some Collection<UInt8>, now: Duration) -> [Action] {
        // A generic byte loop across the module boundary is unspecialised and slow; work on
        // contiguous memory instead (copying only collections that are not contiguous).
        let done: Void? = bytes.withContiguousStorageIfAvailable { process($0, now: now) }
        if done == nil { Array(bytes).withUnsafeBufferPointer { process($0, now: now) } }
        return flush()
    }

    private mutating func process(_ bytes: UnsafeBufferPointer<UInt8>, now: Duration) {
        var index = 0
        while index < bytes.count {
            if frameState == .collecting {
                // Most bytes are frame text: append the run up to the next byte that ends or
                // interrupts the frame (or up to the frame limit) at once, not byte by byte.
                let run = Self.textRunLength(bytes, from: index, limit: maxFrameBody - frame.count)
                if run > 0 {
                    frame.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<(index + run)]))
                    index += run
                    continue
                }
            }
            let byte = bytes[index]
            index += 1
            switch frameState {
            case .collecting:
                if byte == ASCIIControl.lf {
                    frameState = .outside
                    frameCompleted(now: now)
                } else if byte == ASCIIControl.stx || byte == ASCIIControl.eot || byte == ASCIIControl.enq {
                    frameState = .outside
                    emit(.frameInterrupted(byteCount: frame.count))
                    outsideFrame(byte, now: now)
                } else if frame.count >= maxFrameBody {
                    // Rejected now: waiting for an LF that may never come would buffer without bound.
                    frameState = .skipping
                    reject(.textTooLong(length: maxFrameBody - 4), now: now)
                } else {
                    frame.append(byte)
                }
            case .skipping:
                if byte == ASCIIControl.lf {
                    frameState = .outside
                } else if byte == ASCIIControl.stx || byte == ASCIIControl.eot || byte == ASCIIControl.enq {
                    frameState = .outside
                    outsideFrame(byte, now: now)
                }
            case .outside:
                outsideFrame(byte, now: now)
            }
        }
    }

    /// How many bytes from `start` on are frame text: neither LF nor STX, EOT or ENQ, at most `limit`.
    private static func textRunLength(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) -> Int {
        let end = start + min(max(limit, 0), bytes.count - start)
        var index = start
        while index < end {
            switch bytes[index] {
            case ASCIIControl.lf, ASCIIControl.stx, ASCIIControl.eot, ASCIIControl.enq: return index - start
            default: index += 1
            }
        }
        return index - start
    }

    /// The caller durably stored the message of the last `.messageReceived`: answer its last frame.
    public mutating func messageStored(now: Duration) -> [Action] {
        guard awaitingStore else { return [] }
        awaitingStore = false
        if answerOnStore, phase == .awaitingStore {
            answerOnStore = false
            phase = .session
            answerAccepted(now: now)
        }
        return flush()
    }

    /// Call when `now >= deadline`; earlier calls do nothing.
    public mutating func timeout(now: Duration) -> [Action] {
        guard let deadline, now >= deadline else { return [] }
        discardPartial(.timeout)
        emit(.timedOut)
        endSession()
        return flush()
    }

    /// Shutdown: frames are answered EOT from now on and new sessions refused.
    public mutating func stopAccepting() {
        isAccepting = false
    }

    // MARK: Byte handling

    private mutating func outsideFrame(_ byte: UInt8, now: Duration) {
        switch phase {
        case .idle:
            if byte == ASCIIControl.enq { enquiry(now: now) } else { strayCount += 1 }
        case .session:
            switch byte {
            case ASCIIControl.stx:
                frame.removeAll(keepingCapacity: true)
                frameState = .collecting
            case ASCIIControl.eot:
                discardPartial(.endOfTransmission)
                endSession()
            case ASCIIControl.enq:
                discardPartial(.enquiryMidSession)
                endSession()
                enquiry(now: now)
            default:
                strayCount += 1
            }
        case .awaitingStore:
            // The device should be waiting for our answer; EOT or ENQ means it gave up on it.
            switch byte {
            case ASCIIControl.eot:
                answerOnStore = false
                endSession()
            case ASCIIControl.enq:
                answerOnStore = false
                endSession()
                enquiry(now: now)
            default:
                strayCount += 1
            }
        }
    }

    private mutating func enquiry(now: Duration) {
        // While a message is still being stored a second one could not be stored in order: refuse.
        guard isAccepting, !awaitingStore else {
            send(ASCIIControl.nak)
            emit(.establishmentRefused)
            return
        }
        phase = .session
        expectedFrameNumber = 1
        resetMessage()
        send(ASCIIControl.ack)
        emit(.sessionStarted)
        deadline = now + configuration.frameTimeout
    }

    private mutating func frameCompleted(now: Duration) {
        let n = frame.count
        guard n >= 5 else { return reject(.malformedFrame(.tooShort(length: n)), now: now) }
        guard frame[n - 1] == ASCIIControl.cr else { return reject(.malformedFrame(.missingCarriageReturn), now: now) }
        let terminator = frame[n - 4]
        guard terminator == ASCIIControl.etx || terminator == ASCIIControl.etb else {
            return reject(.malformedFrame(.missingTerminator), now: now)
        }
        guard let received = E1381.hexValue(frame[n - 3], frame[n - 2]) else {
            return reject(.malformedFrame(.checksumNotHex), now: now)
        }
        let expected = frame.withUnsafeBufferPointer { E1381.checksum(UnsafeBufferPointer(rebasing: $0[0...(n - 4)])) }
        guard expected == received else { return reject(.badChecksum(expected: expected, received: received), now: now) }
        let textRange = 1..<(n - 4)
        guard textRange.count <= configuration.maxTextLength else {
            return reject(.textTooLong(length: textRange.count), now: now)
        }
        if let index = firstForbiddenIndex(in: textRange) {
            return reject(.forbiddenCharacter(byte: frame[index], offset: index - 1), now: now)
        }
        let digit = frame[0]
        let number: Int? = (0x30...0x37).contains(digit) ? Int(digit - 0x30) : nil
        guard number == expectedFrameNumber else {
            return reject(.badFrameNumber(expected: expectedFrameNumber, received: number), now: now)
        }
        emit(.frameAccepted(frameNumber: expectedFrameNumber))
        expectedFrameNumber = (expectedFrameNumber + 1) % 8

        absorbText(textRange)
        let completesMessage = terminator == ASCIIControl.etx && atRecordStart && lastRecordWasTerminator
        guard completesMessage else { return answerAccepted(now: now) }
        if discardingOversized {
            // Already reported; answered so the device moves on instead of resending it forever.
            resetMessage()
            return answerAccepted(now: now)
        }
        output.append(.messageReceived(message))
        resetMessage()
        phase = .awaitingStore
        awaitingStore = true
        answerOnStore = true
        deadline = nil
    }

    /// The first byte of `range` that frame text may not hold. Every received byte passes here:
    /// the common answer (none) comes from a loop on the buffer without early exit, cheaper per
    /// byte than one that looks for the index.
    private func firstForbiddenIndex(in range: Range<Int>) -> Int? {
        frame.withUnsafeBufferPointer { frame in
            var found = false
            for byte in UnsafeBufferPointer(rebasing: frame[range]) where ASCIIControl.isForbiddenInText(byte) { found = true }
            return found ? range.first { ASCIIControl.isForbiddenInText(frame[$0]) } : nil
        }
    }

    /// Appends frame text to the message, tracking record starts (H restarts, L ends).
    /// Works a record piece at a time (up to and including its CR) rather than byte by byte.
    private mutating func absorbText(_ range: Range<Int>) {
        var start = range.lowerBound
        while start < range.upperBound {
            if atRecordStart {
                let type = frame[start]
                atRecordStart = false
                recordType = type
                if type == UInt8(ascii: "H") {
                    if !message.isEmpty {
                        emit(.partialMessageDiscarded(.newHeader))
                        message.removeAll(keepingCapacity: true)
                    }
                    discardingOversized = false
                }
            }
            var end = frame[start..<range.upperBound].firstIndex(of: ASCIIControl.cr) ?? range.upperBound
            let endsRecord = end < range.upperBound
            if endsRecord { end += 1 }
            if !discardingOversized {
                // Byte by byte, the byte after the limit is the one that discards the message.
                if end - start <= configuration.maxMessageBytes - message.count {
                    message.append(contentsOf: frame[start..<end])
                } else {
                    discardingOversized = true
                    message.removeAll(keepingCapacity: false)
                    emit(.partialMessageDiscarded(.messageTooLarge))
                }
            }
            if endsRecord {
                atRecordStart = true
                lastRecordWasTerminator = recordType == UInt8(ascii: "L")
            }
            start = end
        }
    }

    // MARK: State helpers

    private mutating func answerAccepted(now: Duration) {
        send(isAccepting ? ASCIIControl.ack : ASCIIControl.eot)
        deadline = now + configuration.frameTimeout
    }

    private mutating func reject(_ error: FrameError, now: Duration) {
        send(ASCIIControl.nak)
        emit(.frameRejected(error))
        deadline = now + configuration.frameTimeout
    }

    private var hasPartialMessage: Bool { !message.isEmpty || discardingOversized }

    private mutating func discardPartial(_ reason: PartialMessageReason) {
        if hasPartialMessage { emit(.partialMessageDiscarded(reason)) }
        resetMessage()
    }

    private mutating func resetMessage() {
        message.removeAll(keepingCapacity: true)
        atRecordStart = true
        recordType = 0
        lastRecordWasTerminator = false
        discardingOversized = false
    }

    private mutating func endSession() {
        if phase != .idle { emit(.sessionEnded) }
        phase = .idle
        frameState = .outside
        deadline = nil
    }

    private mutating func send(_ byte: UInt8) {
        flushStray()
        output.append(.send(Self.answer(byte)))
    }

    // One shared array per answer: a new one-byte array for every frame's ACK would allocate per frame.
    private static let ackBytes = [ASCIIControl.ack]
    private static let nakBytes = [ASCIIControl.nak]
    private static let eotBytes = [ASCIIControl.eot]

    private static func answer(_ byte: UInt8) -> [UInt8] {
        switch byte {
        case ASCIIControl.ack: ackBytes
        case ASCIIControl.nak: nakBytes
        case ASCIIControl.eot: eotBytes
        default: [byte]
        }
    }

    private mutating func emit(_ event: ReceiverEvent) {
        flushStray()
        output.append(.event(event))
    }

    private mutating func flushStray() {
        guard strayCount > 0 else { return }
        let count = strayCount
        strayCount = 0
        output.append(.event(.strayBytesIgnored(count: count)))
    }

    private mutating func flush() -> [Action] {
        flushStray()
        let actions = output
        output = []
        return actions
    }
}

extension E1381Receiver {
    /// The caller could not store the message of the last `.messageReceived`
    /// (the store is failing): its last frame is never answered, so the device
    /// times out, ends the session and sends the message again later. The
    /// receiver waits for that EOT, or for its frame timer.
    public mutating func messageNotStored(now: Duration) -> [Action] {
        guard awaitingStore else { return [] }
        awaitingStore = false
        if answerOnStore, phase == .awaitingStore {
            answerOnStore = false
            phase = .session
            deadline = now + configuration.frameTimeout
        }
        return flush()
    }
}
