/// Why the sender gave up on a session (the message stays queued).
public enum SessionAbortReason: Hashable, Sendable {
    case tooManyRetries
    case answerTimeout
    case linkDown
}

/// What the sender did, for logs and metrics.
public enum SenderEvent: Hashable, Sendable {
    case sessionStarted
    case sessionEnded
    /// ENQ answered NAK: the receiver is busy; ENQ again after `busyRetryDelay`.
    case establishmentRefused
    /// `attempt` counts transmissions of this frame, the first is 1.
    case frameNAKed(frameNumber: Int, attempt: Int)
    case sessionAborted(reason: SessionAbortReason)
    /// A frame was answered EOT: the session ends after the current message.
    case receiverRequestedStop
}

/// The device side of ASTM E1381, used by the simulator. Owns the queue of
/// unacknowledged messages; no clock and no I/O inside (see `E1381Receiver`).
public struct E1381Sender: Sendable {
    public struct Configuration: Hashable, Sendable {
        public var answerTimeout: Duration
        public var busyRetryDelay: Duration
        /// Pause before establishing again after an aborted session.
        public var retryDelay: Duration
        /// Transmissions of one frame before the session is aborted.
        public var maxFrameRetries: Int
        public var framing: FramingMode
        public var maxTextLength: Int
        public init(
            answerTimeout: Duration = .seconds(15), busyRetryDelay: Duration = .seconds(10), retryDelay: Duration = .seconds(10),
            maxFrameRetries: Int = 6, framing: FramingMode = .wholeMessage, maxTextLength: Int = E1381.maxTextLength
        ) {
            self.answerTimeout = answerTimeout
            self.busyRetryDelay = busyRetryDelay
            self.retryDelay = retryDelay
            self.maxFrameRetries = maxFrameRetries
            self.framing = framing
            self.maxTextLength = maxTextLength
        }
    }

    public enum Action: Hashable, Sendable {
        /// ENQ, a frame, or EOT to write.
        case send([UInt8])
        /// The message's last frame was accepted: it may leave durable storage.
        case delivered(id: UInt64)
        case event(SenderEvent)
    }

    private struct QueuedMessage: Sendable {
        var id: UInt64
        var text: [UInt8]
    }

    private enum Phase: Hashable, Sendable {
        case idle
        case waitingRetry(until: Duration)
        case awaitingEnquiryAnswer(deadline: Duration)
        case awaitingFrameAnswer(deadline: Duration)
    }

    public var configuration: Configuration
    public private(set) var isLinkUp = true

    private var queue: [QueuedMessage] = []
    private var phase = Phase.idle
    private var frames: [[UInt8]] = []
    private var frameIndex = 0
    private var frameNumber = 1
    private var attempts = 0
    private var stopRequested = false
    private var output: [Action] = []

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    public var queuedIDs: [UInt64] { queue.map(\.id) }

    public var deadline: Duration? {
        switch phase {
        case .idle: nil
        case .waitingRetry(let until): until
        case .awaitingEnquiryAnswer(let deadline), .awaitingFrameAnswer(let deadline): deadline
        }
    }

    /// True from ENQ until the session ends.
    public var isInSession: Bool {
        switch phase {
        case .awaitingEnquiryAnswer, .awaitingFrameAnswer: true
        case .idle, .waitingRetry: false
        }
    }

    // MARK: Inputs

    public mutating func enqueue(id: UInt64, text: [UInt8], now: Duration) -> [Action] {
        queue.append(QueuedMessage(id: id, text: text))
        if phase == .idle { establish(now: now) }
        return flush()
    }

    public mutating func receive(_ bytes: some Collection<UInt8>, now: Duration) -> [Action] {
        // One answer per thing sent: bytes after it in the same chunk predate what we send
        // in response, so they cannot answer it and are dropped.
        for byte in bytes {
            switch phase {
            case .awaitingEnquiryAnswer:
                if byte == ASCIIControl.ack {
                    emit(.sessionStarted)
                    frameNumber = 1
                    stopRequested = false
                    startHeadMessage(now: now)
                    return flush()
                } else if byte == ASCIIControl.nak {
                    emit(.establishmentRefused)
                    phase = .waitingRetry(until: now + configuration.busyRetryDelay)
                    return flush()
                }
            // Anything else (noise, the receiver's own ENQ) is not an answer: keep waiting.
            case .awaitingFrameAnswer:
                if byte == ASCIIControl.ack || byte == ASCIIControl.eot {
                    if byte == ASCIIControl.eot, !stopRequested {
                        stopRequested = true
                        emit(.receiverRequestedStop)
                    }
                    frameAccepted(now: now)
                } else {
                    frameRejected(now: now)
                }
                return flush()
            case .idle, .waitingRetry:
                return flush()
            }
        }
        return flush()
    }

    /// Call when `now >= deadline`; earlier calls do nothing.
    public mutating func timeout(now: Duration) -> [Action] {
        switch phase {
        case .awaitingEnquiryAnswer(let deadline), .awaitingFrameAnswer(let deadline):
            if now >= deadline { abort(.answerTimeout, sendEOT: true, now: now) }
        case .waitingRetry(let until):
            if now >= until {
                phase = .idle
                establish(now: now)
            }
        case .idle:
            break
        }
        return flush()
    }

    /// The connection is gone: abort the session, keep the messages.
    public mutating func linkDown(now: Duration) -> [Action] {
        isLinkUp = false
        if isInSession { abort(.linkDown, sendEOT: false, now: now) }
        return flush()
    }

    public mutating func linkUp(now: Duration) -> [Action] {
        isLinkUp = true
        if phase == .idle { establish(now: now) }
        return flush()
    }

    // MARK: Steps

    private mutating func establish(now: Duration) {
        guard isLinkUp, !queue.isEmpty else { return }
        send([ASCIIControl.enq])
        phase = .awaitingEnquiryAnswer(deadline: now + configuration.answerTimeout)
    }

    private mutating func startHeadMessage(now: Duration) {
        guard let head = queue.first else { return }
        frames = E1381Framer.frames(
            forMessage: head.text, mode: configuration.framing, firstFrameNumber: frameNumber,
            maxTextLength: configuration.maxTextLength)
        frameIndex = 0
        attempts = 0
        sendCurrentFrame(now: now)
    }

    private mutating func sendCurrentFrame(now: Duration) {
        attempts += 1
        send(frames[frameIndex])
        phase = .awaitingFrameAnswer(deadline: now + configuration.answerTimeout)
    }

    private mutating func frameAccepted(now: Duration) {
        frameIndex += 1
        frameNumber = (frameNumber + 1) % 8
        attempts = 0
        if frameIndex < frames.count { return sendCurrentFrame(now: now) }

        let delivered = queue.removeFirst()
        frames = []
        output.append(.delivered(id: delivered.id))
        if stopRequested {
            // The receiver is shutting down: do not knock again at once.
            endSession(next: queue.isEmpty ? .idle : .waitingRetry(until: now + configuration.retryDelay))
        } else if queue.isEmpty {
            endSession(next: .idle)
        } else {
            startHeadMessage(now: now)
        }
    }

    private mutating func frameRejected(now: Duration) {
        emit(.frameNAKed(frameNumber: frameNumber, attempt: attempts))
        if attempts >= configuration.maxFrameRetries {
            abort(.tooManyRetries, sendEOT: true, now: now)
        } else {
            sendCurrentFrame(now: now)
        }
    }

    private mutating func endSession(next: Phase) {
        send([ASCIIControl.eot])
        emit(.sessionEnded)
        phase = next
    }

    private mutating func abort(_ reason: SessionAbortReason, sendEOT: Bool, now: Duration) {
        if sendEOT { send([ASCIIControl.eot]) }
        emit(.sessionAborted(reason: reason))
        frames = []
        phase = .waitingRetry(until: now + configuration.retryDelay)
    }

    private mutating func send(_ bytes: [UInt8]) { output.append(.send(bytes)) }
    private mutating func emit(_ event: SenderEvent) { output.append(.event(event)) }

    private mutating func flush() -> [Action] {
        let actions = output
        output = []
        return actions
    }
}
