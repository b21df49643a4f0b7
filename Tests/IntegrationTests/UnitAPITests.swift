import ApheresisVersion
import Foundation
import RecordStore
import Testing

/// The unit's endpoints and apheresisctl's live commands against the real daemon, which runs the real
/// simulator playing the ratio-drift scenario (an AC_RATIO warning about 26 s in at 60x).
extension Integration {
    @Suite("The unit's API and apheresisctl status, alarms, ack", .serialized)
    struct UnitAPITests {
        @Test("devices, runs, samples, alarms, events; acknowledge over HTTP and from the CLI; a stopped daemon is named")
        func unitEndpoints() async throws {
            let directory = try Paths.temporaryDirectory("unit-api")
            defer { try? FileManager.default.removeItem(at: directory) }
            let daemon = try DaemonProcess.ratioDrift(in: directory)
            let base = try daemon.apiBase()
            try Integration.ProductWorkflowTests.addUsers(daemon, directory)
            let op = ("op1", Integration.ProductWorkflowTests.operatorPassword)

            // The device: up, and recently heard from.
            try await eventuallyAsync("the link is up", timeout: .seconds(30)) {
                let r = try await HTTP.request("GET", base + "/api/v1/devices")
                let d = (r.data as? [[String: Any]])?.first
                return d?["link_state"] as? String == "up" && ((d?["last_activity_age_seconds"] as? Double) ?? 99) < 10
            }
            // The open run, its newest sample with its age.
            var runID = 0
            try await eventuallyAsync("a run is open with samples", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs")
                guard let run = (r.data as? [[String: Any]])?.first(where: { $0["state"] as? String == "open" }),
                    run["latest_sample"] is [String: Any], let age = run["latest_sample_age_seconds"] as? Double, age < 10
                else { return false }
                runID = run["id"] as? Int ?? 0
                return true
            }
            var r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)")
            #expect(r.status == 200 && (r.data as? [String: Any])?["run_id"] as? String != nil, "\(r)")
            let patient = (r.data as? [String: Any])?["patient"] as? [String: Any]
            #expect(patient?["weight_kilograms"] as? Double != nil, "\(r)")
            try await eventuallyAsync("ten minutes of run", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)")
                return (((r.data as? [String: Any])?["latest_sample"] as? [String: Any])?["run_time_minutes"] as? Double ?? 0) > 10
            }
            r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/samples?from_min=2&to_min=5")
            let window = try #require(r.data as? [[String: Any]], "\(r)")
            #expect(!window.isEmpty && window.allSatisfy { (2...5).contains($0["run_time_minutes"] as? Double ?? -1) }, "\(r)")
            let collect = (window.last?["values"] as? [String: Any])?["COLLECT_VOL"] as? [String: Any]
            #expect(collect?["unit"] as? String == "mL", "\(window.last ?? [:])")
            r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/samples?from_min=soon")
            #expect(r.status == 400 && r.errorMessage.contains("from_min"), "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/runs/999/samples")
            #expect(r.status == 404, "\(r)")

            // The alarm, acknowledged over HTTP.
            var alarmID = 0
            try await eventuallyAsync("the AC_RATIO warning is raised", timeout: .seconds(90)) {
                let r = try await HTTP.request("GET", base + "/api/v1/alarms")
                guard let a = (r.data as? [[String: Any]])?.first(where: { $0["code"] as? String == "AC_RATIO" }) else { return false }
                alarmID = a["id"] as? Int ?? 0
                return a["age_seconds"] is Double
            }
            r = try await HTTP.request("POST", base + "/api/v1/alarms/\(alarmID)/acknowledge", json: [String: Any]())
            #expect(r.status == 401, "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/alarms/\(alarmID)/acknowledge", json: [String: Any](), user: ("op1", "wrong"))
            #expect(r.status == 401, "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/alarms/\(alarmID)/acknowledge", json: ["reason": "ratio checked at the bedside"], user: op)
            #expect(r.status == 200, "\(r)")
            let acked = r.data as? [String: Any]
            #expect(acked?["acknowledged_by"] as? String == "op1" && ["acknowledged", "raised"].contains(acked?["state"] as? String ?? ""), "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/alarms/424242/acknowledge", json: [String: Any](), user: op)
            #expect(r.status == 404 && r.errorMessage.contains("no active alarm with id 424242"), "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/events?limit=3")
            #expect(r.status == 200 && ((r.data as? [Any])?.count ?? 99) <= 3, "\(r)")

            // The watcher's view of the run: presets, recomputed values, predictions, history.
            r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/watch")
            let watch = try #require(r.data as? [String: Any], "\(r)")
            let presets = try #require(watch["presets"] as? [String: Any], "\(watch)")
            #expect(presets["ratio_set"] as? Double == 12 && presets["ratio_warn_deviation"] as? Double == 1, "\(presets)")
            #expect(((watch["derived"] as? [String: Any])?["window_ratio"] as? Double ?? 0) > 11, "\(watch)")
            let series = try #require(watch["series"] as? [[String: Any]], "\(watch)")
            let times = series.compactMap { $0["run_time_minutes"] as? Double }
            #expect(times.count > 100 && times == times.sorted(), "\(times.count)")
            r = try await HTTP.request("GET", base + "/api/v1/runs/999/watch")
            #expect(r.status == 404, "\(r)")
            // DNS rebinding: a request naming another host is not answered, even a read.
            r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)", headers: ["Host": "rebind.example:8470"])
            #expect(r.status == 421 && r.errorMessage.contains("rebind.example"), "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/devices", headers: ["Host": "localhost"])
            #expect(r.status == 200, "\(r)")

            // A session: sign in, then write with the cookie and the dashboard's header.
            let dashboard = ["X-Requested-With": "apheresisd-dashboard"]
            r = try await HTTP.request("POST", base + "/api/v1/session", json: ["user": "op1", "password": "wrong"], headers: dashboard)
            #expect(r.status == 401 && r.header("WWW-Authenticate") == nil, "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/session", json: ["user": "op1", "password": op.1])
            #expect(r.status == 200 && (r.data as? [String: Any])?["role"] as? String == "operator", "\(r)")
            let setCookie = try #require(r.header("Set-Cookie"), "\(r)")
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"), "\(setCookie)")
            let cookie = ["Cookie": String(setCookie.prefix { $0 != ";" })]
            r = try await HTTP.request("GET", base + "/api/v1/session", headers: cookie)
            #expect(r.status == 200 && (r.data as? [String: Any])?["user"] as? String == "op1", "\(r)")
            // The cookie alone is not enough for a write (CSRF): the header must come with it.
            let change: [String: Any] = ["reason": "physician order: 150 mL", "changes": ["collect_target_ml": 150]]
            r = try await HTTP.request("POST", base + "/api/v1/runs/\(runID)/presets", json: change, headers: cookie)
            #expect(r.status == 401 && r.errorMessage.contains("X-Requested-With"), "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/runs/\(runID)/presets", json: change, headers: dashboard)
            #expect(r.status == 401 && r.header("WWW-Authenticate") == nil, "\(r)")
            // Presets: refused by name, by role, without a reason; then changed, audited, applied.
            let both = cookie.merging(dashboard) { a, _ in a }
            let sup = ("sup", Integration.ProductWorkflowTests.supervisor)
            let loosen: [String: Any] = ["reason": "x", "changes": ["ratio_warn_deviation": 2.5]]
            r = try await HTTP.request("POST", base + "/api/v1/runs/\(runID)/presets", json: loosen, headers: both)
            #expect(r.status == 403 && r.errorMessage.contains("ratio_warn_deviation") && r.errorMessage.contains("only a supervisor"), "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/runs/\(runID)/presets", json: loosen, user: sup)
            #expect(r.status == 422 && r.errorMessage.contains("ratio_alarm_deviation = 2 ratio units (unchanged)"), "\(r)")
            // Not JSON: refused before anything else (a cross-site form cannot write).
            r = try await HTTP.request(
                "POST", base + "/api/v1/runs/\(runID)/presets", rawBody: "reason=x", user: op,
                headers: ["Content-Type": "application/x-www-form-urlencoded"])
            #expect(r.status == 415, "\(r)")
            // Also when the path is written with a doubled slash, which the router still matches.
            r = try await HTTP.request(
                "POST", base + "//api/v1/runs/\(runID)/presets", rawBody: #"{"reason":"x","changes":{"collect_target_ml":140}}"#, user: op,
                headers: ["Content-Type": "text/plain"])
            #expect(r.status == 415, "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/runs/\(runID)/presets", json: ["reason": "x", "changes": ["collect_volume": 1]], headers: both)
            #expect(r.status == 422 && r.errorMessage.contains("changes.collect_volume"), "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/runs/\(runID)/presets", json: ["changes": ["collect_target_ml": 150]], headers: both)
            #expect(r.status == 422 && r.errorMessage.contains("reason"), "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/runs/\(runID)/presets", json: change, user: ("lab1", Integration.ProductWorkflowTests.labPassword))
            #expect(r.status == 403, "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/runs/\(runID)/presets", json: change, headers: both)
            #expect(r.status == 200, "\(r)")
            let changed = (r.data as? [String: Any])?["presets"] as? [String: Any]
            #expect(changed?["collect_target_ml"] as? Double == 150 && changed?["overridden"] as? [String] == ["collect_target_ml"], "\(r)")
            try await eventuallyAsync("the watcher holds the run against the new target", timeout: .seconds(30)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/watch")
                let w = r.data as? [String: Any]
                return ((w?["predictions"] as? [String: Any])?["collect"] as? [String: Any])?["target"] as? Double == 150
            }
            r = try await HTTP.request("DELETE", base + "/api/v1/session", headers: both)
            #expect(r.status == 200 && r.header("Set-Cookie")?.contains("Max-Age=0") == true, "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/alarms/\(alarmID)/acknowledge", json: [String: Any](), headers: both)
            #expect(r.status == 401 && r.errorMessage.contains("session has ended"), "\(r)")

            // A scan of unknown paths and an unusual method (WebDAV's): neither becomes a label value.
            _ = try await HTTP.request("GET", base + "/scan-\(UUID().uuidString)")
            _ = try await HTTP.request("PROPFIND", base + "/api/v1/devices")
            // Metrics: clean under promtool (Debian's prometheus package), with the values the API shows.
            r = try await HTTP.request("GET", base + "/metrics")
            #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("text/plain") == true, "\(r.status)")
            let metrics = r.text
            let check = try Self.promtool(metrics, in: directory)
            #expect(check.status == 0, "promtool check metrics: \(check.output)\n\(metrics.prefix(3000))")
            #expect(Self.value(metrics, #"apheresisd_link_up{device="optia-sim"}"#) == 1, "\(metrics.prefix(3000))")
            #expect((Self.value(metrics, #"apheresisd_messages_stored_total{device="optia-sim"}"#) ?? 0) > 10)
            #expect((Self.value(metrics, #"apheresisd_store_commit_duration_seconds_count{device="optia-sim"}"#) ?? 0) > 10)
            #expect(metrics.contains(#"code="AC_RATIO""#), "\(metrics.prefix(3000))")
            // Which build answers, the process, the store's size, and the API's own requests by route pattern.
            #expect(Self.value(metrics, #"apheresisd_build_info{version="\#(ApheresisVersion.string)"}"#) == 1, "\(metrics.prefix(3000))")
            #expect((Self.value(metrics, "process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((Self.value(metrics, "process_cpu_seconds_total") ?? 0) > 0)
            #expect((Self.value(metrics, "process_open_fds") ?? 0) > 3)
            #expect((Self.value(metrics, #"apheresisd_store_size_bytes{file="database"}"#) ?? 0) > 4096)
            #expect(
                (Self.value(metrics, #"apheresisd_http_requests_total{method="GET",route="/api/v1/devices",status="200"}"#) ?? 0) >= 1,
                "\(metrics.split(separator: "\n").filter { $0.hasPrefix("apheresisd_http_requests_total") })")
            let requestSeries = metrics.split(separator: "\n").filter { $0.hasPrefix("apheresisd_http_requests_total{") }
            #expect(!requestSeries.contains { $0.contains("scan-") || $0.contains("PROPFIND") }, "\(requestSeries)")
            #expect(requestSeries.contains { $0.contains(#"route="unmatched""#) }, "\(requestSeries)")
            #expect(requestSeries.contains { $0.contains(#"method="other""#) }, "\(requestSeries)")
            // Every device is named by its configured name, alarms included; none by a label of its own.
            #expect(!metrics.contains("device_serial="), "\(metrics.prefix(3000))")
            #expect(Self.value(metrics, #"apheresisd_alarms_active{device="optia-sim",level="warning"}"#) != nil, "\(metrics.prefix(3000))")

            // The CLI against the running daemon.
            let api = ["--api", base]
            var c = try Ctl.run(["status"] + api, in: directory)
            #expect(c.status == 0 && c.stdout.contains("optia-sim") && c.stdout.contains("UP"), "\(c)")
            c = try Ctl.run(["status", "--json"] + api, in: directory)
            #expect(c.status == 0 && c.stdout.hasPrefix("{") && c.stdout.contains("\"devices\""), "\(c)")
            c = try Ctl.run(["runs", "--json", "--config", daemon.configPath.path], in: directory)
            let listed = (try? JSONSerialization.jsonObject(with: Data(c.stdout.utf8))) as? [[String: Any]]
            let listedRun = listed?.first { $0["id"] as? Int == runID }
            #expect(c.status == 0 && listedRun?["state"] as? String == "open" && listedRun?["collected_ml"] is Double, "\(c)")
            c = try Ctl.run(["alarms", "--all"] + api, in: directory)
            #expect(c.status == 0 && c.stdout.contains("AC_RATIO") && c.stdout.contains("op1"), "\(c)")
            c = try Ctl.run(["ack", String(alarmID), "--user", "op1"] + api, stdin: ["wrong-password"], in: directory)
            #expect(c.status == 1 && c.stderr.contains("the user name or the password is wrong"), "\(c)")
            c = try Ctl.run(["ack", String(alarmID), "--user", "op1"] + api, stdin: [op.1], in: directory)
            #expect(c.status == 0 && c.stdout.contains("acknowledged by op1"), "\(c)")

            // The acknowledgement is in the store and in the audit trail.
            let store = try await RecordStore.open(path: daemon.databasePath)
            let events = try await store.alarmEvents(alarmRef: Int64(alarmID))
            #expect(events.contains { $0.kind == .acknowledged && $0.actor == "op1" }, "\(events)")
            let audit = try await store.auditEntries(entity: "alarm", entityID: String(alarmID))
            let ack = audit.first { $0.action == "alarm.acknowledge" }
            #expect(ack?.actor == "op1" && ack?.reason == "ratio checked at the bedside", "\(audit)")
            #expect(audit.contains { $0.action == "refused.acknowledgeAlarm" && $0.reason == "wrong password for op1" }, "\(audit)")
            let trail = try await store.auditEntries()
            #expect(trail.filter { $0.action == "run.presets.change" }.map(\.reason) == ["physician order: 150 mL"], "\(trail)")
            #expect(trail.contains { $0.action == "session.open" && $0.actor == "op1" }, "\(trail)")
            #expect(trail.contains { $0.action == "session.close" && $0.actor == "op1" }, "\(trail)")
            #expect(trail.contains { $0.action == "refused.signIn" && $0.reason == "wrong password for op1" }, "\(trail)")
            #expect(trail.contains { $0.action == "refused.changeRunPresets" && $0.actor == "lab1" }, "\(trail)")
            #expect(trail.contains { $0.action == "refused.loosenRunAlarmLines" && $0.actor == "op1" }, "\(trail)")
            #expect(try await store.presetChanges(runRef: Int64(runID)).first?.changes == ["collect_target_ml": 150])
            #expect(try await store.verifyAudit().isIntact)
            try await store.close()

            try daemon.stop()
            c = try Ctl.run(["status"] + api, in: directory)
            #expect(c.status == 69 && c.stderr.contains("apheresisd is not running"), "\(c)")
        }
    
        @Test("the live stream: a snapshot first, then samples, then the alarm as the daemon raises it")
        func liveStream() async throws {
            let directory = try Paths.temporaryDirectory("unit-stream")
            defer { try? FileManager.default.removeItem(at: directory) }
            let daemon = try DaemonProcess.ratioDrift(in: directory)
            let base = try daemon.apiBase()
            let port = try #require(URL(string: base)?.port, "\(base)")
            // Connect once the run is under way (open, with a point in its chart): the snapshot must carry it.
            try await eventuallyAsync("a run is open with a sample", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", "http://127.0.0.1:\(port)/api/v1/runs")
                return (r.data as? [[String: Any]])?.contains {
                    $0["state"] as? String == "open" && (($0["watch"] as? [String: Any])?["series"] as? [Any])?.isEmpty == false
                } == true
            }
            let reader = try EventStreamReader(host: "127.0.0.1", port: port, path: "/api/v1/stream")
            defer { reader.close() }
            try eventually("the AC_RATIO alarm arrives on the stream; last events \(reader.events.map(\.name).suffix(5)) \(daemon.failureText)", timeout: .seconds(90)) {
                reader.events.contains { $0.name == "alarm" && $0.json["code"] as? String == "AC_RATIO" }
            }
            #expect(reader.headerText.contains("text/event-stream"), "\(reader.headerText)")
            let events = reader.events
            let first = try #require(events.first)
            #expect(first.name == "snapshot", "\(events.prefix(3).map(\.name))")
            #expect(first.json["api_version"] as? Int == 1)
            #expect((first.json["devices"] as? [[String: Any]])?.first?["link_state"] as? String == "up", "\(first.data.prefix(500))")
            #expect((first.json["open_runs"] as? [[String: Any]])?.count == 1, "\(first.data.prefix(500))")
            let samples = events.filter { $0.name == "sample" }
            #expect(samples.count > 3)
            let times = samples.compactMap { $0.json["run_time_minutes"] as? Double }
            #expect(times == times.sorted() && !times.isEmpty, "\(times)")
            #expect(((samples.last?.json["values"] as? [String: Any])?["AC_RATIO"] as? [String: Any])?["unit"] as? String == "{ratio}")
            let alarm = try #require(events.first { $0.name == "alarm" && $0.json["code"] as? String == "AC_RATIO" })
            #expect(alarm.json["change"] as? String == "raised" && alarm.json["level"] as? String == "warning", "\(alarm.data)")
            #expect((alarm.json["alarm_id"] as? Int ?? 0) > 0, "\(alarm.data)")
            let watched = samples.last?.json["watch"] as? [String: Any]
            #expect((watched?["presets"] as? [String: Any])?["ratio_set"] as? Double == 12 && watched?["series"] == nil, "\(samples.last?.data ?? "")")
            let openRun = (first.json["open_runs"] as? [[String: Any]])?.first
            #expect(((openRun?["watch"] as? [String: Any])?["series"] as? [Any])?.isEmpty == false, "\(first.data.prefix(800))")

            // apheresisctl watch: the same stream, one line per event.
            let watch = try Ctl.run(["watch", "--api", "http://127.0.0.1:\(port)", "--count", "4"], in: directory, timeout: .seconds(60))
            let lines = watch.stdout.split(separator: "\n")
            #expect(watch.status == 0 && lines.count == 4, "\(watch)")
            #expect(lines.first?.hasPrefix("snapshot: optia-sim UP; 1 run(s) open") == true, "\(watch)")
            #expect(lines.dropFirst().contains { $0.contains("collect") && $0.contains("ratio") && $0.contains("(set 12, device") }, "\(watch)")

            // A daemon killed outright leaves no simulator behind holding the terminal.
            let simulators = childProcesses(of: daemon.process.processIdentifier).filter { $0.name == "optia-sim" }
            #expect(simulators.count == 1, "\(simulators)")
            daemon.killHard()
            try eventually("the orphaned simulator stops", timeout: .seconds(10)) {
                simulators.allSatisfy { processHasExited($0.pid) }
            }
        }

        @Test("a stale-telemetry alarm, raised without a message, reaches the stream with its id, and clears")
        func staleAlarmOnTheStream() async throws {
            let directory = try Paths.temporaryDirectory("unit-stale")
            defer { try? FileManager.default.removeItem(at: directory) }
            let daemon = try DaemonProcess.ratioDrift(in: directory)
            let base = try daemon.apiBase()
            let port = try #require(URL(string: base)?.port, "\(base)")
            try await eventuallyAsync("a run is open", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs")
                return (r.data as? [[String: Any]])?.contains { $0["state"] as? String == "open" } == true
            }
            let reader = try EventStreamReader(host: "127.0.0.1", port: port, path: "/api/v1/stream")
            defer { reader.close() }
            // The separator falls silent: its simulator is stopped (SIGSTOP), as a hung device would be.
            // The staleness limit is three TICK intervals of the device clock (5 s): 15 s of real time.
            let simulator = try #require(childProcesses(of: daemon.process.processIdentifier).first { $0.name == "optia-sim" })
            kill(simulator.pid, SIGSTOP)
            var resumed = false
            defer { if !resumed { kill(simulator.pid, SIGCONT) } }
            func staleEvents() -> [EventStreamReader.Event] {
                reader.events.filter { $0.name == "alarm" && $0.json["code"] as? String == "STALE_TELEMETRY" }
            }
            try eventually("STALE_TELEMETRY raised on the stream; \(daemon.failureText)", timeout: .seconds(45)) {
                staleEvents().contains { $0.json["change"] as? String == "raised" }
            }
            kill(simulator.pid, SIGCONT)
            resumed = true
            try eventually("STALE_TELEMETRY cleared on the stream; \(staleEvents().map(\.data))", timeout: .seconds(45)) {
                staleEvents().contains { $0.json["change"] as? String == "cleared" }
            }
            let raised = try #require(staleEvents().first { $0.json["change"] as? String == "raised" })
            let id = try #require(raised.json["alarm_id"] as? Int, "\(raised.data)")
            let store = try await RecordStore.open(path: daemon.databasePath)
            let row = try await store.alarm(id: Int64(id))
            #expect(row?.code == "STALE_TELEMETRY" && row?.clearedAtUnixMilliseconds != nil, "\(String(describing: row))")
            try await store.close()
            try daemon.stop()
        }

        static func promtool(_ text: String, in directory: URL) throws -> (status: Int32, output: String) {
            let input = directory.appendingPathComponent("metrics.txt")
            try text.write(to: input, atomically: true, encoding: .utf8)
            let output = directory.appendingPathComponent("promtool.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/promtool")
            p.arguments = ["check", "metrics"]
            p.standardInput = try FileHandle(forReadingFrom: input)
            p.standardOutput = try FileHandle(forWritingTo: output)
            p.standardError = p.standardOutput
            try p.run()
            p.waitUntilExit()
            return (p.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
        }

        /// The value of one series (`name{labels}` exactly as written), from the text format.
        static func value(_ text: String, _ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1).split(separator: " ").first ?? "")
            }
            return nil
        }
    }
}
