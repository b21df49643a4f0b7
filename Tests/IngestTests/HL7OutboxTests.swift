import Foundation
import GRDB
import HL7
import Ingest
import PipelineTestSupport
import RecordStore
import Testing

/// The hospital interface's outbox, in process: the real pipeline over a real store file, the
/// messages read back from the table the sender reads.
@Suite struct HL7OutboxTests {
    static let endpoints = HL7Endpoints(
        sendingApplication: "APHERESISD", sendingFacility: "UNIT", receivingApplication: "ENGINE", receivingFacility: "HOSPITAL")

    static func route(_ name: String, _ feeds: Set<HL7Route.Feed>, intervalMinutes: Double = 10) -> HL7Route {
        HL7Route(
            name: name, address: "127.0.0.1:2575", feeds: feeds, observationIntervalMinutes: intervalMinutes, endpoints: endpoints,
            timeZoneIdentifier: "Europe/Berlin")
    }

    /// Field `n` (1-based) of the first segment named `id` in a message's text.
    static func field(_ text: String, _ id: String, _ n: Int) -> String? {
        guard let segment = text.split(separator: "\r").first(where: { $0.hasPrefix(id + "|") }) else { return nil }
        let fields = segment.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        // MSH-1 is the separator: MSH's n-th field is at index n - 1.
        let index = id == "MSH" ? n - 1 : n
        return index < fields.count ? fields[index] : nil
    }

    static func obx(_ text: String, code: String) -> [String]? {
        text.split(separator: "\r").map(String.init).first { $0.hasPrefix("OBX|") && $0.contains("|\(code)^") }?
            .split(separator: "|", omittingEmptySubsequences: false).map(String.init)
    }

    @Test func aRunQueuesItsObservationsAndEveryAlarmStepInOrderForEachDestination() async throws {
        let scratch = try Scratch()
        let store = try await Bench.open(scratch)
        try await store.registerHL7Routes(
            [Self.route("engine", [.observations, .alarms, .products]), Self.route("alarms-desk", [.alarms])],
            atUnixMilliseconds: 1_796_540_000_000)
        let bench = Bench(store: store)
        let run = try scenarioRun("fault-ratio-drift")
        var acknowledged = false
        for d in run {
            #expect(await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) == .handled)
            // An operator acknowledges the first alarm while it is active.
            if !acknowledged, let active = try await store.activeAlarms().first, let runRef = active.runRef,
                let runRow = try await store.run(id: runRef)
            {
                let row = try await bench.pipeline.acknowledge(deviceSerial: runRow.deviceSerial, runID: runRow.runID, code: active.code) {
                    try #require(try await store.acknowledgeAlarm(id: active.id, by: "nurse.a", reason: nil, atUnixMilliseconds: 1_796_540_100_000))
                }
                acknowledged = row != nil
            }
        }
        #expect(acknowledged)
        let runRef = try #require(try await store.runs().first?.id)

        let pool = try DatabaseQueue(path: scratch.file("store.sqlite"))
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM hl7_outbox ORDER BY id") }
        let tag = try await pool.read { db in try String.fetchOne(db, sql: "SELECT store_tag FROM hl7_identity")! }
        #expect(tag.count == 8)

        // Every control id is the store's tag and the row id, in MSH-10, unique.
        var controlIDs = Set<String>()
        for row in rows {
            let text = String(decoding: row["message"] as Data, as: UTF8.self)
            let id: Int64 = row["id"]
            #expect(row["control_id"] == "\(tag)-\(id)")
            #expect(Self.field(text, "MSH", 10) == row["control_id"] as String)
            #expect(Self.field(text, "MSH", 12) == "2.6")
            #expect(Self.field(text, "MSH", 7)?.hasSuffix("+0100") == true || Self.field(text, "MSH", 7)?.hasSuffix("+0200") == true)
            #expect(controlIDs.insert(row["control_id"]).inserted)
            #expect(row["state"] == "pending")
        }

        // PCD-01: at least 10 min of run time apart, the run's end always, only to the destination that wants them.
        let observations = rows.filter { ($0["feed"] as String) == "observations" }
        #expect(observations.allSatisfy { ($0["destination"] as String) == "engine" })
        let times = observations.map { $0["run_time_min"] as Double }
        #expect(times.count >= 3)
        for (a, b) in zip(times, times.dropFirst().dropLast()) { #expect(b - a >= 10 - 0.0005) }
        let samples = try await store.samples(runRef: runRef)
        #expect(times.last == samples.last?.runTimeMinutes)
        let last = String(decoding: try #require(observations.last)["message"] as Data, as: UTF8.self)
        #expect(Self.field(last, "MSH", 9) == "ORU^R01^ORU_R01")
        #expect(Self.field(last, "OBR", 8) != nil, "the run's end sets OBR-8")
        let ratio = try #require(Self.obx(last, code: "APH_AC_RATIO_WINDOW"))
        #expect(ratio[2] == "NM" && ratio[4] == "1.1.2.4" && ratio[6] == "{ratio}^inlet:AC^UCUM" && ratio[11] == "R")
        #expect(Double(ratio[5]) != nil)
        let acToPatient = try #require(Self.obx(last, code: "157993"))
        #expect(acToPatient[3].hasPrefix("157993^MDC_VOL_FLUID_DELIV_TOTAL^MDC^APH_AC_TO_PATIENT"))
        #expect(acToPatient[18].hasPrefix(run[0].message.device.serialNumber + "^"))

        // PCD-04: every alarm step, once per destination that wants alarms, in the order stored.
        var steps: [AlarmEventRow] = []
        for alarm in try await store.alarms(runRef: runRef) { steps += try await store.alarmEvents(alarmRef: alarm.id) }
        steps.sort { $0.id < $1.id }
        #expect(steps.contains { $0.kind == .raised } && steps.contains { $0.kind == .acknowledged })
        for destination in ["engine", "alarms-desk"] {
            let alarms = rows.filter { ($0["feed"] as String) == "alarms" && ($0["destination"] as String) == destination }
            #expect(alarms.map { $0["subject"] as String } == steps.map { "alarm_event:\($0.id)" }, "\(destination)")
            for (row, step) in zip(alarms, steps) {
                let text = String(decoding: row["message"] as Data, as: UTF8.self)
                #expect(Self.field(text, "MSH", 9) == "ORU^R40^ORU_R01")
                #expect(Self.field(text, "OBR", 4) == "196616^MDC_EVT_ALARM^MDC")
                #expect(Self.field(text, "OBR", 3) == "\(tag)-A\(step.alarmRef)^APHERESISD")
                let phase = try #require(Self.obx(text, code: "68481"))[5]
                let state = try #require(Self.obx(text, code: "68482"))[5]
                let inactivation = try #require(Self.obx(text, code: "68483"))[5]
                switch step.kind {
                case .raised: #expect(phase == "start" && state == "active" && inactivation == "enabled")
                case .acknowledged:
                    #expect(phase == "update" && state == "active" && inactivation == "alert-acknowledged")
                    #expect(try #require(Self.obx(text, code: "196616"))[16] == "^nurse.a")
                case .cleared: #expect(phase == "end" && state == "inactive")
                case .escalated: #expect(phase == "escalate")
                case .deescalated: #expect(phase == "de-escalate")
                }
                let priority = try #require(Self.obx(text, code: "68484"))[5]
                #expect(priority == (step.level == "alarm" ? "PH" : "PM"))
            }
        }
    }

    @Test func withoutADestinationNothingIsQueuedAndARetiredOneKeepsItsQueue() async throws {
        let scratch = try Scratch()
        let store = try await Bench.open(scratch)
        let bench = Bench(store: store)
        let run = try scenarioRun("normal-girl-5y")
        for d in run.prefix(40) { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        #expect(try await store.hl7Status().isEmpty)
        try await store.registerHL7Routes([Self.route("engine", [.observations], intervalMinutes: 1)], atUnixMilliseconds: 1)
        for d in run.dropFirst(40).prefix(40) { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        let queued = try #require(try await store.hl7Status().first)
        #expect(queued.pending > 0 && queued.active)
        // Taken out of the configuration: kept, shown as not configured, and no longer queued for.
        try await store.registerHL7Routes([], atUnixMilliseconds: 2)
        for d in run.dropFirst(80).prefix(40) { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        let retired = try #require(try await store.hl7Status().first)
        #expect(!retired.active && retired.pending == queued.pending)
    }

    @Test func queuedMessagesAreNeverRewrittenAndDeliveryIsOneWay() async throws {
        let scratch = try Scratch()
        let store = try await Bench.open(scratch)
        try await store.registerHL7Routes([Self.route("engine", [.observations], intervalMinutes: 1)], atUnixMilliseconds: 1)
        let bench = Bench(store: store)
        for d in try scenarioRun("normal-girl-5y").prefix(30) { _ = await bench.pipeline.ingest(.message(text: d.text, receivedAt: d.at)) }
        let pending = try await store.pendingHL7(destination: "engine")
        #expect(pending.count >= 2)
        let (first, second) = (pending[0], pending[1])
        try await store.recordHL7Attempt(id: first.id, error: "no acknowledgement within 30 s", atUnixMilliseconds: 10)
        try await store.recordHL7Delivered(id: first.id, ackCode: "AA", ackText: "", atUnixMilliseconds: 11)
        try await store.recordHL7SetAside(id: second.id, ackCode: "AR", reason: "unknown patient", atUnixMilliseconds: 12)
        let delivered = try #require(try await store.hl7Entry(id: first.id))
        #expect(delivered.state == .delivered && delivered.attempts == 2 && delivered.message == first.message)
        #expect(try await store.pendingHL7(destination: "engine").first?.id == pending[2].id)
        let aside = try #require(try await store.hl7Entries(state: .setAside).first)
        #expect(aside.id == second.id && aside.ackText == "unknown patient")
        #expect(try await store.events().contains { $0.kind == "hl7_set_aside" && ($0.detail ?? "").contains("unknown patient") })
        // Put back after the receiver was fixed: the same bytes and control id go again.
        let again = try #require(try await store.requeueHL7(id: second.id, by: "it.admin", reason: "mapping added", atUnixMilliseconds: 13))
        #expect(again.state == .pending && again.controlID == second.controlID && again.message == second.message)

        let pool = try DatabaseQueue(path: scratch.file("store.sqlite"))
        try await pool.write { db in
            #expect(throws: (any Error).self) { try db.execute(sql: "UPDATE hl7_outbox SET message = x'00' WHERE id = ?", arguments: [first.id]) }
            #expect(throws: (any Error).self) { try db.execute(sql: "UPDATE hl7_outbox SET control_id = 'X' WHERE id = ?", arguments: [first.id]) }
            #expect(throws: (any Error).self) { try db.execute(sql: "UPDATE hl7_outbox SET state = 'pending' WHERE id = ?", arguments: [first.id]) }
            #expect(throws: (any Error).self) { try db.execute(sql: "DELETE FROM hl7_outbox WHERE id = ?", arguments: [first.id]) }
        }
    }
}
