import Foundation
import RecordStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// No alarm may go silent: each case an independent tester found where a clinically relevant alarm
/// was never raised, against the real daemon, the real simulator and a real store.
extension Integration {
    @Suite("No alarm goes silent: sparse ticks, missing RUN_START, restarts, full disks, acknowledgements", .serialized)
    struct AlarmCoverageTests {
        /// A boy of 36 kg (TBV 2700 mL) at 12:1 whose AC pump really drifts to 8:1 from minute 2 (more
        /// anticoagulant than set: citrate risk) while the device keeps reporting 12:1.
        static func scenario(tickInterval: Int, faults: String = "", timeline: String = "", endAtMinute: Int = 180) -> String {
            """
            format = "optia-sim-scenario/1"
            [device]
            model = "OPTIA-SIM"
            software_version = "11.3"
            serial = "1OPT00777"
            [patient]
            id = "PED-000777"
            family = "TESTER"
            given = "Sparse"
            birth_date = "20150402"
            sex = "M"
            height_cm = 145
            weight_kg = 36
            [settings]
            procedure = "CMNC"
            ac_ratio = 12.0
            ac_inf_rate_max = 1.2
            target_tbv = 2.0
            ecv_ml = 191
            pre_hct = 37.0
            pre_wbc = 6.2
            acda_lot = "ACDA-24K117"
            set_lot = "IDL-2406-0305"
            operator = "RN-HOLM"
            tick_interval_s = \(tickInterval)
            start = "20261202090000"
            [flows]
            inlet_ml_min = 28.0
            collect_ml_min = 1.2
            [end]
            end_at_min = \(endAtMinute)
            \(faults)
            [[timeline]]
            at_min = 2
            action = "ratio_drift"
            to_ratio = 8.0
            over_min = 1
            \(timeline)
            """
        }

        /// A failure inside `body` (a reply cut short, say) with the daemon's own account of it.
        static func explained(_ daemon: DaemonProcess, _ body: () async throws -> Void) async throws {
            do {
                try await body()
            } catch {
                throw SimulatorFailure(
                    description: "\(error); the daemon is \(daemon.process.isRunning ? "running" : "gone (status \(daemon.process.terminationStatus))"): \(daemon.failureText)")
            }
        }

        static func write(_ text: String, to directory: URL, name: String) throws -> String {
            let url = directory.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }

        static func alarms(_ base: String, state: String = "active") async throws -> [[String: Any]] {
            let r = try await HTTP.request("GET", base + "/api/v1/alarms?state=\(state)")
            return r.data as? [[String: Any]] ?? []
        }

        static func activeAlarm(_ base: String, _ code: String) async throws -> [String: Any]? {
            try await alarms(base).first { $0["code"] as? String == code }
        }

        static func openRunID(_ base: String) async throws -> Int? {
            let r = try await HTTP.request("GET", base + "/api/v1/runs")
            return (r.data as? [[String: Any]])?.first { $0["state"] as? String == "open" }?["id"] as? Int
        }

        // MARK: Sparse and dense ticks

        /// 1 s ticks (the contract's fastest) and 60 s ticks (its slowest) with a 30 s ratio window,
        /// which never held two samples before: the 8:1 ratio is judged and alarmed at both.
        @Test("the ratio is judged at the contract's fastest and slowest tick intervals, also with a window shorter than a tick", arguments: [1, 60])
        func ticksAtAnyInterval(tickInterval: Int) async throws {
            let directory = try Paths.temporaryDirectory("ticks-\(tickInterval)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let scenario = try Self.write(Self.scenario(tickInterval: tickInterval), to: directory, name: "drift.toml")
            // 60 s ticks at 60x: one message a second. 1 s ticks at 10x: ten a second.
            let speed = tickInterval == 1 ? 10 : 60
            let daemon = try DaemonProcess.simulated(
                scenario: scenario, speed: speed,
                extra: """
                    [[profile]]
                    name = "short-window"
                    ratio_window_s = 30
                    ac_inf_window_s = 30
                    """, in: directory)
            let base = try daemon.apiBase()
            var alarm: [String: Any] = [:]
            try await Self.explained(daemon) {
                try await eventuallyAsync("AC_RATIO at alarm level for 8:1 against 12:1 (\(tickInterval) s ticks): \(daemon.failureText)", timeout: .seconds(90)) {
                    guard let a = try await Self.activeAlarm(base, "AC_RATIO"), a["level"] as? String == "alarm" else { return false }
                    alarm = a
                    return true
                }
            }
            #expect((alarm["value"] as? Double ?? 99) <= 10, "raised at or past the line: \(alarm)")
            #expect((alarm["limit"] as? Double) == 10, "the line as configured (12 - 2.0), without binary noise: \(alarm)")
            // Judged, so nothing says it is not; and the value now is there beside the value at raise.
            let runID = try #require(try await Self.openRunID(base))
            let r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/watch")
            let watch = try #require(r.data as? [String: Any], "\(r)")
            let notJudged = watch["not_judged"] as? [String: Any] ?? [:]
            #expect(notJudged["AC_RATIO"] == nil && notJudged["AC_INF_RATE"] == nil, "\(watch)")
            #expect((watch["values_now"] as? [String: Any])?["AC_RATIO"] is Double, "\(watch)")
            #expect(((try await Self.activeAlarm(base, "AC_RATIO"))?["value_now"]) is Double)
            try daemon.stop()
        }

        // MARK: A run without RUN_START; a silent line; a restart with the cable out

        @Test("a run without RUN_START is watched; a silent line looks silent and does not flap; a restart with the cable out raises LINK_DOWN and STALE_TELEMETRY")
        func missingStartSilenceAndRestart() async throws {
            let directory = try Paths.temporaryDirectory("no-start")
            defer { try? FileManager.default.removeItem(at: directory) }
            let scenario = try Self.write(
                Self.scenario(tickInterval: 5, faults: "[faults]\nomit_run_start = true"), to: directory, name: "no-start.toml")
            let sim = try SimulatorProcess(
                arguments: [
                    "run", scenario, "--tcp", "0", "--speed", "60", "--answer-timeout", "0.5",
                    "--state", directory.appendingPathComponent("sim.state").path,
                ], workingDirectory: directory)
            let port = try #require(UInt16(try sim.waitForLine(prefix: "tcp: 127.0.0.1:")))
            let config = """
                format = 1
                [daemon]
                state_directory = "STATE"
                [[device]]
                name = "optia-1"
                transport = "tcp"
                host = "127.0.0.1"
                port = \(port)
                silence_timeout_s = 2
                reconnect_max_s = 1
                [api]
                listen = "127.0.0.1:0"
                """
            var daemon = try DaemonProcess(config: config, directory: directory)
            var base = try daemon.apiBase()

            // Watched from its first TICK, with the start's absence said as an alarm, and judged
            // against the profile's set point.
            try await eventuallyAsync("DATA_RUN_START_MISSING raised: \(daemon.failureText)", timeout: .seconds(30)) {
                try await Self.activeAlarm(base, "DATA_RUN_START_MISSING") != nil
            }
            let runID = try #require(try await Self.openRunID(base))
            var r = try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/watch")
            #expect(r.status == 200, "the run without RUN_START is watched: \(r)")
            try await eventuallyAsync("AC_RATIO raised without RUN_START: \(daemon.failureText)", timeout: .seconds(60)) {
                try await Self.activeAlarm(base, "AC_RATIO") != nil
            }

            // The separator goes silent (stopped, its socket still open): the age of its last byte
            // grows, STALE_TELEMETRY is raised, and the link is down without coming "up" again on
            // each reopen of a silent socket.
            // LINK_DOWN rows before the silence (a slow commit on a loaded machine may have made one).
            let linkDownBefore = try await Self.alarms(base, state: "all").filter { $0["code"] as? String == "LINK_DOWN" }.count
            kill(sim.process.processIdentifier, SIGSTOP)
            try await eventuallyAsync("the last byte ages while the line is silent", timeout: .seconds(30)) {
                let r = try await HTTP.request("GET", base + "/api/v1/devices")
                return ((r.data as? [[String: Any]])?.first?["last_activity_age_seconds"] as? Double ?? 0) > 5
            }
            try await eventuallyAsync("STALE_TELEMETRY while the line is silent: \(daemon.failureText)", timeout: .seconds(40)) {
                try await Self.activeAlarm(base, "STALE_TELEMETRY") != nil
            }
            try await eventuallyAsync("LINK_DOWN after the silence timeout", timeout: .seconds(30)) {
                try await Self.activeAlarm(base, "LINK_DOWN") != nil
            }
            // Several reopen cycles of the silent socket (2 s silence timeout, 1 s backoff).
            try await Task.sleep(for: .seconds(7))
            #expect(try await Self.activeAlarm(base, "LINK_DOWN") != nil, "LINK_DOWN stays raised on a silent line")
            let linkDown = try await Self.alarms(base, state: "all").filter { $0["code"] as? String == "LINK_DOWN" }
            #expect(linkDown.count == linkDownBefore + 1, "no flapping: one LINK_DOWN, never cleared in between: \(linkDown)")
            r = try await HTTP.request("GET", base + "/api/v1/devices")
            let device = (r.data as? [[String: Any]])?.first ?? [:]
            #expect(device["link_state"] as? String != "up", "a silent line is not up: \(device)")

            kill(sim.process.processIdentifier, SIGCONT)
            try await eventuallyAsync("the link is heard again and LINK_DOWN clears", timeout: .seconds(30)) {
                let linkDown = try await Self.activeAlarm(base, "LINK_DOWN")
                let stale = try await Self.activeAlarm(base, "STALE_TELEMETRY")
                return linkDown == nil && stale == nil
            }

            // The daemon killed, then the cable pulled (the separator gone), then the daemon restarted:
            // the open run is watched again at once, LINK_DOWN is raised for it by the first failed
            // open, and it goes stale by the clock. Both are new rows: the earlier ones had cleared.
            let before = try await Self.alarms(base, state: "all")
            func count(_ rows: [[String: Any]], _ code: String) -> Int { rows.filter { $0["code"] as? String == code }.count }
            #expect(before.allSatisfy { ["LINK_DOWN", "STALE_TELEMETRY"].contains($0["code"] as? String ?? "") ? $0["state"] as? String == "cleared" : true })
            daemon.killHard()
            sim.killHard()
            daemon = try DaemonProcess(config: config, directory: directory)
            base = try daemon.apiBase()
            try await eventuallyAsync("the run is watched again after the restart", timeout: .seconds(15)) {
                (try await HTTP.request("GET", base + "/api/v1/runs/\(runID)/watch")).status == 200
            }
            for code in ["LINK_DOWN", "STALE_TELEMETRY"] {
                try await eventuallyAsync("\(code) raised after the restart with the cable out: \(daemon.failureText)", timeout: .seconds(40)) {
                    let after = try await Self.alarms(base, state: "all")
                    let active = try await Self.activeAlarm(base, code)
                    return count(after, code) == count(before, code) + 1 && active != nil
                }
            }
            // Each condition once: nothing raised twice by the rebuilt watcher.
            let active = try await Self.alarms(base)
            for code in Set(active.compactMap { $0["code"] as? String }) {
                #expect(active.filter { $0["code"] as? String == code }.count == 1, "\(code): \(active)")
            }
            try daemon.stop()
        }

        // MARK: A full disk

        @Test(
            "a full store volume raises the store alarm (API, metric, journal once), alarms still reach the stream, nothing is lost",
            .enabled(if: getuid() == 0, "mounts a small tmpfs: needs root, as CI runs"))
        func fullDisk() async throws {
            let directory = try Paths.temporaryDirectory("full-disk")
            let volume = directory.appendingPathComponent("volume")
            try FileManager.default.createDirectory(at: volume, withIntermediateDirectories: true)
            let mounted = Process()
            mounted.executableURL = URL(fileURLWithPath: "/bin/mount")
            mounted.arguments = ["-t", "tmpfs", "-o", "size=24m", "tmpfs", volume.path]
            try mounted.run()
            mounted.waitUntilExit()
            try #require(mounted.terminationStatus == 0, "mount -t tmpfs failed although running as root")
            defer {
                let unmount = Process()
                unmount.executableURL = URL(fileURLWithPath: "/bin/umount")
                unmount.arguments = ["-l", volume.path]
                try? unmount.run()
                unmount.waitUntilExit()
                try? FileManager.default.removeItem(at: directory)
            }
            let database = volume.appendingPathComponent("apheresisd.sqlite").path
            let daemon = try DaemonProcess(
                config: """
                    format = 1
                    [daemon]
                    state_directory = "STATE"
                    database = "\(database)"
                    store_reserve_mib = 2
                    [[device]]
                    name = "optia-sim"
                    transport = "simulator"
                    scenario = "\(Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path)"
                    speed = 60
                    [api]
                    listen = "127.0.0.1:0"
                    """, directory: directory)
            let base = try daemon.apiBase()
            try await eventuallyAsync("messages stored: \(daemon.failureText)", timeout: .seconds(30)) {
                let r = try await HTTP.request("GET", base + "/api/v1/devices")
                return ((r.data as? [[String: Any]])?.first?["messages_stored"] as? Int ?? 0) > 10
            }
            let url = URL(string: base)!
            let stream = try EventStreamReader(host: url.host!, port: url.port!, path: "/api/v1/stream")
            defer { stream.close() }

            // Fill the volume to 1 MiB free: below the 2 MiB reserve.
            var fs = statvfs()
            #expect(statvfs(volume.path, &fs) == 0)
            let free = Int(fs.f_bavail) * Int(fs.f_frsize)
            let filler = volume.appendingPathComponent("filler")
            let fillerSize = max(0, free - 1_048_576)
            #expect(FileManager.default.createFile(atPath: filler.path, contents: Data(count: fillerSize)))

            try await eventuallyAsync("the store alarm in the API: \(daemon.failureText)", timeout: .seconds(30)) {
                guard let a = try await Self.activeAlarm(base, "STORE_WRITE_FAILED") else { return false }
                return a["scope"] as? String == "daemon" && (a["message"] as? String ?? "").contains("refuses writes")
            }
            var metrics = try await HTTP.request("GET", base + "/metrics")
            #expect(metrics.text.contains("apheresisd_store_failing 1"), "\(metrics.text.prefix(3000))")
            // The telemetry stops reaching the store: the run goes stale, and that alarm is shown at
            // once on the stream although the store cannot take it yet.
            let stale = try stream.waitFor(timeout: .seconds(45)) { $0.name == "alarm" && $0.data.contains("\"STALE_TELEMETRY\"") }
            #expect(stale.data.contains("\"raised\""), "\(stale.data)")
            #expect(try stream.waitFor(timeout: .seconds(5)) { $0.name == "store" && $0.data.contains("failing") }.data.contains("refuses writes"))

            try FileManager.default.removeItem(at: filler)
            try await eventuallyAsync("the store alarm clears when space returns", timeout: .seconds(30)) {
                try await Self.activeAlarm(base, "STORE_WRITE_FAILED") == nil
            }
            metrics = try await HTTP.request("GET", base + "/metrics")
            #expect(metrics.text.contains("apheresisd_store_failing 0"))
            try await eventuallyAsync("the stale alarm is in the record and clears with telemetry", timeout: .seconds(30)) {
                let all = try await Self.alarms(base, state: "all").filter { $0["code"] as? String == "STALE_TELEMETRY" }
                return !all.isEmpty && all.allSatisfy { $0["state"] as? String == "cleared" }
            }
            let events = try await HTTP.request("GET", base + "/api/v1/events?limit=500")
            let kinds = (events.data as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
            #expect(kinds.contains("store_failed") && kinds.contains("store_recovered"), "\(kinds)")
            try daemon.stop()
            // The journal said it once, not once per refused message.
            #expect(daemon.stderrText.components(separatedBy: "raised STORE_WRITE_FAILED").count == 2, "\(daemon.failureText)")

            // Nothing lost, nothing twice: the stored sequence numbers are contiguous.
            let store = try await RecordStore.open(path: database)
            let sequences = try await store.messages().compactMap(\.sequence).sorted()
            try await store.close()
            #expect(!sequences.isEmpty && sequences == Array(sequences.first!...sequences.last!), "\(sequences)")
        }

        // MARK: An acknowledged latched alarm that comes back

        @Test("a separator alarm acknowledged and raised again is a new alarm: its own row and stream event")
        func acknowledgedLatchedAlarmComesBack() async throws {
            let directory = try Paths.temporaryDirectory("latched-again")
            defer { try? FileManager.default.removeItem(at: directory) }
            let scenario = try Self.write(
                Self.scenario(
                    tickInterval: 5,
                    timeline: """
                        [[timeline]]
                        at_min = 4
                        action = "device_alarm"
                        code = "AIR_DETECTED"
                        text = "Air in the return line"
                        [[timeline]]
                        at_min = 16
                        action = "device_alarm"
                        code = "AIR_DETECTED"
                        text = "Air in the return line"
                        """), to: directory, name: "air-twice.toml")
            let daemon = try DaemonProcess.simulated(scenario: scenario, speed: 20, in: directory)
            let base = try daemon.apiBase()
            try Integration.ProductWorkflowTests.addUsers(daemon, directory)
            let url = URL(string: base)!
            let stream = try EventStreamReader(host: url.host!, port: url.port!, path: "/api/v1/stream")
            defer { stream.close() }
            var first = 0
            try await eventuallyAsync("the first AIR_DETECTED: \(daemon.failureText)", timeout: .seconds(40)) {
                first = try await Self.activeAlarm(base, "DEVICE_AIR_DETECTED")?["id"] as? Int ?? 0
                return first > 0
            }
            let r = try await HTTP.request(
                "POST", base + "/api/v1/alarms/\(first)/acknowledge", json: ["reason": "line checked"],
                user: ("op1", Integration.ProductWorkflowTests.operatorPassword))
            #expect(r.status == 200, "\(r)")
            // A separator alarm ends with its acknowledgement.
            try await eventuallyAsync("the acknowledged separator alarm has ended", timeout: .seconds(10)) {
                try await Self.activeAlarm(base, "DEVICE_AIR_DETECTED") == nil
            }
            var second = 0
            try await eventuallyAsync("the second AIR_DETECTED is a new alarm: \(daemon.failureText)", timeout: .seconds(60)) {
                second = try await Self.activeAlarm(base, "DEVICE_AIR_DETECTED")?["id"] as? Int ?? 0
                return second > first
            }
            let event = try stream.waitFor(timeout: .seconds(10)) {
                $0.name == "alarm" && $0.data.contains("\"alarm_id\":\(second)") && $0.data.contains("\"raised\"")
            }
            #expect(event.data.contains("DEVICE_AIR_DETECTED"))
            try daemon.stop()
        }
    }
}

extension EventStreamReader {
    /// The first event so far (or within `timeout`) that matches.
    func waitFor(timeout: Duration, _ match: (Event) -> Bool) throws -> Event {
        var found: Event?
        try eventually("a matching stream event; seen: \(events.map { "\($0.name) \($0.data.prefix(160))" }.suffix(8))", timeout: timeout) {
            found = events.first(where: match)
            return found != nil
        }
        return found!
    }
}
