import Foundation
import PipelineTestSupport
import PostgresTestCluster
import RecordStore
import Testing

/// Issue 15 with real processes: two workstations (apheresisd, each with its own optia-sim over
/// TCP) replicate into one PostgreSQL cluster of the test's own; the central view
/// (`apheresisd --central`) shows both; PostgreSQL goes away for the middle of the runs while
/// both make products; a workstation is killed with SIGKILL while catching up. Afterwards every
/// table holds the same rows on both sides, the DINs are unique, and the audit heads are equal.
extension Integration {
    @Suite("Central PostgreSQL record", .serialized)
    struct CentralReplicationTests {
        static let speed = "400"

        static func workstationConfig(site: String, simPort: UInt16, cluster: PostgresTestCluster) -> String {
            """
            format = 1
            [daemon]
            state_directory = "STATE"
            [[device]]
            name = "optia-\(site)"
            transport = "tcp"
            host = "127.0.0.1"
            port = \(simPort)
            reconnect_initial_ms = 200
            reconnect_max_s = 1
            \(ProductWorkflowTests.productSection)
            [api]
            listen = "127.0.0.1:0"
            \(cluster.centralTOML(site: site, extra: "din_block_size = 4"))
            """
        }

        struct Workstation {
            let site: String
            let directory: URL
            var daemon: DaemonProcess
            let sim: SimulatorProcess
            let config: String
        }

        static func workstation(_ site: String, scenario: String, cluster: PostgresTestCluster, root: URL) throws -> Workstation {
            let directory = root.appendingPathComponent(site)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let sim = try SimulatorProcess(
                arguments: [
                    "run", Paths.scenarios.appendingPathComponent(scenario).path, "--tcp", "0", "--speed", speed,
                    "--answer-timeout", "0.5", "--state", directory.appendingPathComponent("sim.state").path,
                ], workingDirectory: directory)
            let port = try #require(UInt16(try sim.waitForLine(prefix: "tcp: 127.0.0.1:")))
            let config = workstationConfig(site: site, simPort: port, cluster: cluster)
            return Workstation(site: site, directory: directory, daemon: try DaemonProcess(config: config, directory: directory), sim: sim, config: config)
        }

        static func central(_ daemon: DaemonProcess) async throws -> [String: Any] {
            let reply = try await HTTP.request("GET", try daemon.apiBase() + "/api/v1/central")
            return reply.data as? [String: Any] ?? [:]
        }

            /// Lab user and product through apheresisctl, on the workstation's own store.
        static func makeProduct(_ w: Workstation) throws -> String {
            let config = ["--config", w.daemon.configPath.path]
            let sup = ProductWorkflowTests.supervisor
            let lab = ProductWorkflowTests.labPassword
            var r = try Ctl.run(["user", "add", "sup", "--full-name", "Sue Pervisor", "--role", "supervisor"] + config, stdin: [sup, sup], in: w.directory)
            #expect(r.status == 0, "\(r)")
            r = try Ctl.run(
                ["user", "add", "lab1", "--full-name", "Lab Technologist", "--role", "lab", "--by", "sup"] + config, stdin: [sup, lab, lab],
                in: w.directory)
            #expect(r.status == 0, "\(r)")
            let runID = try sqlite3(w.daemon.databasePath, "SELECT id FROM runs ORDER BY id LIMIT 1")
            r = try Ctl.run(["product", "create", "--run", runID, "--user", "lab1"] + config, stdin: [lab], in: w.directory)
            #expect(r.status == 0, "\(r)")
            return try sqlite3(w.daemon.databasePath, "SELECT din FROM products")
        }

        @Test("two workstations, one database: outage mid-run, products while away, kill -9 while catching up")
        func twoWorkstationsOneRecord() async throws {
            let cluster = try PostgresTestCluster.start()
            defer { cluster.destroy() }
            let root = try Paths.temporaryDirectory("central")
            // KEEP_CENTRAL_TEST=1 keeps the directory (the daemons' stderr) for a look after a failure.
            defer { if ProcessInfo.processInfo.environment["KEEP_CENTRAL_TEST"] == nil { try? FileManager.default.removeItem(at: root) } }
            var a = try Self.workstation("ws-a", scenario: "normal-boy-10y.toml", cluster: cluster, root: root)
            let b = try Self.workstation("ws-b", scenario: "normal-girl-15y.toml", cluster: cluster, root: root)
            let viewDirectory = root.appendingPathComponent("view")
            try FileManager.default.createDirectory(at: viewDirectory, withIntermediateDirectories: true)
            let view = try DaemonProcess(
                config: "format = 1\n[api]\nlisten = \"127.0.0.1:0\"\n" + cluster.centralTOML(site: "central-view"),
                directory: viewDirectory, arguments: ["--central"])
            let viewBase = try view.apiBase()

            // Both workstations' separators on one page, each up and running, with its link age.
            var lastReply = ""
            try await eventuallyAsync("the central view shows both separators up: \(lastReply)\n\(view.failureText)\nA: \(a.daemon.failureText)", timeout: .seconds(60)) {
                let reply = try await HTTP.request("GET", viewBase + "/api/v1/separators")
                lastReply = reply.description
                let rows = reply.data as? [[String: Any]] ?? []
                return Set(rows.compactMap { $0["site"] as? String }) == ["ws-a", "ws-b"]
                    && rows.allSatisfy { ($0["shown_state"] as? String) == "up" && ($0["run_state"] as? String) == "open" && $0["link_age_s"] is Double }
            }
            let workstations = try await HTTP.request("GET", viewBase + "/api/v1/workstations").data as? [[String: Any]] ?? []
            #expect(workstations.map { $0["site"] as? String } == ["ws-a", "ws-b"])
            #expect(workstations.allSatisfy { ($0["silent"] as? Bool) == false })
            // The unit's page in a real browser: both workstations, each separator's row up.
            let browser = try Chromium.launch()
            defer { browser.close() }
            let page = try browser.open(viewBase + "/")
            for site in ["ws-a", "ws-b"] {
                try page.waitFor(
                    "document.querySelector('section.workstation[data-site=\"\(site)\"] tr[data-separator=\"optia-\(site)\"] td.state-up') !== null",
                    timeout: .seconds(20), "\(site)'s separator shown up on the central page; console:\n\(page.consoleText)")
            }

            // PostgreSQL goes away in the middle of both runs.
            try cluster.stop()
            var lastStatus: [String: Any] = [:]
            try await eventuallyAsync("workstation A says the central database is down: \(lastStatus)\n\(a.daemon.failureText)", timeout: .seconds(30)) {
                let status = try await Self.central(a.daemon)
                lastStatus = status
                return (status["state"] as? String) == "down" && ((status["backlog"] as? Int) ?? 0) > 0
                    && ((status["last_error"] as? String) ?? "").isEmpty == false
            }
            let unreachable = try await HTTP.request("GET", viewBase + "/api/v1/separators")
            #expect(unreachable.status == 503, "\(unreachable)")
            // The page does not go on showing the last figures as if they were current.
            try page.waitFor(
                "document.getElementById('main').className === 'stale' && document.getElementById('status').textContent.includes('unreachable')",
                timeout: .seconds(20), "the central page dims its figures and says the database is unreachable")
            // The runs go on and end; the separators' side never waits for the central database.
            try a.sim.waitForExit()
            try b.sim.waitForExit()
            for w in [a, b] {
                let last = try StoredRun.lastSequence(w.sim)
                try await eventuallyAsync("\(w.site) stored its run to #\(last)", timeout: .seconds(60)) {
                    try sqlite3(w.daemon.databasePath, "SELECT count(*) FROM messages") == String(last)
                        && sqlite3(w.daemon.databasePath, "SELECT state FROM runs") == "closed"
                }
            }
            // Products on both workstations while the server is away: DINs from each one's reserved block.
            let dinA = try Self.makeProduct(a)
            let dinB = try Self.makeProduct(b)
            #expect(!dinA.isEmpty && !dinB.isEmpty && dinA != dinB)

            // It comes back; workstation A is killed while it catches up, and started again.
            try cluster.startServer()
            try await eventuallyAsync("workstation A replicates again", timeout: .seconds(30)) {
                let status = try await Self.central(a.daemon)
                return (status["state"] as? String) == "up"
            }
            a.daemon.killHard()
            a.daemon = try DaemonProcess(config: a.config, directory: a.directory)
            for w in [a, b] {
                try await eventuallyAsync("\(w.site) caught up: \(w.daemon.failureText)", timeout: .seconds(90)) {
                    let status = try await Self.central(w.daemon)
                    return (status["state"] as? String) == "up" && (status["backlog"] as? Int) == 0
                        && (status["confirmed_log_entry"] as? Int ?? 0) > 0
                }
            }

            // Nothing lost, nothing twice: every table the same on both sides.
            for w in [a, b] {
                for table in RecordStore.replicatedTables {
                    let here = try sqlite3(w.daemon.databasePath, "SELECT count(*) FROM \(table)")
                    let there = try cluster.psql("SELECT count(*) FROM \(table) WHERE site = '\(w.site)'")
                    if here != there {
                        let local = Set(try sqlite3(w.daemon.databasePath, "SELECT rowid FROM \(table)").split(separator: "\n").map(String.init))
                        let central = Set(try cluster.psql("SELECT local_id FROM \(table) WHERE site = '\(w.site)'").split(separator: "\n").map(String.init))
                        let missing = local.subtracting(central).compactMap { Int($0) }.sorted()
                        Issue.record(
                            "\(w.site) \(table): \(here) here, \(there) centrally; missing rowids \(missing.prefix(20))...\(missing.suffix(5)); extra \(central.subtracting(local).prefix(10))\n\(w.daemon.failureText)")
                    }
                }
                let sequences = try cluster.psql(
                    "SELECT count(*) = count(DISTINCT sequence) AND max(sequence) = count(*) FROM messages WHERE site = '\(w.site)'")
                #expect(sequences == "t")
                // The audit heads are equal, and the central copy verifies with the workstation's key.
                let head = try sqlite3(w.daemon.databasePath, "SELECT seq || '|' || hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                #expect(try cluster.psql("SELECT seq || '|' || hash FROM audit_log WHERE site = '\(w.site)' ORDER BY seq DESC LIMIT 1") == head)
                let verify = try Ctl.run(["audit", "verify", "--central", "--config", w.daemon.configPath.path], in: w.directory)
                #expect(verify.status == 0 && verify.stdout.contains("intact") && verify.stdout.contains("the same as this workstation's"), "\(verify)")
                let status = try Ctl.run(["central", "status", "--config", w.daemon.configPath.path], in: w.directory)
                #expect(status.status == 0 && status.stdout.contains("waiting: 0"), "\(status)")
            }
            // The two products' DINs are unique in the central record, each from its workstation's block.
            #expect(try cluster.psql("SELECT count(DISTINCT din) FROM products") == "2")
            for (site, din) in [("ws-a", dinA), ("ws-b", dinB)] {
                let inOwnBlock = try cluster.psql(
                    """
                    SELECT count(*) FROM products p JOIN din_blocks k ON k.site = p.site AND k.facility = p.facility
                        AND k.din_year = p.din_year AND p.din_sequence BETWEEN k.first_sequence AND k.last_sequence
                    WHERE p.site = '\(site)' AND p.din = '\(din)'
                    """)
                #expect(inOwnBlock == "1", "\(site)'s product \(din) is not from a block reserved for it")
            }
            try a.daemon.stop()
            try b.daemon.stop()
            try view.stop()
        }
    }
}
