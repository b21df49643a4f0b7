import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

@Suite("Committing live messages")
struct CommitTests {
    @Test func aWholeRunIsStoredAndClosed() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        var runRefs: Set<Int64?> = []
        for (i, m) in Fixture.wholeRun().enumerated() {
            let outcome = try await store.commit(m, at: Fixture.now + Int64(i) * 1000, quality: i == 3 ? ["ratio_mismatch", "late"] : [])
            let ref = try #require(storedRef(outcome))
            runRefs.insert(ref.run)
        }
        #expect(runRefs.count == 1)
        let runRef = try #require(runRefs.first ?? nil)

        let devices = try await store.devices()
        #expect(devices.map(\.serial) == [Fixture.device.serialNumber])
        #expect(devices.first?.firstSeenAtUnixMilliseconds == Fixture.now)
        #expect(devices.first?.lastSeenAtUnixMilliseconds == Fixture.now + 6000)

        let run = try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "RUN-1"))
        #expect(run.id == runRef)
        #expect(run.state == .closed)
        #expect(run.closedAtUnixMilliseconds == Fixture.now + 6000)
        #expect(run.procedure == "CMNC")
        #expect(run.patientID == "P-1" && run.patientFamilyName == "Doe" && run.patientGivenName == "Jane")
        #expect(run.birthDate == "19800229" && run.sex == "F" && run.heightCentimetres == 165 && run.weightKilograms == 60.5)
        #expect(run.startDeviceTimestamp == Fixture.start)
        #expect(run.endDeviceTimestamp == Fixture.start.adding(seconds: 1200))
        #expect(
            run.settings == [
                RunSetting(code: .totalBloodVolume, value: .number(4200), unit: "mL"),
                RunSetting(code: .acRatioSet, value: .number(12), unit: "{ratio}"),
                RunSetting(code: .acdaLot, value: .text("LOT-42"), unit: ""),
            ])

        let samples = try await store.samples(runRef: runRef)
        #expect(samples.map(\.runTimeMinutes) == [5, 10, 15, 20])
        #expect(samples[0].wholeBloodVolumeMillilitres == 300)
        #expect(samples[0].inletVolumeMillilitres == 325)
        #expect(samples[0].acInfusionRateMillilitresPerMinutePerLitre == 0.9)
        #expect(samples[0].accessPressureMillimetresOfMercury == -45.5)
        #expect(samples[0].value(.wholeBloodVolume) == 300)
        #expect(samples[0].centrifugeRPM == nil)
        #expect(samples[0].deviceTimestamp == Fixture.start.adding(seconds: 300))
        #expect(samples[0].extraJSON?.contains("\"HCT_LINE\"") == true && samples[0].extraJSON?.contains("31.5") == true)
        #expect(samples[1].qualityFlags == ["ratio_mismatch", "late"])
        #expect(samples[0].qualityFlags.isEmpty)

        let kinds = try await store.events(runRef: runRef).map(\.kind)
        #expect(kinds == ["run_start", "device_alarm", "device_event", "run_end"])
        let alarmEvent = try #require(try await store.events(runRef: runRef).first { $0.kind == "device_alarm" })
        #expect(alarmEvent.detail == "AIR_DETECTED^AIR_DETECTED text^ALARM")
        #expect(alarmEvent.deviceTimestamp == Fixture.start.adding(seconds: 420))

        let messages = try await store.messages(deviceSerial: Fixture.device.serialNumber)
        #expect(messages.map(\.sequence) == [1, 2, 3, 4, 5, 6, 7])
        #expect(messages.map(\.kind) == ["RUN_START", "TICK", "ALARM", "TICK", "EVENT", "TICK", "RUN_END"])
        #expect(messages.allSatisfy { $0.source == .live && $0.runRef == runRef && $0.exportFileRef == nil })
        #expect(try await store.counts() == StoreCounts(messages: 7, samples: 4, runs: 1, openRuns: 0, activeAlarms: 0, quarantined: 0))
        try await store.close()
    }

    @Test func aDuplicateWritesNothing() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        for m in Fixture.wholeRun().prefix(4) { try await store.commit(m) }
        let before = try await store.tableCounts()
        for m in Fixture.wholeRun().prefix(4) {
            #expect(try await store.commit(m, at: Fixture.now + 99_000) == .duplicate)
        }
        #expect(try await store.tableCounts() == before)
        #expect(try await store.devices().first?.lastSeenAtUnixMilliseconds == Fixture.now)
        try await store.close()
    }

    @Test func sameSequenceWithDifferentBytesIsQuarantinedNotStored() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let original = Fixture.telemetry(2, minutes: 5)
        try await store.commit(original)
        let impostor = Fixture.telemetry(2, minutes: 6)
        let raw = E1394Encoder.encode(impostor)
        let outcome = try await store.commit(impostor, raw: raw, receivedAtUnixMilliseconds: Fixture.now)
        guard case .conflict(let quarantineRef) = outcome else {
            Issue.record("expected conflict, got \(outcome)")
            return
        }
        let quarantined = try await store.quarantined()
        #expect(quarantined.map(\.id) == [quarantineRef])
        #expect(quarantined.first?.raw == raw)
        #expect(quarantined.first?.reason.contains("different content") == true)
        #expect(try await store.messages().map(\.raw) == [E1394Encoder.encode(original)])
        #expect(try await store.counts().samples == 1)
        try await store.close()
    }

    @Test func devicesWithTheSameSequenceNumbersAreIndependent() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        try await store.commit(Fixture.telemetry(2, minutes: 5))
        #expect(storedRef(try await store.commit(Fixture.runStart(1, device: Fixture.otherDevice))) != nil)
        #expect(storedRef(try await store.commit(Fixture.telemetry(2, minutes: 5, device: Fixture.otherDevice))) != nil)
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == 2)
        #expect(try await store.lastSequence(deviceSerial: Fixture.otherDevice.serialNumber) == 2)
        #expect(try await store.lastSequence(deviceSerial: "NOPE") == nil)
        // Same run id on two devices: two runs.
        #expect(try await store.runs().count == 2)
        #expect(try await store.counts().samples == 2)
        try await store.close()
    }

    @Test func aTickForAnUnknownRunCreatesTheRun() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let ref = try #require(storedRef(try await store.commit(Fixture.telemetry(40, minutes: 30, runID: "RUN-MID"))))
        let run = try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "RUN-MID"))
        #expect(run.id == ref.run)
        #expect(run.state == .open)
        #expect(run.settings == nil)
        #expect(run.patientID == nil)
        #expect(run.procedure == "CMNC")
        #expect(run.startDeviceTimestamp == Fixture.start)
        #expect(try await store.samples(runRef: run.id).map(\.runTimeMinutes) == [30])
        #expect(try await store.events(runRef: run.id).map(\.kind) == ["run_opened_mid_run"])

        try await store.commit(Fixture.telemetry(41, minutes: 35, kind: .runEnd, runID: "RUN-MID"))
        let closed = try #require(try await store.run(id: run.id))
        #expect(closed.state == .closed)
        #expect(closed.patientID == "P-1")  // filled from RUN_END's P record
        #expect(try await store.runs().count == 1)
        try await store.close()
    }

    @Test func rawBytesAreStoredByteForByte() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let m = Fixture.telemetry(5, minutes: 5)
        // The exact received text, including bytes a String round trip would alter.
        let raw = E1394Encoder.encode(m) + [0x00, 0xFF, 0xC3, 0x28, 0x0D, 0x0D, 0x0A, 0x80]
        _ = try await store.commit(m, raw: raw, receivedAtUnixMilliseconds: 42, monotonic: .nanoseconds(123_456_789_012))
        let stored = try #require(try await store.messages().first)
        #expect(stored.raw == raw)
        #expect(stored.receivedAtUnixMilliseconds == 42)
        #expect(stored.receivedMonotonicNanoseconds == 123_456_789_012)
        #expect(stored.deviceTimestamp == m.timestamp)
        // The same message with identical bytes is a duplicate; the comparison is on the exact bytes.
        #expect(try await store.commit(m, raw: raw, receivedAtUnixMilliseconds: 43) == .duplicate)
        try await store.close()
    }

    @Test func aFailingCommitLeavesNothingBehind() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.runStart(1))
        let before = try await store.tableCounts()
        let eventsBefore = try await store.events()

        // The message, its sample and the device update are written before the alarm step fails.
        let tick = Fixture.telemetry(2, minutes: 5)
        await #expect {
            try await store.commit(
                tick, at: Fixture.now + 5000,
                alarms: [
                    AlarmChange(kind: .raised, code: "AC_RATE_HIGH", level: "warning", value: 1.3, limit: 1.2),
                    AlarmChange(kind: .escalated, code: "NOT_RAISED", level: "alarm"),
                ])
        } throws: { error in
            if case RecordStoreError.noActiveAlarm(_, "RUN-1", "NOT_RAISED", .escalated) = error { true } else { false }
        }
        #expect(try await store.tableCounts() == before)
        #expect(try await store.events() == eventsBefore)
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == 1)
        #expect(try await store.devices().first?.lastSeenAtUnixMilliseconds == Fixture.now)

        // Not a duplicate afterwards: nothing of it was kept.
        #expect(storedRef(try await store.commit(tick)) != nil)
        #expect(try await store.counts().samples == 1)
        try await store.close()
    }

    @Test func aFailingCommitOfANewRunLeavesNoRun() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let raise = AlarmChange(kind: .raised, code: "X", level: "warning")
        await #expect(throws: RecordStoreError.alarmAlreadyActive(deviceSerial: Fixture.device.serialNumber, runID: "RUN-1", code: "X")) {
            try await store.commit(Fixture.runStart(1), alarms: [raise, raise])
        }
        #expect(try await store.runs().isEmpty)
        #expect(try await store.devices().isEmpty)
        #expect(try await store.events().isEmpty)
        #expect(try await store.messages().isEmpty)
        try await store.close()
    }
}
