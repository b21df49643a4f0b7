import Foundation
import RecordStore
import Testing

/// Gaps are data (issue 11): a simulator whose messages of one minute are taken by another reader
/// (numbered, never sent) through the real daemon. The gap is raised as DATA_GAP and stored with the
/// run, the run and its product show the completeness, and releasing the product needs an explicit,
/// audited acknowledgement, through apheresisctl as the cell lab uses it.
extension Integration {
    @Suite("Telemetry gaps: alarm, completeness, release acknowledgement", .serialized)
    struct TelemetryGapTests {
        @Test("a minute of messages lost on the line: DATA_GAP, completeness on run and product, release only with an audited acknowledgement")
        func lostMessagesMakeAnIncompleteRun() async throws {
            let directory = try Paths.temporaryDirectory("gaps")
            defer { try? FileManager.default.removeItem(at: directory) }
            // Eight minutes at a fast collect rate: enough in the bag (about 160 mL) for a 140 mL product.
            let lossy = AlarmCoverageTests.scenario(tickInterval: 5, faults: "[faults]\nlost_from_min = 2\nlost_to_min = 3", endAtMinute: 8)
                .replacingOccurrences(of: "inlet_ml_min = 28.0", with: "inlet_ml_min = 80.0")
                .replacingOccurrences(of: "collect_ml_min = 1.2", with: "collect_ml_min = 20.0")
            let scenario = try AlarmCoverageTests.write(lossy, to: directory, name: "lossy.toml")
            let daemon = try DaemonProcess.simulated(
                scenario: scenario, speed: 30,
                extra: """
                    [product]
                    facility_identification_number = "G1234"
                    facility_name = "Example Children's Hospital, Apheresis Unit"
                    facility_address = ["1 Example Street", "Springfield"]
                    product_description_code = "S1234"
                    time_zone = "UTC"
                    """, in: directory)
            let base = try daemon.apiBase()
            // The first run, closed by its RUN_END (the simulator then starts another).
            var runRef = 0
            try await eventuallyAsync("the first run is closed: \(daemon.failureText)", timeout: .seconds(120)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs")
                guard let closed = (r.data as? [[String: Any]])?.first(where: { $0["state"] as? String == "closed" }),
                    let id = closed["id"] as? Int
                else { return false }
                runRef = id
                return true
            }
            // The alarm, with the missing numbers named; cleared with the run, kept in the record.
            let r = try await HTTP.request("GET", base + "/api/v1/alarms?state=all")
            let gapAlarms = (r.data as? [[String: Any]] ?? []).filter { $0["code"] as? String == "DATA_GAP" }
            let gapAlarm = try #require(gapAlarms.first, "\(r)")
            #expect(gapAlarm["level"] as? String == "alarm", "\(gapAlarm)")
            let text = gapAlarm["message"] as? String ?? ""
            #expect(text.contains("of the separator never reached the record intact") && text.contains("messages missing"), "\(gapAlarm)")
            #expect(daemon.stderrText.contains("data gap in run"), "the journal line")

            // The run: its completeness and its gaps.
            let run = try #require(try await HTTP.request("GET", base + "/api/v1/runs/\(runRef)").data as? [String: Any])
            let completeness = try #require(run["completeness"] as? [String: Any], "\(run)")
            #expect(completeness["complete"] as? Bool == false, "\(completeness)")
            let percent = try #require(completeness["percent_of_expected_ticks"] as? Double)
            #expect(percent > 80 && percent < 95, "about 12 of 96 TICKs missing: \(completeness)")
            let messagesMissing = try #require(completeness["messages_missing"] as? Int)
            #expect(messagesMissing >= 11 && messagesMissing <= 14, "\(completeness)")
            let gaps = try #require(run["gaps"] as? [[String: Any]])
            #expect(gaps.contains { $0["kind"] as? String == "sequence" } && gaps.contains { $0["kind"] as? String == "run_time" }, "\(gaps)")
            try daemon.stop()

            // The cell lab: product, lab values, then the release screen says it, and refuses without an acknowledgement.
            let config = ["--config", daemon.configPath.path]
            func ctl(_ arguments: [String], _ stdin: [String] = []) throws -> CtlResult {
                try Ctl.run(arguments + config, stdin: stdin, in: directory)
            }
            try ProductWorkflowTests.addUsers(daemon, directory)
            let lab = ProductWorkflowTests.labPassword
            var c = try ctl(["product", "create", "--run", String(runRef), "--user", "lab1"], [lab])
            #expect(c.status == 0, "\(c)")
            c = try ctl(["product", "lab", "1", "--user", "lab1", "--wbc", "1.3", "--cd3-percent", "44.8", "--viability-percent", "96", "--qc-ml", "5"], [lab])
            #expect(c.status == 0, "\(c)")
            c = try ctl(["product", "show", "1"])
            #expect(c.stdout.contains("Run telemetry: INCOMPLETE") && c.stdout.contains("gap: Messages #"), "\(c)")
            c = try ctl(["product", "release", "1", "--user", "lab1"], [lab])
            #expect(c.status == 1 && c.stderr.contains("telemetry is incomplete"), "\(c)")
            #expect(c.stdout.contains("Run telemetry INCOMPLETE"), "the signed summary says it: \(c)")
            c = try ctl(["product", "release", "1", "--user", "lab1", "--acknowledge-incomplete-run", "gap during the rinse; counts from the lab"], [lab])
            #expect(c.status == 0, "\(c)")

            let store = try await RecordStore.open(path: daemon.databasePath)
            let entries = try await store.auditEntries(entity: "product", entityID: "1")
            let ack = try #require(entries.first { $0.action == "product.release.incomplete_run_acknowledged" }, "\(entries.map(\.action))")
            #expect(ack.actor == "lab1" && ack.reason?.hasPrefix("gap during the rinse; counts from the lab [run telemetry: ") == true, "\(ack)")
            #expect(try await store.auditEntries(entity: "signature").contains { $0.action == "product.release" && $0.seq > ack.seq })
            let stored = try await store.gaps(runRef: Int64(runRef))
            #expect(stored.contains { $0.gap.kind == .sequence })
        }
    }
}
