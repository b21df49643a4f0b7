import Foundation
import SeparatorProtocol
import Testing

/// The decoder was rewritten for speed (issue 12, docs/performance.md) without changing what it
/// decodes: these tests hold it to the shipped captures' known decodes and, value for value and
/// error for error, to the decoder as it was before (ReferenceDecoder.swift).
@Suite struct DecodeEquivalenceTests {
    static let capturesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("simulator/captures")
    static let captureNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: capturesDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".capture") }.map { String($0.dropLast(".capture".count)) }.sorted()
    }()

    typealias Outcome = Result<SeparatorMessage, MessageDecodingError>

    static func decoded(_ text: [UInt8]) -> Outcome { Result { () throws(MessageDecodingError) in try E1394Decoder.decode(text) } }
    static func reference(_ text: [UInt8]) -> Outcome { Result { () throws(MessageDecodingError) in try ReferenceDecoder.decode(text) } }

    /// Equal, and equal in print too: `==` alone would take -0.0 for 0.0.
    static func expectSame(_ text: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let new = decoded(text)
        let old = reference(text)
        #expect(new == old, "\(String(decoding: text, as: UTF8.self).debugDescription)", sourceLocation: sourceLocation)
        #expect(String(reflecting: new) == String(reflecting: old), sourceLocation: sourceLocation)
    }

    @Test func capturesAreShipped() {
        #expect(Self.captureNames.count >= 2)
    }

    /// Feeds the capture's device bytes as SimulatorKit's CaptureDecoder does and renders each
    /// message as its `.expected` lines do: the decode recorded when the capture was made.
    @Test("a capture decodes to its expected lines, and as the reference decoder does", arguments: captureNames)
    func captureDecodesAsExpected(name: String) throws {
        let base = Self.capturesDirectory.appendingPathComponent(name)
        let capture = try String(contentsOf: base.appendingPathExtension("capture"), encoding: .utf8)
        let expected = try String(contentsOf: base.appendingPathExtension("expected"), encoding: .utf8)
            .split(separator: "\n").map(String.init)

        var receiver = E1381Receiver()
        var seen: Set<String> = []
        var lines: [String] = []
        func handle(_ actions: [E1381Receiver.Action], now: Duration) {
            var queue = actions[...]
            while let action = queue.popFirst() {
                guard case .messageReceived(let text) = action else { continue }
                Self.expectSame(text)
                switch Self.decoded(text) {
                case .success(let message):
                    let key = "\(message.device.serialNumber) #\(message.sequenceNumber)"
                    lines.append(seen.insert(key).inserted ? Self.line(message) : "\(key) duplicate")
                case .failure(let error):
                    lines.append("quarantined: \(error)")
                }
                queue += receiver.messageStored(now: now)
            }
        }
        for line in capture.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[1] == ">", let seconds = Double(parts[0]) else { continue }
            let now = Duration.nanoseconds(Int64(seconds * 1e9))
            if let deadline = receiver.deadline, now >= deadline { handle(receiver.timeout(now: now), now: now) }
            handle(receiver.receive(Self.unhex(parts[2]), now: now), now: now)
        }
        #expect(lines == expected)
    }

    @Test func randomMessagesDecodeAsBefore() {
        var rng = SplitMix64(seed: 12)
        for _ in 0..<400 {
            Self.expectSame(E1394Encoder.encode(randomMessage(&rng, maxRecords: 20)))
        }
    }

    /// Damaged messages must fail with the same reason at the same place.
    @Test func damagedMessagesFailAsBefore() {
        var rng = SplitMix64(seed: 1212)
        let interesting = Array("|^\\&\r0123456789.-+eE HMPORCLXF".utf8) + [0x80, 0xC3, 0xA9, 0xFF, 0x00]
        var samples = sampleRun(ticks: 2).map { E1394Encoder.encode($0) } + [Array(specTickText.utf8)]
        for _ in 0..<20 { samples.append(E1394Encoder.encode(randomMessage(&rng))) }
        for round in 0..<4000 {
            var text = samples[round % samples.count]
            for _ in 0..<Int.random(in: 1...3, using: &rng) where !text.isEmpty {
                let index = Int.random(in: 0..<text.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: text[index] = interesting.randomElement(using: &rng)!
                case 1: text.remove(at: index)
                default: text.insert(interesting.randomElement(using: &rng)!, at: index)
                }
            }
            Self.expectSame(text)
        }
    }

    @Test func numbersParseAsBefore() {
        let values = [
            "0", "-0", "-0.0", "+0.0", "0.1", "0.2", "0.3", "2700.0", "12.83", "-55.0", "0.005", "1e3", "1.5E-2", ".5", "5.",
            "+7", "9007199254740993", "9007199254740992.5", "123456789012345678901234567890", "0.000000000000000000001",
            "1.7976931348623157e308", "4.9e-324", "2.2250738585072014e-308", "0.30000000000000004", "00012.500",
            "99999999999999999999.99", "1e22", "1e23", "3.14159265358979323846264338327950288",
        ]
        for value in values {
            let text = specTickText.replacingFirst("|60.0|", with: "|\(value)|")
            Self.expectSame(Array(text.utf8))
        }
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let value = randomNumber(&rng)
            let text = specTickText.replacingFirst("|60.0|", with: "|\(value)|")
            Self.expectSame(Array(text.utf8))
            let digits = String(UInt64.random(in: 0...UInt64.max, using: &rng)).prefix(Int.random(in: 1...20, using: &rng))
            let point = Int.random(in: 0...digits.count, using: &rng)
            let decimal = digits.prefix(point) + "." + digits.dropFirst(point)
            Self.expectSame(Array(specTickText.replacingFirst("|60.0|", with: "|\(decimal)|").utf8))
        }
    }

    // As SimulatorKit's CaptureDecoder.describe renders a stored message.
    static func line(_ m: SeparatorMessage) -> String {
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
    }

    static func unhex(_ hex: Substring) -> [UInt8] {
        let digits = Array(hex.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).compactMap { E1381.hexValue(digits[$0], digits[$0 + 1]) }
    }
}
