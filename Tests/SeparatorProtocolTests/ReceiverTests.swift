import SeparatorProtocol
import Testing

/// A short but valid message text (H through L).
let tickText = E1394Encoder.encode(specTick())
/// A message text that fits in one frame.
let shortText = bytes("H|\\^&|1\rM|1|OSTI|TICK|1\rL|1|N\r")

@Suite struct ReceiverTests {
    /// A receiver with an open session (ENQ answered at t=0).
    func session(_ configuration: E1381Receiver.Configuration = .init()) -> E1381Receiver {
        var receiver = E1381Receiver(configuration: configuration)
        _ = receiver.receive(ENQ, now: .zero)
        return receiver
    }

    @Test func enquiryIsAcknowledged() {
        var receiver = E1381Receiver()
        let actions = receiver.receive(ENQ, now: .s(3))
        #expect(actions == [.send(ACK), .event(.sessionStarted)])
        #expect(receiver.deadline == .s(33))
    }

    @Test func enquiryRefusedWhenNotAccepting() {
        var receiver = E1381Receiver()
        receiver.stopAccepting()
        let actions = receiver.receive(ENQ, now: .zero)
        #expect(actions == [.send(NAK), .event(.establishmentRefused)])
        #expect(receiver.deadline == nil)
    }

    @Test func intermediateFrameIsAcknowledged() {
        var receiver = session()
        let actions = receiver.receive(frame(1, "H|\\^&|1\r", final: false), now: .s(1))
        #expect(actions == [.event(.frameAccepted(frameNumber: 1)), .send(ACK)])
        #expect(receiver.deadline == .s(31))
    }

    @Test func badChecksumIsNAKed() {
        var receiver = session()
        var bad = frame(1, "H|\\^&\r", final: false)
        let expected = E1381.hexValue(bad[bad.count - 4], bad[bad.count - 3])!
        bad[bad.count - 3] = bad[bad.count - 3] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        let received = E1381.hexValue(bad[bad.count - 4], bad[bad.count - 3])!
        let actions = receiver.receive(bad, now: .s(1))
        #expect(actions == [.send(NAK), .event(.frameRejected(.badChecksum(expected: expected, received: received)))])
    }

    @Test func wrongFrameNumberIsNAKedAndExpectationStays() {
        var receiver = session()
        let wrong = receiver.receive(frame(2, "H|\\^&\r", final: false), now: .s(1))
        #expect(wrong == [.send(NAK), .event(.frameRejected(.badFrameNumber(expected: 1, received: 2)))])
        let right = receiver.receive(frame(1, "H|\\^&\r", final: false), now: .s(2))
        #expect(right.sent == ACK)
    }

    @Test func tooLongFrameIsNAKedBeforeItsEnd() {
        var receiver = session()
        let long = frame(1, String(repeating: "x", count: 300), final: false)
        let early = receiver.receive(long[0..<260], now: .s(1))
        #expect(early == [.send(NAK), .event(.frameRejected(.textTooLong(length: 241)))])
        // The rest of the oversized frame is skipped, not answered again.
        #expect(receiver.receive(long[260...], now: .s(1)).isEmpty)
        #expect(receiver.receive(frame(1, "H|\\^&\r", final: false), now: .s(2)).sent == ACK)
    }

    @Test func textOf240IsAccepted() {
        var receiver = session()
        let actions = receiver.receive(frame(1, String(repeating: "x", count: 240), final: false), now: .s(1))
        #expect(actions.sent == ACK)
    }

    @Test func forbiddenCharacterIsNAKed() {
        var receiver = session()
        let actions = receiver.receive(frame(1, "H|\\\u{10}&\r", final: false), now: .s(1))
        #expect(actions == [.send(NAK), .event(.frameRejected(.forbiddenCharacter(byte: 0x10, offset: 3)))])
    }

    @Test func malformedFrameIsNAKed() {
        var receiver = session()
        let actions = receiver.receive([ASCIIControl.stx, UInt8(ascii: "1"), ASCIIControl.cr, ASCIIControl.lf], now: .s(1))
        #expect(actions == [.send(NAK), .event(.frameRejected(.malformedFrame(.tooShort(length: 2))))])
    }

    @Test func lowerCaseChecksumIsAccepted() {
        var receiver = session()
        var f = frame(1, "H|\\^&\r", final: false)
        for i in (f.count - 4)..<(f.count - 2) where f[i] >= UInt8(ascii: "A") { f[i] += 0x20 }
        #expect(receiver.receive(f, now: .s(1)).sent == ACK)
    }

    @Test func frameNumbersWrapPastSeven() {
        var receiver = session()
        let text = Array(shortText.dropLast(6)) + bytes(String(repeating: "R|1|^^^X|1|||||F\r", count: 150)) + Array(shortText.suffix(6))
        let frames = E1381Framer.frames(forMessage: text, mode: .wholeMessage, firstFrameNumber: 1)
        #expect(frames.count > 8)
        var accepted: [Int] = []
        var delivered: [[UInt8]] = []
        for f in frames {
            let actions = receiver.receive(f, now: .s(1))
            accepted += actions.events.compactMap { if case .frameAccepted(let n) = $0 { n } else { nil } }
            delivered += actions.messages
        }
        #expect(accepted == (1...frames.count).map { $0 % 8 })
        #expect(delivered == [text])
    }

    @Test func etbFramesAreJoined() {
        var receiver = session()
        let cut = 10
        var actions = receiver.receive(E1381.frame(number: 1, text: shortText[..<cut], isFinal: false), now: .s(1))
        #expect(actions.sent == ACK)
        actions = receiver.receive(E1381.frame(number: 2, text: shortText[cut...], isFinal: true), now: .s(2))
        #expect(actions.messages == [shortText])
    }

    @Test func recordPerFrameWaitsForTheLRecord() {
        var receiver = session()
        let frames = E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 1)
        #expect(frames.count == 7)
        for f in frames.dropLast() {
            let actions = receiver.receive(f, now: .s(1))
            #expect(actions.sent == ACK)
            #expect(actions.messages.isEmpty)
        }
        #expect(receiver.receive(frames.last!, now: .s(2)).messages == [tickText])
    }

    @Test func lastFrameIsAnsweredOnlyWhenStored() {
        var receiver = session()
        let actions = receiver.receive(E1381.frame(number: 1, text: shortText, isFinal: true), now: .s(1))
        #expect(actions.messages == [shortText])
        #expect(actions.sent.isEmpty)
        #expect(receiver.awaitingStore)
        #expect(receiver.deadline == nil)
        #expect(receiver.messageStored(now: .s(4)) == [.send(ACK)])
        #expect(!receiver.awaitingStore)
        #expect(receiver.deadline == .s(34))
        #expect(receiver.messageStored(now: .s(5)).isEmpty)
    }

    @Test func endOfTransmissionMidMessageDiscards() {
        var receiver = session()
        _ = receiver.receive(E1381.frame(number: 1, text: shortText[..<20], isFinal: false), now: .s(1))
        let actions = receiver.receive(EOT, now: .s(2))
        #expect(actions == [.event(.partialMessageDiscarded(.endOfTransmission)), .event(.sessionEnded)])
        #expect(receiver.deadline == nil)
        // The rest of the old message in a new session is not glued to the discarded part.
        _ = receiver.receive(ENQ, now: .s(3))
        let next = receiver.receive(E1381.frame(number: 1, text: shortText, isFinal: true), now: .s(4))
        #expect(next.messages == [shortText])
    }

    @Test func frameTimeoutDiscardsAndReturnsToIdle() {
        var receiver = session()
        _ = receiver.receive(E1381.frame(number: 1, text: tickText[..<40], isFinal: false), now: .s(5))
        #expect(receiver.deadline == .s(35))
        #expect(receiver.timeout(now: .s(34)).isEmpty)
        let actions = receiver.timeout(now: .s(35))
        #expect(actions == [.event(.partialMessageDiscarded(.timeout)), .event(.timedOut), .event(.sessionEnded)])
        #expect(receiver.deadline == nil)
        // Idle: a frame is stray bytes, ENQ opens a new session.
        #expect(receiver.receive(frame(2, "x"), now: .s(36)).sent.isEmpty)
        #expect(receiver.receive(ENQ, now: .s(37)).sent == ACK)
    }

    @Test func enquiryMidSessionRestarts() {
        var receiver = session()
        _ = receiver.receive(frame(1, "H|\\^&\r", final: false), now: .s(1))
        _ = receiver.receive(frame(2, "M|1|", final: false), now: .s(1))
        let actions = receiver.receive(ENQ, now: .s(2))
        #expect(
            actions == [
                .event(.partialMessageDiscarded(.enquiryMidSession)), .event(.sessionEnded), .send(ACK), .event(.sessionStarted),
            ])
        #expect(receiver.receive(E1381.frame(number: 1, text: shortText, isFinal: true), now: .s(3)).messages == [shortText])
    }

    @Test func newHeaderDiscardsUnfinishedMessage() {
        var receiver = session()
        let frames = E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 1)
        _ = receiver.receive(frames[0], now: .s(1))
        _ = receiver.receive(frames[1], now: .s(1))
        let again = E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 3)
        var actions = receiver.receive(again[0], now: .s(2))
        #expect(actions.events.contains(.partialMessageDiscarded(.newHeader)))
        #expect(actions.sent == ACK)
        for f in again.dropFirst() { actions = receiver.receive(f, now: .s(3)) }
        #expect(actions.messages == [tickText])
    }

    @Test func stopAcceptingAnswersEOT() {
        var receiver = session()
        receiver.stopAccepting()
        #expect(!receiver.isAccepting)
        let frames = E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 1)
        #expect(receiver.receive(frames[0], now: .s(1)).sent == EOT)
        for f in frames.dropFirst().dropLast() { _ = receiver.receive(f, now: .s(1)) }
        #expect(receiver.receive(frames.last!, now: .s(1)).messages == [tickText])
        #expect(receiver.messageStored(now: .s(2)) == [.send(EOT)])
        _ = receiver.receive(EOT, now: .s(3))
        #expect(receiver.receive(ENQ, now: .s(4)).sent == NAK)
    }

    @Test func endOfTransmissionWhileStoringSuppressesTheAnswer() {
        var receiver = session()
        _ = receiver.receive(E1381.frame(number: 1, text: shortText, isFinal: true), now: .s(1))
        #expect(receiver.receive(EOT, now: .s(16)) == [.event(.sessionEnded)])
        #expect(receiver.awaitingStore)
        // A new session cannot start until the pending message is stored.
        #expect(receiver.receive(ENQ, now: .s(17)).sent == NAK)
        #expect(receiver.messageStored(now: .s(18)).isEmpty)
        #expect(receiver.receive(ENQ, now: .s(19)).sent == ACK)
    }

    @Test func messageNotStoredLeavesTheLastFrameUnanswered() {
        var receiver = session()
        let actions = receiver.receive(E1381.frame(number: 1, text: shortText, isFinal: true), now: .s(1))
        #expect(actions.messages == [shortText])
        #expect(actions.sent.isEmpty)
        #expect(receiver.messageNotStored(now: .s(2)).filter { if case .send = $0 { true } else { false } }.isEmpty)
        #expect(!receiver.awaitingStore)
        // The device times out and ends the session; a new session is accepted.
        _ = receiver.receive(EOT, now: .s(16))
        #expect(receiver.receive(ENQ, now: .s(17)).sent == ACK)
        // A later messageStored for the abandoned message answers nothing.
        #expect(receiver.messageStored(now: .s(18)).isEmpty)
    }

    @Test func oversizedMessageIsDiscarded() {
        var receiver = session(.init(maxMessageBytes: 100))
        let text = bytes("H|\\^&|9\r" + String(repeating: "R|1|^^^X|1|||||F\r", count: 20)) + shortText
        var events: [ReceiverEvent] = []
        var delivered: [[UInt8]] = []
        for f in E1381Framer.frames(forMessage: text, mode: .wholeMessage, firstFrameNumber: 1) {
            let actions = receiver.receive(f, now: .s(1))
            events += actions.events
            delivered += actions.messages
        }
        #expect(events.contains(.partialMessageDiscarded(.messageTooLarge)))
        // The next H starts a message that fits, which is delivered.
        #expect(delivered == [shortText])
    }

    @Test func garbageBeforeEnquiryIsIgnored() {
        var receiver = E1381Receiver()
        let garbage: [UInt8] = [0x41, 0x06, 0x15, 0x02, 0x31, 0x0D, 0x0A, 0x04, 0xFF]
        let actions = receiver.receive(garbage + ENQ, now: .zero)
        #expect(actions == [.event(.strayBytesIgnored(count: garbage.count)), .send(ACK), .event(.sessionStarted)])
    }

    /// Feeds a whole session (ENQ then three messages) in the chunks `split` chooses, answering
    /// every delivered message at once; returns everything observable.
    func drive(_ split: (inout [UInt8]) -> [[UInt8]]) -> (sent: [UInt8], messages: [[UInt8]], events: [ReceiverEvent]) {
        var receiver = E1381Receiver()
        var segments: [[UInt8]] = [ENQ]
        var number = 1
        for (index, text) in [tickText, E1394Encoder.encode(sampleRun()[0]), tickText].enumerated() {
            let frames = E1381Framer.frames(
                forMessage: text, mode: index == 1 ? .recordPerFrame : .wholeMessage, firstFrameNumber: number, maxTextLength: 240)
            number += frames.count
            segments.append(frames.flatMap { $0 })
        }
        segments.append(EOT)
        var all: [E1381Receiver.Action] = []
        for var segment in segments {
            for chunk in split(&segment) {
                let actions = receiver.receive(chunk, now: .s(1))
                all += actions
                if !actions.messages.isEmpty { all += receiver.messageStored(now: .s(1)) }
            }
        }
        return (all.sent, all.messages, all.events)
    }

    @Test func splittingAnywhereGivesTheSameResult() {
        let whole = drive { [$0] }
        #expect(whole.messages.count == 3)
        let oneByOne = drive { segment in segment.map { [$0] } }
        #expect(oneByOne.sent == whole.sent && oneByOne.messages == whole.messages && oneByOne.events == whole.events)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<50 {
            let random = drive { segment in
                var chunks: [[UInt8]] = []
                var start = 0
                while start < segment.count {
                    let end = min(segment.count, start + Int.random(in: 1...40, using: &rng))
                    chunks.append(Array(segment[start..<end]))
                    start = end
                }
                return chunks
            }
            #expect(random.sent == whole.sent && random.messages == whole.messages && random.events == whole.events)
        }
    }

    @Test func everySplitPositionOfOneMessage() {
        let stream = ENQ + E1381Framer.frames(forMessage: tickText, mode: .wholeMessage, firstFrameNumber: 1, maxTextLength: 60).flatMap { $0 }
        var reference = E1381Receiver()
        let expected = reference.receive(stream, now: .zero)
        for position in 0...stream.count {
            var receiver = E1381Receiver()
            let actions = receiver.receive(stream[..<position], now: .zero) + receiver.receive(stream[position...], now: .zero)
            #expect(actions == expected, "split at \(position)")
        }
    }
}
