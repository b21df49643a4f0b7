import SeparatorProtocol
import Testing

/// Random and mutated input must only ever produce errors or events, never a trap.
@Suite struct FuzzTests {
    static let interesting: [UInt8] = [0x02, 0x03, 0x04, 0x05, 0x06, 0x0A, 0x0D, 0x15, 0x17, 0x10, 0x7C, 0x5E, 0x5C, 0x26, 0x48, 0x4C, 0x31, 0xFF, 0xC3]

    func randomBytes(_ rng: inout SplitMix64, count: Int) -> [UInt8] {
        (0..<count).map { _ in
            Bool.random(using: &rng) ? Self.interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
        }
    }

    func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) where !bytes.isEmpty {
            let index = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes[index] = Self.interesting.randomElement(using: &rng)!
            case 1: bytes.remove(at: index)
            default: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: index)
            }
        }
        return bytes
    }

    @Test func receiverSurvivesGarbage() {
        var rng = SplitMix64(seed: 1)
        let valid = ENQ + E1381Framer.frames(forMessage: tickText, mode: .recordPerFrame, firstFrameNumber: 1).flatMap { $0 } + EOT
        var receiver = E1381Receiver(configuration: .init(maxMessageBytes: 300))
        var now = Duration.zero
        for round in 0..<3000 {
            let input = round % 2 == 0 ? randomBytes(&rng, count: Int.random(in: 0...400, using: &rng)) : mutate(valid, &rng)
            var start = 0
            while start < input.count {
                let end = min(input.count, start + Int.random(in: 1...64, using: &rng))
                let actions = receiver.receive(input[start..<end], now: now)
                if !actions.messages.isEmpty || receiver.awaitingStore, Bool.random(using: &rng) {
                    _ = receiver.messageStored(now: now)
                }
                start = end
            }
            now += .seconds(Int64.random(in: 0...40, using: &rng))
            if let deadline = receiver.deadline, now >= deadline { _ = receiver.timeout(now: now) }
            if round == 1500 { receiver.stopAccepting() }
        }
    }

    @Test func senderSurvivesGarbage() {
        var rng = SplitMix64(seed: 2)
        var sender = E1381Sender()
        var now = Duration.zero
        for round in 0..<3000 {
            if round % 7 == 0 { _ = sender.enqueue(id: UInt64(round), text: tickText, now: now) }
            _ = sender.receive(randomBytes(&rng, count: Int.random(in: 0...3, using: &rng)), now: now)
            now += .seconds(Int64.random(in: 0...20, using: &rng))
            _ = sender.timeout(now: now)
            if round % 101 == 0 { _ = sender.linkDown(now: now) }
            if round % 101 == 3 { _ = sender.linkUp(now: now) }
        }
    }

    @Test func decoderOnlyThrows() {
        var rng = SplitMix64(seed: 3)
        let valid = [bytes(specTickText)] + sampleRun().map { E1394Encoder.encode($0) }
        var decoded = 0
        for round in 0..<4000 {
            let input = round % 2 == 0 ? randomBytes(&rng, count: Int.random(in: 0...300, using: &rng)) : mutate(valid.randomElement(using: &rng)!, &rng)
            if (try? E1394Decoder.decode(input)) != nil { decoded += 1 }
        }
        #expect(decoded < 4000)
    }

    @Test func csvDecoderOnlyThrows() {
        var rng = SplitMix64(seed: 4)
        let valid = bytes(ExportCSV.encode(try! ExportRun(messages: sampleRun())))
        for round in 0..<3000 {
            let input = round % 2 == 0 ? randomBytes(&rng, count: Int.random(in: 0...300, using: &rng)) : mutate(valid, &rng)
            _ = try? ExportCSV.decode(String(decoding: input, as: UTF8.self))
        }
    }
}
