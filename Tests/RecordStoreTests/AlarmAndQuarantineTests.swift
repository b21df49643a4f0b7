import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

@Suite("Alarms, events and quarantine")
struct AlarmAndQuarantineTests {
    @Test func alarmLifecycleKeepsEveryStep() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let raised = try #require(
            storedRef(
                try await store.commit(
                    Fixture.telemetry(2, minutes: 5), at: 1000,
                    alarms: [
                        AlarmChange(
                            kind: .raised, code: "AC_INF_RATE_HIGH", level: "warning", value: 1.25, limit: 1.2,
                            unit: "mL/min/L", message: "AC infusion rate high", runTimeMinutes: 5)
                    ])))
        let runRef = try #require(raised.run)
        let alarm = try #require(try await store.activeAlarms().first)
        #expect(alarm.state == .raised && alarm.level == "warning" && alarm.runRef == runRef)
        #expect(alarm.value == 1.25 && alarm.limit == 1.2 && alarm.unit == "mL/min/L" && alarm.raisedRunTimeMinutes == 5)

        try await store.commit(
            Fixture.telemetry(3, minutes: 10), at: 2000,
            alarms: [AlarmChange(kind: .escalated, code: "AC_INF_RATE_HIGH", level: "alarm", value: 1.5, limit: 1.4)])
        let acked = try #require(try await store.acknowledgeAlarm(id: alarm.id, by: "nurse-7", atUnixMilliseconds: 3000))
        #expect(acked.state == .acknowledged && acked.acknowledgedBy == "nurse-7" && acked.acknowledgedAtUnixMilliseconds == 3000)
        #expect(acked.level == "alarm" && acked.value == 1.5 && acked.limit == 1.4)
        // Acknowledging twice changes nothing and adds no history.
        #expect(try await store.acknowledgeAlarm(id: alarm.id, by: "someone-else", atUnixMilliseconds: 3500)?.acknowledgedBy == "nurse-7")

        try await store.commit(
            Fixture.telemetry(4, minutes: 15), at: 4000,
            alarms: [AlarmChange(kind: .cleared, code: "AC_INF_RATE_HIGH", level: "alarm", value: 1.0, reason: "back in range")])
        let cleared = try #require(try await store.alarm(id: alarm.id))
        #expect(cleared.state == .cleared && cleared.clearedAtUnixMilliseconds == 4000 && cleared.clearReason == "back in range")
        #expect(try await store.activeAlarms().isEmpty)
        #expect(try await store.alarms(runRef: runRef).count == 1)
        #expect(try await store.acknowledgeAlarm(id: alarm.id, by: "x", atUnixMilliseconds: 5000) == nil)

        let history = try await store.alarmEvents(alarmRef: alarm.id)
        #expect(history.map(\.kind) == [.raised, .escalated, .acknowledged, .cleared])
        #expect(history.map(\.level) == ["warning", "alarm", "alarm", "alarm"])
        #expect(history.map(\.atUnixMilliseconds) == [1000, 2000, 3000, 4000])
        #expect(history[2].actor == "nurse-7" && history[2].messageRef == nil)
        #expect(history[0].messageRef == raised.message)
        #expect(history[3].detail == "back in range")

        // After clearing, the same code may be raised again: a new alarm.
        try await store.commit(
            Fixture.telemetry(5, minutes: 20), alarms: [AlarmChange(kind: .raised, code: "AC_INF_RATE_HIGH", level: "warning")])
        #expect(try await store.alarms(runRef: runRef).map(\.state) == [.cleared, .raised])
        try await store.close()
    }

    @Test func escalationOfAnAcknowledgedAlarmNeedsNewAcknowledgement() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.recordAlarmChanges(
            deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .raised, code: "STALE", level: "warning")],
            atUnixMilliseconds: 1)
        try await store.recordAlarmChanges(
            deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .acknowledged, code: "STALE", level: "warning", by: "op")],
            atUnixMilliseconds: 2)
        try await store.recordAlarmChanges(
            deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .escalated, code: "STALE", level: "alarm")],
            atUnixMilliseconds: 3)
        let alarm = try #require(try await store.activeAlarms().first)
        #expect(alarm.state == .raised && alarm.level == "alarm" && alarm.runRef == nil && alarm.deviceSerial == "S1")
        try await store.recordAlarmChanges(
            deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .deescalated, code: "STALE", level: "warning")],
            atUnixMilliseconds: 4)
        #expect(try await store.alarmEvents(alarmRef: alarm.id).map(\.kind) == [.raised, .acknowledged, .escalated, .deescalated])
        #expect(try await store.alarm(id: alarm.id)?.level == "warning")
        try await store.close()
    }

    @Test func inconsistentAlarmStepsAreRefused() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        await #expect(throws: RecordStoreError.noActiveAlarm(deviceSerial: "S1", runID: nil, code: "LINK", kind: .cleared)) {
            try await store.recordAlarmChanges(
                deviceSerial: "S1", runID: nil, changes: [AlarmChange(kind: .cleared, code: "LINK", level: "warning")],
                atUnixMilliseconds: 1)
        }
        let raise = AlarmChange(kind: .raised, code: "LINK", level: "warning")
        try await store.recordAlarmChanges(deviceSerial: "S1", runID: nil, changes: [raise], atUnixMilliseconds: 1)
        await #expect(throws: RecordStoreError.alarmAlreadyActive(deviceSerial: "S1", runID: nil, code: "LINK")) {
            try await store.recordAlarmChanges(deviceSerial: "S1", runID: nil, changes: [raise], atUnixMilliseconds: 2)
        }
        #expect(try await store.activeAlarms().count == 1)
        try await store.close()
    }

    @Test func quarantineKeepsEveryByteAndTheReason() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let raw = (0...255).map { UInt8($0) } + Array("H|\\^&|not-a-number|\r".utf8)
        let id = try await store.quarantine(
            raw: raw, reason: "H field 3: sequence number is not a number", deviceSerial: "1OPT00417", source: .live,
            atUnixMilliseconds: 77)
        try await store.quarantine(raw: [0x42], reason: "second", deviceSerial: nil, atUnixMilliseconds: 78)
        let rows = try await store.quarantined()
        #expect(rows.count == 2)
        #expect(rows[0].id == id && rows[0].raw == raw && rows[0].reason == "H field 3: sequence number is not a number")
        #expect(rows[0].deviceSerial == "1OPT00417" && rows[0].receivedAtUnixMilliseconds == 77 && rows[0].source == .live)
        #expect(rows[1].raw == [0x42] && rows[1].deviceSerial == nil)
        #expect(try await store.counts().quarantined == 2)
        try await store.close()
    }

    @Test func eventsAreRecordedAndFiltered() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.recordEvent(kind: "daemon_start", deviceSerial: nil, atUnixMilliseconds: 1)
        try await store.commit(Fixture.runStart(1))
        try await store.recordEvent(kind: "link_down", deviceSerial: Fixture.device.serialNumber, runID: "RUN-1", detail: "EOF", atUnixMilliseconds: 2)
        try await store.recordEvent(kind: "link_up", deviceSerial: Fixture.device.serialNumber, atUnixMilliseconds: 3)
        let all = try await store.events()
        #expect(all.map(\.kind) == ["daemon_start", "run_start", "link_down", "link_up"])
        let runRef = try #require(try await store.runs().first?.id)
        #expect(try await store.events(runRef: runRef).map(\.kind) == ["run_start", "link_down"])
        #expect(try await store.events(deviceSerial: Fixture.device.serialNumber, limit: 2).map(\.kind) == ["link_down", "link_up"])
        #expect(all[2].detail == "EOF")
        try await store.close()
    }
}
