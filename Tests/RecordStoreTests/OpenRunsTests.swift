import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

/// What the daemon reads at start to rebuild every open run's watcher, device links, and runs it gave up on.
@Suite("Open runs, links and abandoned runs")
struct OpenRunsTests {
    @Test func openRunsTheirMessagesAndActiveAlarmsAreReadByRun() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        // Device A: RUN-0 complete (closed), then RUN-1 still running with an alarm raised and one cleared.
        for (i, m) in Fixture.wholeRun(first: 1, runID: "RUN-0").enumerated() { try await store.commit(m, at: 1000 + Int64(i)) }
        try await store.commit(Fixture.runStart(10, runID: "RUN-1"), at: 2000)
        try await store.commit(
            Fixture.telemetry(11, minutes: 5, runID: "RUN-1"), at: 2005,
            alarms: [
                AlarmChange(kind: .raised, code: "AC_HIGH", level: "warning"),
                AlarmChange(kind: .raised, code: "PRESSURE", level: "warning"),
            ])
        // Device B: RUN-1 (same run id, another device) running.
        try await store.commit(Fixture.runStart(1, runID: "RUN-1", device: Fixture.otherDevice), at: 2007)
        try await store.commit(
            Fixture.telemetry(12, minutes: 10, runID: "RUN-1"), at: 2010,
            alarms: [AlarmChange(kind: .cleared, code: "PRESSURE", level: "warning", reason: "back in range")])

        let open = try await store.openRuns()
        #expect(open.map(\.deviceSerial) == [Fixture.device.serialNumber, Fixture.otherDevice.serialNumber])
        #expect(open.allSatisfy { $0.runID == "RUN-1" && $0.state == .open })
        #expect(try await store.openRuns(deviceSerial: Fixture.otherDevice.serialNumber).map(\.id) == [open[1].id])
        #expect(try await store.openRuns(deviceSerial: "NOPE").isEmpty)

        let runA = open[0].id
        let messages = try await store.messages(runRef: runA)
        #expect(messages.map(\.sequence) == [10, 11, 12])
        #expect(messages.allSatisfy { $0.runRef == runA && $0.deviceSerial == Fixture.device.serialNumber })
        #expect(messages.map(\.raw) == [
            E1394Encoder.encode(Fixture.runStart(10, runID: "RUN-1")),
            E1394Encoder.encode(Fixture.telemetry(11, minutes: 5, runID: "RUN-1")),
            E1394Encoder.encode(Fixture.telemetry(12, minutes: 10, runID: "RUN-1")),
        ])
        #expect(try await store.messages(runRef: open[1].id).map(\.sequence) == [1])
        #expect(try await store.messages(runRef: 9999).isEmpty)

        let active = try await store.activeAlarms(runRef: runA)
        #expect(active.map(\.code) == ["AC_HIGH"])
        #expect(try await store.alarms(runRef: runA).count == 2)
        #expect(try await store.activeAlarms(runRef: open[1].id).isEmpty)

        #expect(try await store.lastMessageReceivedAt(runRef: runA) == 2010)
        #expect(try await store.lastMessageReceivedAt(runRef: open[1].id) == 2007)
        #expect(try await store.lastMessageReceivedAt(runRef: 9999) == nil)
    }

    @Test func messagesOfARunAreFoundThroughTheRunIndex() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let plan = try await store.queryPlanForTesting("SELECT * FROM messages WHERE run_ref = 1 ORDER BY id")
        #expect(plan.contains { $0.contains("USING INDEX messages_run") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(plan)")
        let last = try await store.queryPlanForTesting(
            "SELECT received_at_unix_ms FROM messages WHERE run_ref = 1 ORDER BY id DESC LIMIT 1")
        #expect(last.contains { $0.contains("USING INDEX messages_run") } && !last.contains { $0.contains("TEMP B-TREE") }, "\(last)")
        let alarms = try await store.queryPlanForTesting(
            "SELECT * FROM alarms WHERE run_ref = 1 AND state <> 'cleared' ORDER BY id")
        #expect(alarms.contains { $0.contains("USING INDEX alarms_run") }, "\(alarms)")
        try await store.close()
    }

    @Test func theLinkADeviceWasLastSeenOnIsKept() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let serial = Fixture.device.serialNumber
        // Unknown device: nothing is written, no row is made.
        #expect(try await store.recordDeviceLink(serial: serial, linkName: "bay-1") == false)
        #expect(try await store.devices().isEmpty)

        let start = Fixture.runStart(1)
        _ = try await store.commit(start, raw: E1394Encoder.encode(start), receivedAtUnixMilliseconds: 10, linkName: "bay-1")
        #expect(try await store.devices().first?.name == "bay-1")
        #expect(try await store.serials(linkName: "bay-1") == [serial])
        #expect(try await store.recordDeviceLink(serial: serial, linkName: "bay-1") == false)  // unchanged: no write

        // A commit without a link name leaves it; a duplicate writes nothing, not even the link.
        try await store.commit(Fixture.telemetry(2, minutes: 5))
        #expect(try await store.devices().first?.name == "bay-1")
        #expect(
            try await store.commit(start, raw: E1394Encoder.encode(start), receivedAtUnixMilliseconds: 11, linkName: "bay-9")
                == .duplicate)
        #expect(try await store.devices().first?.name == "bay-1")

        // The separator moved to another port.
        #expect(try await store.recordDeviceLink(serial: serial, linkName: "bay-2") == true)
        #expect(try await store.serials(linkName: "bay-1").isEmpty)
        #expect(try await store.serials(linkName: "bay-2") == [serial])

        // A replacement separator on the same link: both serials, the most recently seen first.
        let other = Fixture.runStart(1, runID: "RUN-9", device: Fixture.otherDevice)
        _ = try await store.commit(
            other, raw: E1394Encoder.encode(other), receivedAtUnixMilliseconds: Fixture.now + 60_000, linkName: "bay-2")
        #expect(try await store.serials(linkName: "bay-2") == [Fixture.otherDevice.serialNumber, serial])
        #expect(try await store.serials(linkName: "nowhere").isEmpty)
        try await store.close()
    }

    @Test func anAbandonedRunIsClosedWithItsAlarmsClearedInOneTransaction() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let ref = try #require(
            storedRef(
                try await store.commit(
                    Fixture.telemetry(2, minutes: 5), at: Fixture.now + 5000,
                    alarms: [
                        AlarmChange(kind: .raised, code: "STALE", level: "warning"),
                        AlarmChange(kind: .raised, code: "AC_HIGH", level: "alarm"),
                    ])))
        let runRef = try #require(ref.run)
        let clears = ["STALE", "AC_HIGH"].map { AlarmChange(kind: .cleared, code: $0, level: "warning", reason: "run abandoned") }

        // An inconsistent step rolls everything back: the run stays open, the alarms active, no event.
        let eventsBefore = try await store.events(runRef: runRef)
        await #expect(
            throws: RecordStoreError.noActiveAlarm(deviceSerial: Fixture.device.serialNumber, runID: "RUN-1", code: "NEVER", kind: .cleared)
        ) {
            try await store.closeRunAbandoned(
                runRef: runRef, reason: "x", alarms: clears + [AlarmChange(kind: .cleared, code: "NEVER", level: "warning")],
                atUnixMilliseconds: Fixture.now + 10_000)
        }
        #expect(try await store.run(id: runRef)?.state == .open)
        #expect(try await store.activeAlarms(runRef: runRef).count == 2)
        #expect(try await store.events(runRef: runRef) == eventsBefore)

        let at = Fixture.now + 1_800_000
        #expect(
            try await store.closeRunAbandoned(
                runRef: runRef, reason: "no message for 30 min; RUN_END never came", alarms: clears, atUnixMilliseconds: at))
        let run = try #require(try await store.run(id: runRef))
        #expect(run.state == .closed && run.closedAtUnixMilliseconds == at && run.endDeviceTimestamp == nil)
        #expect(try await store.activeAlarms(runRef: runRef).isEmpty)
        #expect(try await store.alarms(runRef: runRef).allSatisfy { $0.state == .cleared && $0.clearedAtUnixMilliseconds == at })
        let last = try #require(try await store.events(runRef: runRef).last)
        #expect(last.kind == "run_closed_timeout" && last.detail == "no message for 30 min; RUN_END never came")
        #expect(last.atUnixMilliseconds == at && last.deviceSerial == Fixture.device.serialNumber)
        #expect(try await store.openRuns().isEmpty)

        // Again: nothing changes, no second event.
        let eventCount = try await store.events().count
        #expect(try await store.closeRunAbandoned(runRef: runRef, reason: "again", alarms: [], atUnixMilliseconds: at + 1) == false)
        #expect(try await store.events().count == eventCount)
        #expect(try await store.run(id: runRef)?.closedAtUnixMilliseconds == at)
        await #expect(throws: RecordStoreError.runNotFound(runRef: 9999)) {
            try await store.closeRunAbandoned(runRef: 9999, reason: "x", alarms: [], atUnixMilliseconds: at)
        }

        // A message that comes later for that run is still stored under it; the run stays closed.
        let late = try #require(storedRef(try await store.commit(Fixture.telemetry(3, minutes: 40), at: at + 5000)))
        #expect(late.run == runRef)
        #expect(try await store.run(id: runRef)?.state == .closed)
        try await store.close()
    }

    @Test func daemonEventsResolveTheirRun() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let runRef = try #require(try await store.openRuns().first?.id)
        let serial = Fixture.device.serialNumber
        for kind in ["limit_not_judged", "limit_judged", "run_start_missing"] {
            try await store.recordEvent(kind: kind, deviceSerial: serial, runID: "RUN-1", detail: kind, atUnixMilliseconds: 5)
        }
        try await store.recordEvent(kind: "run_start_missing", deviceSerial: serial, runID: "RUN-UNKNOWN", atUnixMilliseconds: 6)
        try await store.recordEvent(kind: "store_failed", deviceSerial: nil, detail: "disk full", atUnixMilliseconds: 7, usingReserve: true)
        try await store.recordEvent(kind: "store_recovered", deviceSerial: nil, atUnixMilliseconds: 8, usingReserve: true)

        let ofRun = try await store.events(runRef: runRef)
        #expect(ofRun.map(\.kind) == ["run_start", "limit_not_judged", "limit_judged", "run_start_missing"])
        #expect(ofRun.dropFirst().allSatisfy { $0.runRef == runRef && $0.deviceSerial == serial })
        let all = try await store.events()
        #expect(all.suffix(3).map(\.kind) == ["run_start_missing", "store_failed", "store_recovered"])
        #expect(all.suffix(3).allSatisfy { $0.runRef == nil })
        try await store.close()
    }
}
