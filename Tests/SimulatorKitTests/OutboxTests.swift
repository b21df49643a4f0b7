import Foundation
import Quantities
import SeparatorProtocol
import SimulatorKit
import Testing

/// The simulated device's durable memory: sequence numbers never repeat and
/// unacknowledged messages survive a restart, even one in the middle of a write.
@Suite("Outbox")
struct OutboxTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString).state").path
    }

    func message() -> SeparatorMessage {
        SeparatorMessage(
            sequenceNumber: 0, device: DeviceIdentity(model: "M", softwareVersion: "1", serialNumber: "SN1"),
            timestamp: DeviceTimestamp(wire: "20261124101500")!, kind: .tick,
            order: Order(runID: "RUN-1", procedure: .cmnc, runStart: nil),
            results: [ResultRecord(sequence: 1, code: .runTime, value: .number(1.5), unit: "min", timestamp: nil)])
    }

    @Test("sequence numbers start at 1, run on, and survive a restart")
    func sequencesSurviveRestart() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let outbox = try Outbox(path: path)
            try outbox.beginRun(runID: "RUN-1", seed: 1, scenarioName: "s")
            let entries = try outbox.enqueue([message(), message()], at: Seconds(5)) { E1394Encoder.encode($0) }
            #expect(entries.map(\.sequence) == [1, 2])
            try outbox.acknowledge(1)
        }
        let reopened = try Outbox(path: path)
        #expect(reopened.lastSequence == 2)
        #expect(reopened.pending.map(\.sequence) == [2])
        #expect(reopened.activeRun?.runID == "RUN-1")
        #expect(reopened.activeRun?.lastTime == Seconds(5))
        let next = try reopened.enqueue([message()], at: Seconds(10)) { E1394Encoder.encode($0) }
        #expect(next.map(\.sequence) == [3])
        // The stored text carries its sequence number in the H record.
        #expect(try E1394Decoder.decode(next[0].text).sequenceNumber == 3)
    }

    @Test("a partial last line, as a kill mid-write leaves, is ignored")
    func tornWriteIgnored() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let outbox = try Outbox(path: path)
            try outbox.beginRun(runID: "RUN-1", seed: 1, scenarioName: "s")
            _ = try outbox.enqueue([message()], at: Seconds(0)) { E1394Encoder.encode($0) }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("m 2 5.0 4831".utf8))  // no newline: torn
        try handle.close()
        let reopened = try Outbox(path: path)
        #expect(reopened.pending.map(\.sequence) == [1])
        #expect(reopened.lastSequence == 1)
    }

    @Test("compaction keeps the counter, the run and the queue")
    func compaction() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let outbox = try Outbox(path: path)
        outbox.compactionThreshold = 2_000
        try outbox.beginRun(runID: "RUN-9", seed: 3, scenarioName: "s")
        for i in 0..<40 {
            let entries = try outbox.enqueue([message()], at: Seconds(Double(i))) { E1394Encoder.encode($0) }
            if i % 3 != 0 { try outbox.acknowledge(entries[0].sequence) }
        }
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        #expect(size < 40 * 300, "the log was not compacted: \(size) bytes")
        let reopened = try Outbox(path: path)
        #expect(reopened.lastSequence == 40)
        #expect(reopened.pending.map(\.sequence) == outbox.pending.map(\.sequence))
        #expect(reopened.activeRun?.runID == "RUN-9")
    }

    @Test("a file that is not a state file is refused, naming its line")
    func foreignFileRefused() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "hello\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: OutboxError.self) { try Outbox(path: path) }
        try "optia-sim-state 1\nzz 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try Outbox(path: path)
            Issue.record("accepted an unknown line")
        } catch {
            #expect(error.line == 2)
        }
    }
}
