import Foundation
import SeparatorProtocol
import Testing

@testable import RecordStore

@Suite("Export files")
struct ExportTests {
    /// The run as the device would write it to a file, decoded back the way the daemon reads files.
    static func exportFile(_ messages: [SeparatorMessage]) throws -> ExportRun {
        let run = try ExportRun(messages: messages)
        return try ExportCSV.decode(ExportCSV.encode(run))
    }

    @Test func aRunSeenLiveThenAsAFileIsOneRun() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let messages = Fixture.wholeRun()
        for m in messages { try await store.commit(m) }
        let liveRun = try #require(try await store.runs().first)
        let liveSamples = try await store.samples(runRef: liveRun.id)
        let liveEvents = try await store.events(runRef: liveRun.id)

        let outcome = try await store.ingestExport(
            try Self.exportFile(messages), path: "/media/usb/RUN-1.csv", contentSHA256: "aa11", atUnixMilliseconds: Fixture.now + 60_000)
        #expect(outcome == .ingested(runRef: liveRun.id, newSamples: 0))
        #expect(try await store.runs() == [liveRun])  // same row, nothing overwritten, closing time kept
        #expect(try await store.samples(runRef: liveRun.id) == liveSamples)
        #expect(try await store.events(runRef: liveRun.id) == liveEvents)  // device notes not repeated

        let fileMessages = try await store.messages().filter { $0.source == .export }
        #expect(fileMessages.count == messages.count)
        #expect(fileMessages.allSatisfy { $0.sequence == nil && $0.runRef == liveRun.id && $0.exportFileRef != nil })
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == 7)

        // The same content again: logged as a duplicate sighting, nothing else written.
        let before = try await store.tableCounts()
        #expect(
            try await store.ingestExport(
                try Self.exportFile(messages), path: "/media/usb/copy.csv", contentSHA256: "aa11", atUnixMilliseconds: 1)
                == .duplicateFile)
        var after = try await store.tableCounts()
        #expect(after["exportFiles"] == 2)
        after["exportFiles"] = before["exportFiles"]
        #expect(after == before)
        #expect(try await store.exportFiles().map(\.outcome) == [.ingested, .duplicate])
        #expect(try await store.exportFiles().first?.runID == "RUN-1")
        try await store.close()
    }

    @Test func aFileCompletesARunWhoseEndWasMissedLive() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let messages = Fixture.wholeRun()
        // The daemon saw RUN_START and the first TICK, then the link died for good.
        for m in messages.prefix(2) { try await store.commit(m) }
        let outcome = try await store.ingestExport(
            try Self.exportFile(messages), path: "/x.csv", contentSHA256: "bb22", atUnixMilliseconds: 9)
        let run = try #require(try await store.runs().first)
        #expect(outcome == .ingested(runRef: run.id, newSamples: 3))
        #expect(try await store.runs().count == 1)
        #expect(run.state == .closed && run.closedAtUnixMilliseconds == 9)
        let samples = try await store.samples(runRef: run.id)
        #expect(samples.map(\.runTimeMinutes) == [5, 10, 15, 20])
        #expect(samples.map(\.wholeBloodVolumeMillilitres) == [300, 600, 900, 1200])
        let kinds = try await store.events(runRef: run.id).map(\.kind)
        #expect(kinds == ["run_start", "device_alarm", "device_event", "run_end"])
        try await store.close()
    }

    @Test func anExportOnlyRunIsStored() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let messages = Fixture.wholeRun(runID: "RUN-FILE")
        let outcome = try await store.ingestExport(
            try Self.exportFile(messages), path: "/x.csv", contentSHA256: "cc33", atUnixMilliseconds: 5)
        let run = try #require(try await store.run(deviceSerial: Fixture.device.serialNumber, runID: "RUN-FILE"))
        #expect(outcome == .ingested(runRef: run.id, newSamples: 4))
        #expect(run.state == .closed && run.patientID == "P-1" && run.startDeviceTimestamp == Fixture.start)
        #expect(run.settings?.map(\.code) == [.totalBloodVolume, .acRatioSet, .acdaLot])
        #expect(try await store.devices().map(\.serial) == [Fixture.device.serialNumber])
        #expect(try await store.lastSequence(deviceSerial: Fixture.device.serialNumber) == nil)
        #expect(try await store.counts() == StoreCounts(messages: 7, samples: 4, runs: 1, openRuns: 0, activeAlarms: 0, quarantined: 0))
        // Live numbering starts independently of file messages.
        #expect(storedRef(try await store.commit(Fixture.runStart(1, runID: "RUN-NEXT"))) != nil)
        try await store.close()
    }

    @Test func aMalformedFileIsLoggedAndItsBytesKept() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        let bytes = Array("#SERIAL=1OPT00417\n#RUN_ID=R\nTIMESTAMP,RUN_TIME\n".utf8)
        try await store.recordMalformedExport(
            path: "/x.csv", contentSHA256: "dd44", reason: "no #END line", raw: bytes, deviceSerial: "1OPT00417",
            atUnixMilliseconds: 3)
        let file = try #require(try await store.exportFiles().first)
        #expect(file.outcome == .malformed && file.detail == "no #END line" && file.contentSHA256 == "dd44")
        let q = try #require(try await store.quarantined().first)
        #expect(q.raw == bytes && q.source == .export && q.reason.contains("no #END line"))
        #expect(try await store.counts().runs == 0)
        try await store.close()
    }
}
