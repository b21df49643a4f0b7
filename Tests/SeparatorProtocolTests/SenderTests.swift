import SeparatorProtocol
import Testing

@Suite struct SenderTests {
    let short = bytes("H|\\^&\rL|1|N\r")

    /// A sender whose ENQ for message 1 has been answered ACK at t=0; returns the first frame.
    func started(_ configuration: E1381Sender.Configuration = .init(), text: [UInt8]? = nil) -> (E1381Sender, [E1381Sender.Action]) {
        var sender = E1381Sender(configuration: configuration)
        _ = sender.enqueue(id: 1, text: text ?? short, now: .zero)
        let actions = sender.receive(ACK, now: .zero)
        return (sender, actions)
    }

    @Test func enquiryThenFramesThenEOT() {
        var sender = E1381Sender()
        #expect(sender.enqueue(id: 9, text: short, now: .zero) == [.send(ENQ)])
        #expect(sender.deadline == .s(15))
        let first = sender.receive(ACK, now: .s(1))
        #expect(first == [.event(.sessionStarted), .send(E1381.frame(number: 1, text: short, isFinal: true))])
        #expect(sender.deadline == .s(16))
        let done = sender.receive(ACK, now: .s(2))
        #expect(done == [.delivered(id: 9), .send(EOT), .event(.sessionEnded)])
        #expect(sender.queuedIDs.isEmpty)
        #expect(sender.deadline == nil)
    }

    @Test func nakedFrameIsResent() {
        var (sender, first) = started()
        let again = sender.receive(NAK, now: .s(1))
        #expect(again == [.event(.frameNAKed(frameNumber: 1, attempt: 1))] + first.filter { if case .send = $0 { true } else { false } })
    }

    @Test func anyOtherAnswerCountsAsNAK() {
        var (sender, _) = started()
        let again = sender.receive([0x41], now: .s(1))
        #expect(again.events == [.frameNAKed(frameNumber: 1, attempt: 1)])
        #expect(again.sent.count == 1)
    }

    @Test func sixNAKsAbortAndKeepTheMessage() {
        var (sender, _) = started()
        var actions: [E1381Sender.Action] = []
        for _ in 1...5 { actions = sender.receive(NAK, now: .s(1)) }
        #expect(actions.events == [.frameNAKed(frameNumber: 1, attempt: 5)])
        actions = sender.receive(NAK, now: .s(2))
        #expect(actions == [.event(.frameNAKed(frameNumber: 1, attempt: 6)), .send(EOT), .event(.sessionAborted(reason: .tooManyRetries))])
        #expect(sender.queuedIDs == [1])
        #expect(sender.deadline == .s(12))
        #expect(sender.timeout(now: .s(11)).isEmpty)
        #expect(sender.timeout(now: .s(12)) == [.send(ENQ)])
    }

    @Test func answerTimeoutAborts() {
        var (sender, _) = started()
        #expect(sender.timeout(now: .s(14)).isEmpty)
        #expect(sender.timeout(now: .s(15)) == [.send(EOT), .event(.sessionAborted(reason: .answerTimeout))])
        #expect(sender.queuedIDs == [1])
        #expect(sender.deadline == .s(25))
    }

    @Test func enquiryTimeoutAborts() {
        var sender = E1381Sender()
        _ = sender.enqueue(id: 1, text: short, now: .zero)
        #expect(sender.timeout(now: .s(15)) == [.send(EOT), .event(.sessionAborted(reason: .answerTimeout))])
    }

    @Test func eotAnswerFinishesTheMessageThenEnds() {
        let long = bytes(String(repeating: "R|1|x\r", count: 60)) + short
        var (sender, _) = started(text: long)
        _ = sender.enqueue(id: 2, text: short, now: .zero)
        let next = sender.receive(EOT, now: .s(1))
        #expect(next.events == [.receiverRequestedStop])
        #expect(next.sent == [E1381Framer.frames(forMessage: long, mode: .wholeMessage, firstFrameNumber: 1)[1]])
        let end = sender.receive(EOT, now: .s(2))
        #expect(end == [.delivered(id: 1), .send(EOT), .event(.sessionEnded)])
        #expect(sender.queuedIDs == [2])
        #expect(sender.deadline == .s(12))
    }

    @Test func busyReceiverDelaysEnquiry() {
        var sender = E1381Sender()
        _ = sender.enqueue(id: 1, text: short, now: .zero)
        #expect(sender.receive(NAK, now: .s(1)) == [.event(.establishmentRefused)])
        #expect(sender.deadline == .s(11))
        #expect(sender.enqueue(id: 2, text: short, now: .s(2)).isEmpty)
        #expect(sender.timeout(now: .s(11)) == [.send(ENQ)])
    }

    @Test func linkDownAbortsAndLinkUpRestarts() {
        var (sender, _) = started()
        #expect(sender.linkDown(now: .s(1)) == [.event(.sessionAborted(reason: .linkDown))])
        #expect(sender.queuedIDs == [1])
        #expect(sender.timeout(now: .s(11)).isEmpty)
        #expect(sender.linkUp(now: .s(12)) == [.send(ENQ)])
    }

    @Test func frameNumbersRunOnAcrossMessages() {
        var (sender, _) = started()
        _ = sender.enqueue(id: 2, text: short, now: .zero)
        let second = sender.receive(ACK, now: .s(1))
        #expect(second == [.delivered(id: 1), .send(E1381.frame(number: 2, text: short, isFinal: true))])
    }

    @Test func bytesWhileIdleAreIgnored() {
        var sender = E1381Sender()
        #expect(sender.receive(ACK + NAK + EOT, now: .zero).isEmpty)
        #expect(sender.deadline == nil)
    }
}

@Suite struct LoopTests {
    /// Sender and receiver wired in memory with a fake clock; returns the stored texts in order.
    func run(framing: FramingMode, count: Int, seed: UInt64, slowStore: Bool = false) -> (stored: [[UInt8]], texts: [[UInt8]]) {
        var rng = SplitMix64(seed: seed)
        var sender = E1381Sender(configuration: .init(framing: framing))
        var receiver = E1381Receiver()
        var now = Duration.zero
        var texts: [[UInt8]] = []
        var stored: [[UInt8]] = []
        var toReceiver: [[UInt8]] = []
        var toSender: [[UInt8]] = []
        var pendingStore = false

        func handle(_ actions: [E1381Sender.Action]) { toReceiver += actions.sent }
        func handle(_ actions: [E1381Receiver.Action]) {
            for action in actions {
                switch action {
                case .send(let b): toSender.append(b)
                case .messageReceived(let m):
                    stored.append(m)
                    pendingStore = true
                case .event: break
                }
            }
        }

        for id in 0..<UInt64(count) {
            let text = E1394Encoder.encode(randomMessage(&rng, maxRecords: 30))
            texts.append(text)
            handle(sender.enqueue(id: id, text: text, now: now))
        }
        var steps = 0
        while !sender.queuedIDs.isEmpty || !toReceiver.isEmpty || !toSender.isEmpty || pendingStore, steps < 100_000 {
            steps += 1
            if !toReceiver.isEmpty {
                handle(receiver.receive(toReceiver.removeFirst(), now: now))
            } else if pendingStore {
                if slowStore { now += .milliseconds(500) }
                pendingStore = false
                handle(receiver.messageStored(now: now))
            } else if !toSender.isEmpty {
                handle(sender.receive(toSender.removeFirst(), now: now))
            } else {
                let deadlines = [sender.deadline, receiver.deadline].compactMap { $0 }
                guard let next = deadlines.min() else { break }
                now = max(now, next)
                handle(sender.timeout(now: now))
                handle(receiver.timeout(now: now))
            }
        }
        return (stored, texts)
    }

    @Test(arguments: FramingMode.allCases)
    func fiftyMessagesArriveOnceInOrder(framing: FramingMode) {
        let result = run(framing: framing, count: 50, seed: 42)
        #expect(result.stored.count == 50)
        #expect(result.stored == result.texts)
        #expect(throws: Never.self) { try result.stored.map { try E1394Decoder.decode($0) } }
    }
}
