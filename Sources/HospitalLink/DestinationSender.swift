import HL7
import LiveState
import Logging
import RecordStore
import TextFormats

/// How the daemon sends to one destination (from `[[hl7.destination]]`, docs/hl7.md).
public struct HL7SenderSettings: Sendable {
    public var name: String
    public var host: String
    public var port: Int
    public var connectTimeout: Duration
    /// How long to wait for the accept acknowledgement before the message is sent again.
    public var answerTimeout: Duration
    /// Wait after a failure (connection, timeout, AE) before trying again.
    public var retryDelay: Duration
    /// AE answers a message may get before it is set aside (AR sets aside at once).
    public var errorAttempts: Int
    /// How often an empty queue is looked at again.
    public var pollInterval: Duration
    public var tls: MLLPTLS?

    public init(
        name: String, host: String, port: Int, connectTimeout: Duration = .seconds(10), answerTimeout: Duration = .seconds(30),
        retryDelay: Duration = .seconds(10), errorAttempts: Int = 3, pollInterval: Duration = .milliseconds(500), tls: MLLPTLS? = nil
    ) {
        self.tls = tls
        self.name = name
        self.host = host
        self.port = port
        self.connectTimeout = connectTimeout
        self.answerTimeout = answerTimeout
        self.retryDelay = retryDelay
        self.errorAttempts = errorAttempts
        self.pollInterval = pollInterval
    }

    public var address: String { HostAndPort(host: host, port: port).description }
}

/// Sends one destination's queue in order, one message at a time: the next message goes out only
/// once the one before it was accepted or set aside. A message that got no usable answer is sent
/// again, with the same bytes and control id, after the retry delay and on a new connection. The
/// separator's side never waits for any of this: the queue is in the store, written with what it
/// reports, and this reads it on its own task.
public struct HL7DestinationSender: Sendable {
    public let settings: HL7SenderSettings
    let store: RecordStore
    let board: HL7LinkBoard
    let logger: Logger
    let now: @Sendable () -> Duration
    let wallMilliseconds: @Sendable () -> Int64

    public init(
        settings: HL7SenderSettings, store: RecordStore, board: HL7LinkBoard, logger: Logger,
        now: @escaping @Sendable () -> Duration, wallMilliseconds: @escaping @Sendable () -> Int64
    ) {
        self.settings = settings
        self.store = store
        self.board = board
        var logger = logger
        logger[metadataKey: "hl7_destination"] = "\(settings.name)"
        self.logger = logger
        self.now = now
        self.wallMilliseconds = wallMilliseconds
    }

    /// Runs until the task is cancelled.
    public func run() async {
        board.register(settings.name, address: settings.address, now: now())
        var connection: MLLPConnection?
        defer { if let connection { Task { await connection.close() } } }
        while !Task.isCancelled {
            let batch: [HL7OutboxEntry]
            do {
                batch = try await store.pendingHL7(destination: settings.name, limit: 32)
            } catch {
                logger.error("cannot read the HL7 outbox: \(error)")
                await pause(settings.retryDelay)
                continue
            }
            if batch.isEmpty {
                await pause(settings.pollInterval)
                continue
            }
            for entry in batch {
                if Task.isCancelled { break }
                // An engine may close a connection that stayed idle: that is no failure of a
                // message, so it is not counted as one; a new connection is made.
                if let idle = connection, !idle.isActive {
                    await idle.close()
                    connection = nil
                }
                if connection == nil {
                    connection = await connect()
                    if connection == nil {
                        await pause(settings.retryDelay)
                        break
                    }
                }
                guard let open = connection else { break }
                if await !send(entry, over: open) {
                    await open.close()
                    connection = nil
                    await pause(settings.retryDelay)
                    break
                }
            }
        }
    }

    private func connect() async -> MLLPConnection? {
        board.set(settings.name, .connecting, now: now())
        do {
            let connection = try await MLLPConnection.connect(
                host: settings.host, port: settings.port, connectTimeout: settings.connectTimeout, answerTimeout: settings.answerTimeout,
                tls: settings.tls)
            board.set(settings.name, .up, now: now())
            board.update(settings.name) { $0.connects += 1 }
            logger.notice("HL7 destination \(settings.name) (\(settings.address)) connected\(settings.tls == nil ? "" : " (TLS)")")
            return connection
        } catch {
            let reason = "\(settings.address): \(error)"
            let wasDown = board.destinations.first { $0.name == settings.name }?.lastError == reason
            board.set(settings.name, .down, now: now(), error: reason)
            // Said once per cause, not at every retry of a long outage.
            if !wasDown { logger.warning("HL7 destination \(settings.name) \(reason); messages wait in the outbox") }
            return nil
        }
    }

    /// One exchange. True when the connection may carry the next message.
    private func send(_ entry: HL7OutboxEntry, over connection: MLLPConnection) async -> Bool {
        let answerBytes: [UInt8]
        do {
            answerBytes = try await connection.exchange(entry.message)
        } catch {
            let reason = ConnectionErrors.describe(error)
            board.update(settings.name) { $0.unanswered += 1 }
            board.set(settings.name, .down, now: now(), error: "\(settings.address): \(reason)")
            logger.warning("HL7 \(entry.messageType) \(entry.controlID): \(reason); it will be sent again with the same control id")
            await note(entry, error: reason)
            return false
        }
        let answer: HL7Acknowledgement
        do {
            answer = try HL7Acknowledgement(parsing: answerBytes)
        } catch {
            logger.error("HL7 \(entry.controlID): the receiver's answer is not an acknowledgement (\(error)); sending again")
            await note(entry, error: "unreadable answer: \(error)")
            return false
        }
        guard answer.controlID == entry.controlID else {
            logger.error("HL7 \(entry.controlID): the receiver answered for control id \(answer.controlID); sending again")
            await note(entry, error: "answer for control id \(answer.controlID), not \(entry.controlID)")
            return false
        }
        board.update(settings.name) { $0.answers[answer.code.rawValue, default: 0] += 1 }
        let at = wallMilliseconds()
        do {
            switch answer.code.verdict {
            case .accepted:
                try await store.recordHL7Delivered(id: entry.id, ackCode: answer.code.rawValue, ackText: answer.text, atUnixMilliseconds: at)
                board.update(settings.name) { $0.lastAcceptedAt = now() }
                return true
            case .rejected:
                let reason = answer.text.isEmpty ? "rejected without a reason" : answer.text
                try await store.recordHL7SetAside(id: entry.id, ackCode: answer.code.rawValue, reason: reason, atUnixMilliseconds: at)
                logger.error(
                    "HL7 \(entry.messageType) \(entry.controlID) (\(entry.subject)) rejected by \(settings.name) (\(answer.code.rawValue): \(reason)); set aside, the next messages go on")
                return true
            case .error:
                let reason = answer.text.isEmpty ? "application error without a reason" : answer.text
                let errors = entry.errorAnswers + 1
                if errors >= settings.errorAttempts {
                    try await store.recordHL7SetAside(
                        id: entry.id, ackCode: answer.code.rawValue,
                        reason: "\(reason) (answered \(answer.code.rawValue) \(errors) times)", atUnixMilliseconds: at)
                    logger.error(
                        "HL7 \(entry.messageType) \(entry.controlID) (\(entry.subject)) answered \(answer.code.rawValue) \(errors) times by \(settings.name) (\(reason)); set aside")
                    return true
                }
                try await store.recordHL7Attempt(
                    id: entry.id, error: "\(answer.code.rawValue): \(reason)", errorAnswer: true, atUnixMilliseconds: at)
                logger.warning("HL7 \(entry.controlID) answered \(answer.code.rawValue) (\(reason)); sending again after \(settings.retryDelay)")
                return false
            }
        } catch {
            // The receiver has it; the store could not say so. It is sent again (same control id) once
            // the store takes writes: a duplicate the receiver can recognise, never a loss.
            logger.error("HL7 \(entry.controlID): answered \(answer.code.rawValue) but the store could not record it: \(error)")
            return false
        }
    }

    private func note(_ entry: HL7OutboxEntry, error: String) async {
        do {
            try await store.recordHL7Attempt(id: entry.id, error: error, atUnixMilliseconds: wallMilliseconds())
        } catch {
            logger.error("HL7 \(entry.controlID): cannot record the failed attempt: \(error)")
        }
    }

    private func pause(_ duration: Duration) async {
        try? await Task.sleep(for: duration)
    }
}
