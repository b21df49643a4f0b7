import DeviceLinks
import Quantities
import SeparatorProtocol
import SimulatorKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The simulated separator's one thread: a poll() loop that advances the run
/// on the simulated clock, keeps every message in the outbox until the host
/// has acknowledged it, and speaks E1381 on the link. Everything happens on
/// this thread, so there is nothing to lock.
final class DeviceLoop {
    struct Options {
        var speed: Double
        var answerTimeout: Duration
        var seed: UInt64
        var verbose: Bool
    }

    private let scenario: Scenario
    private var engine: RunEngine
    private let outbox: Outbox
    private var sender: E1381Sender
    private let link: WireLink
    private let capture: CaptureWriter?
    private let options: Options
    private var random: SeededGenerator
    private let log: (String) -> Void

    private let start = ContinuousClock.now
    /// Simulated run time at `start` (non-zero when resuming a run).
    private var simulatedOffset: Seconds
    private var cablePulledUntil: Duration?
    /// Line noise waiting for the sender to be between sessions.
    private var pendingNoise: [UInt8] = []
    /// After noise, the device stays quiet until this time, so that any answer
    /// the host gave to the noise has arrived before the next ENQ.
    private var quietUntil: Duration?
    /// Messages recorded in the outbox but held back from the sender while
    /// noise is pending or the line is being kept quiet.
    private var heldEntries: [Outbox.Entry] = []
    private var runEnded = false
    let runID: String

    init(
        scenario: Scenario, outbox: Outbox, link: WireLink, capture: CaptureWriter?, options: Options,
        log: @escaping (String) -> Void
    ) throws {
        self.scenario = scenario
        self.outbox = outbox
        self.link = link
        self.capture = capture
        self.options = options
        self.log = log
        random = SeededGenerator(seed: options.seed, stream: 2)  // apart from the engine's own draws

        var configuration = E1381Sender.Configuration()
        configuration.framing = scenario.framing
        configuration.answerTimeout = options.answerTimeout
        configuration.busyRetryDelay = Self.scaled(.seconds(10), speed: options.speed, floor: .milliseconds(50))
        configuration.retryDelay = Self.scaled(.seconds(10), speed: options.speed, floor: .milliseconds(50))
        sender = E1381Sender(configuration: configuration)

        let start = try RunStart(scenario: scenario, outbox: outbox, seed: options.seed, log: log)
        runID = start.runID
        engine = start.engine
        simulatedOffset = start.resumedAt
        for entry in outbox.pending { handle(sender.enqueue(id: entry.sequence, text: entry.text, now: now)) }
    }

    static func scaled(_ nominal: Duration, speed: Double, floor: Duration) -> Duration {
        max(nominal / speed, floor)
    }

    private var now: Duration { ContinuousClock.now - start }

    private func simulatedTime(at now: Duration) -> Seconds {
        simulatedOffset + Seconds(now.secondsValue * options.speed)
    }

    private func realTime(ofSimulated t: Seconds) -> Duration {
        .nanoseconds(Int64(max(0, (t - simulatedOffset).value / options.speed * 1e9)))
    }

    /// Runs until the run has ended and every message has been acknowledged.
    func run() throws {
        var lastConnected = link.isConnected
        handle(lastConnected ? sender.linkUp(now: now) : sender.linkDown(now: now))
        while true {
            let now = self.now
            try advanceRun(now)
            if let until = cablePulledUntil, now >= until {
                cablePulledUntil = nil
                try link.reconnectCable()
                log("cable reconnected")
                if link.isConnected { handle(sender.linkUp(now: now)) }
            }
            emitNoiseIfBetweenSessions(now)
            if !lineKeptQuiet(now), let deadline = sender.deadline, now >= deadline { handle(sender.timeout(now: now)) }
            if runEnded && outbox.pending.isEmpty && sender.queuedIDs.isEmpty && heldEntries.isEmpty { break }

            var descriptors = link.pollDescriptors
            let timeout = pollTimeout(now)
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                throw SystemError("poll", "link")
            }
            guard ready > 0 else { continue }
            let activity = try link.service(descriptors)
            let after = self.now
            if activity.disconnected {
                log("host disconnected")
                handle(sender.linkDown(now: after))
            }
            if activity.connected {
                log("host connected")
                handle(sender.linkUp(now: after))
            }
            if lastConnected != link.isConnected { lastConnected = link.isConnected }
            if !activity.received.isEmpty { receive(activity.received, now: after) }
        }
    }

    private func pollTimeout(_ now: Duration) -> Int32 {
        var wake = now + .milliseconds(100)
        if let deadline = sender.deadline { wake = min(wake, deadline) }
        if let until = cablePulledUntil { wake = min(wake, until) }
        if let until = quietUntil { wake = min(wake, until) }
        if !runEnded, let next = engine.nextEventTime { wake = min(wake, realTime(ofSimulated: next)) }
        let milliseconds = (wake - now).secondsValue * 1000
        return Int32(max(0, min(100, milliseconds.rounded(.up))))
    }

    private func advanceRun(_ now: Duration) throws {
        guard !runEnded else { return }
        let t = simulatedTime(at: now)
        let outputs = engine.advance(to: t)
        var messages: [SeparatorMessage] = []
        for output in outputs {
            switch output {
            case .message(let message): messages.append(message)
            case .wireFault(let fault): apply(fault, now: now)
            }
        }
        if !messages.isEmpty {
            var entries = try outbox.enqueue(messages, at: t) { E1394Encoder.encode($0) }
            if let lost = scenario.faults.lostSpan, lost.contains(t), let first = entries.first, let last = entries.last {
                for entry in entries { try outbox.acknowledge(entry.sequence) }
                log("fault: message(s) #\(first.sequence)...#\(last.sequence) taken by another reader (never sent)")
                entries = []
            }
            if scenario.faults.garbage > 0, Double.random(in: 0..<1, using: &random) < scenario.faults.garbage {
                pendingNoise += randomBytes(Int.random(in: 1...16, using: &random))
            }
            heldEntries += entries
            if !lineKeptQuiet(now) { releaseHeldEntries(now) }
        }
        if engine.isFinished {
            runEnded = true
            try outbox.endRun()
            log("run \(runID) ended; \(outbox.pending.count) message(s) still to deliver")
        }
    }

    private func apply(_ fault: WireFault, now: Duration) {
        switch fault {
        case .cablePull(let duration):
            log("cable pulled for \(duration.value) s (simulated)")
            cablePulledUntil = now + .nanoseconds(Int64(duration.value / options.speed * 1e9))
            link.pullCable()
            handle(sender.linkDown(now: now))
        case .garbage(let count):
            pendingNoise += randomBytes(count)
        }
    }

    // Line noise. E1381 protects frames with a checksum but not the one-byte
    // answers: noise inside a session that holds an ENQ, or an STX...LF the
    // host NAKs, draws an answer the device would take for the answer to its
    // own next frame, and from then on every answer is one off. So noise goes
    // on the line only between sessions, followed by a quiet spell in which
    // the host's answers to it arrive and are ignored by the idle device.
    // (The receiver's handling of noise inside frames is covered by the
    // protocol module's unit and fuzz tests.)
    private static let quietAfterNoise = Duration.milliseconds(200)

    private func lineKeptQuiet(_ now: Duration) -> Bool {
        if !pendingNoise.isEmpty { return true }
        guard let until = quietUntil else { return false }
        if now < until { return true }
        quietUntil = nil
        releaseHeldEntries(now)
        return false
    }

    private func emitNoiseIfBetweenSessions(_ now: Duration) {
        guard !pendingNoise.isEmpty, !sender.isInSession, cablePulledUntil == nil else { return }
        log("sending \(pendingNoise.count) garbage bytes")
        transmit(pendingNoise)
        pendingNoise.removeAll()
        quietUntil = now + Self.quietAfterNoise
    }

    private func releaseHeldEntries(_ now: Duration) {
        let entries = heldEntries
        heldEntries.removeAll()
        for entry in entries { handle(sender.enqueue(id: entry.sequence, text: entry.text, now: now)) }
    }

    private func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    private func receive(_ bytes: [UInt8], now: Duration) {
        guard cablePulledUntil == nil else { return }
        capture?.record(.hostToDevice, bytes)
        var kept = bytes
        if scenario.faults.lostAck > 0 {
            kept.removeAll { $0 == ASCIIControl.ack && Double.random(in: 0..<1, using: &random) < scenario.faults.lostAck }
            if kept.count != bytes.count { log("lost \(bytes.count - kept.count) ACK(s)") }
        }
        if !kept.isEmpty { handle(sender.receive(kept, now: now)) }
    }

    private func handle(_ actions: [E1381Sender.Action]) {
        for action in actions {
            switch action {
            case .send(let bytes):
                transmit(corruptingChecksum(bytes))
            case .delivered(let id):
                do {
                    try outbox.acknowledge(id)
                } catch {
                    log("cannot record the acknowledgement of message \(id): \(error)")
                }
            case .event(let event):
                if options.verbose { log("e1381: \(event)") }
            }
        }
    }

    /// The corrupt-checksum fault: one transmission of a frame carries a wrong
    /// checksum; the sender still holds the good frame for the resend.
    private func corruptingChecksum(_ bytes: [UInt8]) -> [UInt8] {
        let rate = scenario.faults.corruptChecksum
        guard rate > 0, bytes.count >= 7, bytes.first == ASCIIControl.stx,
            Double.random(in: 0..<1, using: &random) < rate
        else { return bytes }
        var corrupted = bytes
        let c1 = corrupted.count - 4
        corrupted[c1] = corrupted[c1] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        return corrupted
    }

    private func transmit(_ bytes: [UInt8]) {
        guard cablePulledUntil == nil, link.isConnected else { return }
        capture?.record(.deviceToHost, bytes)
        link.write(bytes)
    }
}

extension Duration {
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
