import ApheresisCore
import Foundation
import Ingest
import PipelineTestSupport
import LiveState
import RecordStore
import SeparatorProtocol
import Testing

@Suite("Ingest: every message handled once, judged, committed and published")
struct IngestContractTests {
    @Test func aWholeRunIsStoredOnceWithItsAlarmsNamedByTheirStoreIds() async throws {
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch))
        let (client, events) = bench.feed.join()
        let run = try scenarioRun("fault-ratio-drift")
        for d in run {
            #expect(await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) == .handled)
        }
        bench.feed.finishAll()
        _ = bench.feed.leave(client)
        let counts = try await bench.store.counts()
        #expect(counts.messages == run.count)
        #expect(counts.runs == 1)
        #expect(counts.openRuns == 0)
        #expect(await !bench.pipeline.isWatching(deviceSerial: run[0].message.device.serialNumber, runID: run[0].message.order.runID))

        // The drift raises AC_RATIO; every alarm event names the row the store holds for it.
        let runRef = try #require(try await bench.store.runs().first?.id)
        let stored = try await bench.store.alarms(runRef: runRef)
        #expect(stored.contains { $0.code == "AC_RATIO" })
        var alarmEvents: [(id: Int64?, code: String, change: String)] = []
        for await event in events where event.name == "alarm" {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(event.json.utf8)) as? [String: Any])
            alarmEvents.append(((object["alarm_id"] as? NSNumber)?.int64Value, object["code"] as! String, object["change"] as! String))
        }
        #expect(!alarmEvents.isEmpty)
        for event in alarmEvents {
            let row = try #require(stored.first { $0.id == event.id }, "stream names alarm \(String(describing: event.id)) (\(event.code))")
            #expect(row.code == event.code)
        }
        #expect(bench.health.snapshot.devices["optia-1"]?.messagesStored == run.count)
    }
}

@Suite("Ingest: resends, bad input, refusals, restarts, files, operators, dialects")
struct IngestEdgeTests {
    @Test func aResendIsHandledAndStoredOnce() async throws {
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch))
        let run = try scenarioRun("normal-girl-5y")
        for d in run.prefix(5) { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        let again = run[4]
        #expect(await bench.pipeline.ingest(.message(text: again.text, receivedAt: again.at + .seconds(1))) == .handled)
        #expect(try await bench.store.counts().messages == 5)
        #expect(bench.health.snapshot.devices["optia-1"]?.duplicates == 1)
        #expect(bench.health.snapshot.devices["optia-1"]?.messagesStored == 5)
    }

    @Test func recordsThatDoNotParseAreQuarantinedAndHandled() async throws {
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch))
        let text = Array("H|\\^&|||OPTIA\rX|nonsense\rL|1|N\r".utf8)
        #expect(await bench.pipeline.ingest(.message(text: text, receivedAt: .seconds(1))) == .handled)
        let kept = try await bench.store.quarantined()
        #expect(kept.count == 1)
        #expect(kept.first?.raw == text)
        #expect(try await bench.store.counts().messages == 0)
    }

    @Test func aStoreThatRefusesWritesLeavesTheMessageUnacknowledgedAndSaysSo() async throws {
        let scratch = try Scratch()
        // A reserve larger than any disk: every write of device data is refused as "full".
        let refusing = Bench(store: try await Bench.open(scratch, reserveBytes: UInt64.max / 2))
        let run = try scenarioRun("normal-girl-5y")
        let outcome = await refusing.pipeline.ingest(.message(text: run[0].text, receivedAt: run[0].at))
        #expect(outcome == .retry)
        #expect(!outcome.mayAcknowledge)
        #expect(refusing.health.snapshot.storeFailure != nil)
        #expect(try await refusing.store.counts().messages == 0)
        // The same file with room: the resend is stored.
        let roomy = Bench(store: try await Bench.open(scratch))
        #expect(await roomy.pipeline.ingest(.message(text: run[0].text, receivedAt: run[0].at)) == .handled)
        #expect(try await roomy.store.counts().messages == 1)
    }

    @Test func aRestartedPipelineWatchesTheOpenRunAgainAndRaisesNothingTwice() async throws {
        let scratch = try Scratch()
        let run = try scenarioRun("fault-ratio-drift")
        let cut = run.count * 3 / 4
        let first = Bench(store: try await Bench.open(scratch))
        for d in run[..<cut] { #expect(await first.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) == .handled) }
        let runRef = try #require(try await first.store.runs().first?.id)
        let raisedBefore = try await first.store.alarms(runRef: runRef)
        #expect(raisedBefore.contains { $0.code == "AC_RATIO" })

        // A new process: same store file, new pipeline, the run restored from its own rows.
        let second = Bench(store: try await Bench.open(scratch))
        await second.pipeline.restoreOpenRuns(now: run[cut - 1].at)
        let serial = run[0].message.device.serialNumber
        let runID = run[0].message.order.runID
        // The store keeps the link name with the device, so the new pipeline finds the run by it.
        #expect(await second.pipeline.isWatching(deviceSerial: serial, runID: runID))
        #expect(second.watches.watch(deviceSerial: serial, runID: runID) != nil)
        for d in run[cut...] { #expect(await second.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) == .handled) }
        let after = try await second.store.alarms(runRef: runRef)
        // Alarms still active at the cut were taken over, not raised again: at most one row per code
        // for codes that never cleared before the cut.
        let activeAtCut = Set(raisedBefore.filter { $0.state != .cleared }.map(\.code))
        for code in activeAtCut { #expect(after.filter { $0.code == code }.count == 1, "\(code) raised twice across the restart") }
        #expect(try await second.store.counts().messages == run.count)
        #expect(try await second.store.counts().openRuns == 0)
    }

    @Test func anExportFileEntersThroughTheSameDoorOnceAndAMalformedOneIsKept() async throws {
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch), deviceName: "optia-export")
        let run = try scenarioRun("fault-ratio-drift")
        let text = ExportCSV.encode(try ExportRun(messages: run.map(\.message)))
        let file = ExportFile(path: scratch.file("run.csv"), bytes: Array(text.utf8), modifiedAtUnixSeconds: 0)
        #expect(await bench.pipeline.ingest(.exportFile(file)) == .handled)
        let runRef = try #require(try await bench.store.runs().first?.id)
        #expect(try await bench.store.alarms(runRef: runRef).contains { $0.code == "AC_RATIO" })
        #expect(try await bench.store.counts().openRuns == 0)
        // The same content again: known, nothing new.
        let samples = try await bench.store.counts().samples
        #expect(await bench.pipeline.ingest(.exportFile(file)) == .handled)
        #expect(try await bench.store.counts().samples == samples)

        // Cut short at a line's end (no end marker) and old: malformed, with the line named, and its bytes kept.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let cut = lines.prefix(lines.count / 2).joined(separator: "\n") + "\n"
        let broken = ExportFile(path: scratch.file("broken.csv"), bytes: Array(cut.utf8), modifiedAtUnixSeconds: 0)
        guard case .malformed(let reason) = await bench.pipeline.ingest(.exportFile(broken)) else {
            Issue.record("a cut file is not malformed")
            return
        }
        #expect(reason.contains("line"))
        #expect(try await bench.store.quarantined().contains { $0.raw == Array(cut.utf8) })
        // Cut short and just written: perhaps still being written, so left for later.
        let fresh = ExportFile(path: scratch.file("fresh.csv"), bytes: Array(cut.utf8), modifiedAtUnixSeconds: Date().timeIntervalSince1970)
        #expect(await bench.pipeline.ingest(.exportFile(fresh)) == .incomplete)
    }

    @Test func anAcknowledgementIsTakenInTheRunsTurnAndALatchedAlarmEndsWithIt() async throws {
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch))
        let run = try scenarioRun("alarm-pause-resume")
        let serial = run[0].message.device.serialNumber
        let runID = run[0].message.order.runID
        // Up to and including the device's AIR_IN_RETURN alarm.
        let alarmIndex = try #require(run.firstIndex { $0.message.kind == .alarm })
        for d in run[...alarmIndex] { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        let runRef = try #require(try await bench.store.runs().first?.id)
        let device = try #require(try await bench.store.activeAlarms(runRef: runRef).first { $0.code.hasPrefix("DEVICE") || $0.code.contains("AIR") })
        let store = bench.store
        let row = try await bench.pipeline.acknowledge(deviceSerial: serial, runID: runID, code: device.code) {
            try #require(try await store.acknowledgeAlarm(id: device.id, by: "nurse", atUnixMilliseconds: DaemonClock.wallMilliseconds))
        }
        #expect(row?.acknowledgedBy == "nurse")
        // A run this pipeline does not watch is not its to acknowledge.
        let none = try await bench.pipeline.acknowledge(deviceSerial: "OTHER", runID: "RUN-X", code: device.code) {
            Issue.record("recorded for a run the pipeline does not watch")
            return device
        }
        #expect(none == nil)
    }

    @Test func theDialectDecidesHowMessagesAreRead() async throws {
        #expect(SeparatorDialect.named("optia")?.name == "optia")
        #expect(SeparatorDialect.named("nonesuch") == nil)
        #expect(SeparatorDialect.standard.isExportFile("RUN-1.CSV"))
        #expect(!SeparatorDialect.standard.isExportFile("RUN-1.csv.part"))

        // A family whose messages carry one byte of preamble before the header record: its own
        // decoder strips it; nothing else changes for the pipeline.
        let preambled = SeparatorDialect(
            name: "preambled", summary: "test dialect", framing: E1381Receiver.Configuration(),
            decodeMessage: { (text: [UInt8]) throws(MessageDecodingError) -> SeparatorMessage in
                try E1394Decoder.decode(text.dropFirst())
            },
            exportFileExtensions: ["txt"],
            decodeExport: { (text: String) throws(ExportDecodingError) -> ExportRun in try ExportCSV.decode(text) })
        let scratch = try Scratch()
        let bench = Bench(store: try await Bench.open(scratch), dialect: preambled)
        let run = try scenarioRun("normal-girl-5y")
        for d in run.prefix(3) {
            #expect(await bench.pipeline.ingest(.message(text: [0x23] + d.text, receivedAt: d.at)) == .handled)
        }
        #expect(try await bench.store.counts().messages == 3)
        #expect(try await bench.store.quarantined().isEmpty)
        // The standard dialect reads the same bytes as not parsing: quarantined, never dropped.
        let standard = Bench(store: try await Bench.open(scratch, name: "other.sqlite"))
        #expect(await standard.pipeline.ingest(.message(text: [0x23] + run[0].text, receivedAt: run[0].at)) == .handled)
        #expect(try await standard.store.quarantined().count == 1)
    }
}

@Suite("The run watch board holds open runs, and only the newest closed ones")
struct RunWatchBoardTests {
    @Test func closedRunsBeyondTheLimitAreDroppedAndOpenOnesStay() throws {
        let board = RunWatchBoard()
        let start = try scenarioRun("normal-girl-5y")[0].message
        func watch(_ runID: String) -> RunWatch {
            var message = start
            message.order.runID = runID
            let monitor = RunMonitor(runStart: message, profile: .pediatricCMNC, receivedAt: .zero)
            return RunWatch(monitor: monitor, deviceSerial: message.device.serialNumber, runRef: nil)
        }
        let serial = start.device.serialNumber
        board.record(watch("OPEN"), addPoint: false)
        for n in 0..<(RunWatchBoard.closedLimit + 5) {
            board.record(watch("RUN-\(n)"), addPoint: false)
            board.closed(deviceSerial: serial, runID: "RUN-\(n)")
        }
        #expect(board.count == 1 + RunWatchBoard.closedLimit)
        #expect(board.watch(deviceSerial: serial, runID: "OPEN") != nil)
        #expect(board.watch(deviceSerial: serial, runID: "RUN-0") == nil)
        #expect(board.watch(deviceSerial: serial, runID: "RUN-\(RunWatchBoard.closedLimit + 4)") != nil)
    }
}
