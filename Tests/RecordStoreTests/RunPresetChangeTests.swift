import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

/// Presets changed for one run (schema v3): kept with who and why, audited, append-only.
@Suite("Run preset changes")
struct RunPresetChangeTests {
    @Test func aChangeIsKeptAndAuditedOnlyWhileTheRunIsOpen() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        try await store.commit(Fixture.telemetry(2, minutes: 5))
        let run = try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "RUN-1"))

        let first = try await store.recordPresetChange(
            runRef: run.id, changes: ["collect_target_ml": 150], reason: "physician: smaller child", by: "op1",
            atUnixMilliseconds: Fixture.now)
        _ = try await store.recordPresetChange(
            runRef: run.id, changes: ["ratio_warn_deviation": 1.5, "collect_target_ml": 140], reason: "second look", by: "sup",
            atUnixMilliseconds: Fixture.now + 1000)
        let changes = try await store.presetChanges(runRef: run.id)
        #expect(changes.map(\.changes) == [["collect_target_ml": 150], ["ratio_warn_deviation": 1.5, "collect_target_ml": 140]])
        #expect(changes.map(\.changedBy) == ["op1", "sup"])
        #expect(changes.first == first)

        // The run's own facts entry ("run.open", AuditAnchorTests) comes first.
        let entries = try await store.auditEntries(entity: "run_preset_change")
        #expect(entries.map(\.action) == ["run.presets.change", "run.presets.change"])
        #expect(entries.first?.reason == "physician: smaller child" && entries.first?.actor == "op1")
        #expect(entries.first?.newValue?.contains(#"{\"collect_target_ml\":150}"#) == true, "\(entries.first?.newValue ?? "")")
        #expect(try await store.verifyAudit().isIntact)

        // Append-only, and a change behind the trail is caught.
        await #expect(throws: (any Error).self) { try await store.executeForTesting("DELETE FROM run_preset_changes") }
        await #expect(throws: (any Error).self) {
            try await store.executeForTesting("UPDATE run_preset_changes SET reason = 'x'")
        }

        // Closed: refused, nothing written.
        for m in Fixture.wholeRun(first: 3).dropFirst(2) { try await store.commit(m) }
        #expect(try await store.run(id: run.id)?.state == .closed)
        await #expect(throws: RunNotOpen.self) {
            _ = try await store.recordPresetChange(
                runRef: run.id, changes: ["collect_target_ml": 100], reason: "too late", by: "op1", atUnixMilliseconds: Fixture.now)
        }
        await #expect(throws: RunNotOpen.self) {
            _ = try await store.recordPresetChange(
                runRef: 999, changes: ["collect_target_ml": 100], reason: "no such run", by: "op1", atUnixMilliseconds: Fixture.now)
        }
        #expect(try await store.presetChanges(runRef: run.id).count == 2)
        #expect(try await store.auditEntries(entity: "run_preset_change").count == 2)
    }
}
