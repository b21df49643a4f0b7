import ApheresisCore
import Foundation
import GRDB
import Quantities
import SeparatorProtocol
import Testing

@testable import RecordStore

/// Gaps are stored with their run, append-only, and the run's completeness is counted from what the
/// record holds: the same count for the live watch, the run and its product.
@Suite("Telemetry gaps and completeness in the store")
struct RunGapTests {
    @Test func gapsAreStoredWithTheMessageThatRevealedThemAndCannotBeEdited() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let gap = TelemetryGap(kind: .sequence, missingCount: 3, firstMissingSequence: 3, lastMissingSequence: 5)
        let outcome = try await store.commit(
            Fixture.telemetry(6, minutes: 1), raw: E1394Encoder.encode(Fixture.telemetry(6, minutes: 1)),
            receivedAtUnixMilliseconds: Fixture.now, gaps: [gap])
        guard case .stored(let messageRef, let runRef?, _) = outcome else {
            Issue.record("not stored: \(outcome)")
            return
        }
        let rows = try await store.gaps(runRef: runRef)
        #expect(rows.count == 1)
        #expect(rows.first?.gap == gap && rows.first?.messageRef == messageRef)
        #expect(rows.first?.description.contains("Messages #3 to #5") == true)
        // Evidence: neither changed nor removed.
        await #expect(throws: (any Error).self) { try await store.executeForTesting("UPDATE run_gaps SET missing_count = 1") }
        await #expect(throws: (any Error).self) { try await store.executeForTesting("DELETE FROM run_gaps") }
        #expect(try await store.gaps(runRef: runRef).count == 1)
    }

    @Test func completenessIsCountedFromTheStoredMessages() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        // TICKs every 5 s of run time from 5 s to 3 min; those from 1:05 to 1:30 never arrived
        // (sequence numbers used), so 6 TICKs and 6 messages are missing.
        var sequence: UInt64 = 1
        for step in 1...36 {
            sequence += 1
            if (13...18).contains(step) { continue }
            try await store.commit(Fixture.telemetry(sequence, minutes: Double(step) * 5 / 60))
        }
        let run = try #require(try await store.runs().first)
        let c = try #require(try await store.telemetryCompleteness(runRef: run.id))
        #expect(c.messagesMissing == 6)
        #expect(c.ticksMissing == 6 && c.ticksReceived == 30 && c.ticksExpected == 36)
        #expect(c.tickInterval == Seconds(5))
        #expect(!c.isComplete)
    }

    @Test func aCompleteRunIsComplete() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        for m in Fixture.wholeRun(first: 1) { try await store.commit(m) }
        let run = try #require(try await store.runs().first)
        let c = try #require(try await store.telemetryCompleteness(runRef: run.id))
        #expect(c.isComplete, "\(c)")
    }
}
