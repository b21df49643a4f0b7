import Ingest
import LiveState
import Logging
import NIOCore
import SeparatorProtocol
import ServiceLifecycle
import Synchronization

/// One separator on one wire link: connects (with capped backoff), runs the
/// E1381 receiver on the byte stream, and hands every complete message to the
/// pipeline, answering its last frame only once the pipeline has stored it.
/// Link state changes are logged, counted and passed to the run watchers.
final class DeviceService: Service, Sendable {
    struct Settings: Sendable {
        var reconnectInitial: Duration = .milliseconds(200)
        var reconnectMax: Duration = .seconds(30)
        /// No byte at all for this long while connected: the link is stale.
        var silenceTimeout: Duration = .seconds(60)
        /// How long to let the device finish its message after shutdown begins. Short: whatever
        /// is cut off was not answered, so the device sends it again later; the daemon's stop
        /// (all devices at once) must stay well under systemd's patience and 2 s.
        var shutdownGrace: Duration = .seconds(1)
    }

    let name: String
    let source: any LinkSource
    let pipeline: IngestPipeline
    let group: EventLoopGroup
    let health: HealthBoard
    let settings: Settings
    let logger: Logger
    private let stopping = Atomic<Bool>(false)

    init(
        name: String, source: any LinkSource, pipeline: IngestPipeline, group: EventLoopGroup,
        health: HealthBoard, settings: Settings, logger: Logger
    ) {
        self.name = name
        self.source = source
        self.pipeline = pipeline
        self.group = group
        self.health = health
        self.settings = settings
        var logger = logger
        logger[metadataKey: "device"] = "\(name)"
        self.logger = logger
        health.register(name, link: source.description)
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            // Every open run this link carried before a restart is watched from now on, so that a
            // cable out at restart raises LINK_DOWN and STALE_TELEMETRY by the clock.
            await pipeline.restoreOpenRuns(now: DaemonClock.monotonic)
            try await connectLoop()
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }

    private var isStopping: Bool { stopping.load(ordering: .relaxed) || Task.isCancelled }

    private func connectLoop() async throws {
        var backoff = settings.reconnectInitial
        var attempts = 0
        var connectedBefore = false
        // What the run watchers were last told: nil before the first word. The link is "up" for them
        // only once bytes arrive: a pty or socket that opens but stays silent is not a separator.
        var watchersToldUp: Bool?
        while !isStopping {
            health.loopProgressed(name, at: DaemonClock.monotonic)
            if connectedBefore { health.update(name) { if $0.state != .stale { $0.state = .reconnecting } } }
            let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
            do {
                guard let opened = try await connectUnlessStopping() else { break }
                channel = opened
            } catch {
                attempts += 1
                let reason = "\(error)"
                health.update(name) {
                    $0.state = connectedBefore ? .reconnecting : .down
                    $0.lastError = reason
                }
                if attempts == 1 || attempts % 20 == 0 {
                    logger.warning("cannot open link \(source.description): \(reason); retrying", metadata: ["attempts": "\(attempts)"])
                }
                if watchersToldUp != false, !(error is LinkNotReady) {
                    // A cable out at start (or still out): the open runs' LINK_DOWN, once per outage.
                    watchersToldUp = false
                    await pipeline.linkChanged(up: false, detail: "\(source.description): \(reason)", now: DaemonClock.monotonic)
                }
                await sleepWatchingShutdown(backoff)
                backoff = min(backoff * 2, settings.reconnectMax)
                continue
            }
            if connectedBefore { health.update(name) { $0.reconnects += 1 } }
            connectedBefore = true
            attempts = 0
            backoff = settings.reconnectInitial
            health.update(name) {
                // Open is not up: the state is "up" from the first byte (after a silence it stays "stale").
                if $0.state != .stale { $0.state = .connecting }
                $0.lastError = nil
            }
            logger.notice("link open: \(source.description)")

            let ending = await serve(channel, watchersToldUp: &watchersToldUp)

            health.update(name) {
                $0.state = ending == .silence ? .stale : .down
                $0.lastError = ending.description
            }
            if isStopping { break }
            logger.warning("link down: \(source.description): \(ending)")
            if watchersToldUp != false {
                watchersToldUp = false
                await pipeline.linkChanged(up: false, detail: "\(source.description): \(ending)", now: DaemonClock.monotonic)
            }
            await sleepWatchingShutdown(settings.reconnectInitial)
        }
    }

    /// Sleeps in short steps so the watchdog sees the loop alive; shutdown ends the sleep at once.
    /// Staleness is judged by the clock here too: a run whose link is down still goes stale.
    private func sleepWatchingShutdown(_ duration: Duration) async {
        let end = DaemonClock.monotonic + duration
        while !isStopping, DaemonClock.monotonic < end {
            health.loopProgressed(name, at: DaemonClock.monotonic)
            await pipeline.checkStaleness(now: DaemonClock.monotonic)
            let step = min(.milliseconds(250), end - DaemonClock.monotonic)
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: step) }
        }
    }

    private enum ConnectOutcome: Sendable {
        case connected(NIOAsyncChannel<ByteBuffer, ByteBuffer>)
        case failed(any Error)
        case stopping
    }

    /// Opens the link, or nil when shutdown comes first. Opening can take seconds (a TCP bridge
    /// that does not answer holds the connect for its whole timeout, and NIO's connect does not
    /// heed task cancellation), so it runs on its own and is raced against shutdown; a link that
    /// opens after the race was lost is closed at once.
    private func connectUnlessStopping() async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer>? {
        let race = FirstOutcome<ConnectOutcome>()
        let source = self.source
        let group = self.group
        Task {
            do {
                let channel = try await source.connect(group: group)
                if !race.settle(.connected(channel)) { try? await channel.channel.close() }
            } catch {
                race.settle(.failed(error))
            }
        }
        let outcome = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await race.value()
            } onGracefulShutdown: {
                race.settle(.stopping)
            }
        } onCancel: {
            race.settle(.stopping)
        }
        switch outcome {
        case .connected(let channel): return channel
        case .failed(let error): throw error
        case .stopping: return nil
        }
    }

    enum Ending: Equatable, CustomStringConvertible {
        case closedByDevice
        case error(String)
        case silence
        case shutdown

        var description: String {
            switch self {
            case .closedByDevice: "the device side closed"
            case .error(let e): e
            case .silence: "no byte received for too long"
            case .shutdown: "daemon shutting down"
            }
        }
    }

    private enum Input: Sendable {
        case bytes(ByteBuffer)
        case closed(String?)
        case tick
    }

    /// Runs one connection until it ends.
    private func serve(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, watchersToldUp: inout Bool?) async -> Ending {
        let underlying = channel.channel
        do {
            var told = watchersToldUp
            defer { watchersToldUp = told }
            return try await channel.executeThenClose { inbound, outbound in
                let (inputs, continuation) = AsyncStream<Input>.makeStream(bufferingPolicy: .unbounded)
                return await withTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        do {
                            for try await buffer in inbound { continuation.yield(.bytes(buffer)) }
                            continuation.yield(.closed(nil))
                        } catch {
                            continuation.yield(.closed("\(error)"))
                        }
                    }
                    tasks.addTask {
                        // Timers of the receiver and the run watchers, and the
                        // watchdog's proof of life, all ride on this tick.
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(250))
                            continuation.yield(.tick)
                        }
                    }
                    tasks.addTask {
                        // Shutdown is seen at once, not at the next tick.
                        if (try? await gracefulShutdown()) != nil { continuation.yield(.tick) }
                    }
                    let ending = await receiveLoop(inputs, outbound: outbound, watchersToldUp: &told)
                    // Closing ends the inbound sequence, which task cancellation alone does not.
                    underlying.close(promise: nil)
                    tasks.cancelAll()
                    continuation.finish()
                    return ending
                }
            }
        } catch {
            return .error("\(error)")
        }
    }

    private func receiveLoop(
        _ inputs: AsyncStream<Input>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, watchersToldUp: inout Bool?
    ) async -> Ending {
        var receiver = E1381Receiver(configuration: pipeline.settings.dialect.framing)
        var lastByte = DaemonClock.monotonic
        var shutdownSince: Duration?
        for await input in inputs {
            let now = DaemonClock.monotonic
            health.loopProgressed(name, at: now)
            do {
                switch input {
                case .bytes(let buffer):
                    lastByte = now
                    health.update(name) {
                        $0.lastByteAt = now
                        $0.state = .up
                    }
                    if watchersToldUp != true {
                        watchersToldUp = true
                        logger.notice("link up: \(source.description): the separator is heard")
                        await pipeline.linkChanged(up: true, detail: source.description, now: now)
                    }
                    let actions = buffer.withUnsafeReadableBytes { receiver.receive($0, now: now) }
                    try await perform(actions, receiver: &receiver, outbound: outbound)
                    // While a message was being stored the device waited for our answer: that silence is ours.
                    lastByte = DaemonClock.monotonic
                case .closed(let error):
                    return error.map { .error($0) } ?? .closedByDevice
                case .tick:
                    if isStopping {
                        if shutdownSince == nil {
                            shutdownSince = now
                            receiver.stopAccepting()
                        }
                        // Finished when no message is half-received, or after the grace period:
                        // anything unanswered is resent by the device later.
                        if !receiver.awaitingStore && receiver.deadline == nil { return .shutdown }
                        if let since = shutdownSince, now - since > settings.shutdownGrace { return .shutdown }
                    }
                    if let deadline = receiver.deadline, now >= deadline {
                        try await perform(receiver.timeout(now: now), receiver: &receiver, outbound: outbound)
                    }
                    await pipeline.checkStaleness(now: now)
                    if now - lastByte > settings.silenceTimeout { return .silence }
                }
            } catch {
                return .error("\(error)")
            }
        }
        return .closedByDevice
    }

    private func perform(
        _ actions: [E1381Receiver.Action], receiver: inout E1381Receiver,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws {
        var queue = actions[...]
        while let action = queue.popFirst() {
            switch action {
            case .send(let bytes):
                try await outbound.write(ByteBuffer(bytes: bytes))
            case .messageReceived(let text):
                let now = DaemonClock.monotonic
                if await pipeline.ingest(.message(text: text, receivedAt: now)).mayAcknowledge {
                    queue += receiver.messageStored(now: DaemonClock.monotonic)
                } else {
                    queue += receiver.messageNotStored(now: DaemonClock.monotonic)
                }
            case .event(let event):
                switch event {
                case .frameRejected(let error):
                    health.update(name) { $0.framesRejected += 1 }
                    logger.debug("frame rejected: \(error)")
                case .partialMessageDiscarded(let reason):
                    logger.info("partial message discarded: \(reason)")
                default:
                    logger.trace("e1381: \(event)")
                }
            }
        }
    }
}

/// The devices (with their simulator children and export directories) as one service whose
/// members run, and stop, side by side. ServiceGroup stops its services one after another and
/// waits for each; for devices that made the stop last one grace period per device. Here every
/// member hears the shutdown at the same moment (they share this service's graceful shutdown),
/// so the stop takes as long as the slowest device, whatever their number.
final class DeviceFleet: Service, Sendable {
    let members: [any Service]

    init(_ members: [any Service]) {
        self.members = members
    }

    func run() async throws {
        guard !members.isEmpty else {
            // Nothing to run: stay until the daemon stops (a service that returns early stops the group).
            try? await gracefulShutdown()
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for member in members {
                tasks.addTask { try await member.run() }
            }
            // One member failing stops the others, as the service group would.
            do {
                try await tasks.waitForAll()
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
    }
}

/// The first of several racing outcomes: `settle` from any task, `value()` awaited once.
final class FirstOutcome<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiter: CheckedContinuation<Value, Never>?
    }

    private let state = Mutex(State())

    /// True when this call decided the race; later calls change nothing.
    @discardableResult
    func settle(_ value: Value) -> Bool {
        let (decided, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Value, Never>?) in
            guard state.value == nil else { return (false, nil) }
            state.value = value
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume(returning: value)
        return decided
    }

    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let settled = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiter = continuation
                return nil
            }
            if let settled { continuation.resume(returning: settled) }
        }
    }
}
