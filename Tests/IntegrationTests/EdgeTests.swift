import DeviceLinks
import Foundation
import RecordStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 11, "Edges a user meets": the HTTP edges against one real daemon, the start-up refusals,
/// --version, the demo's state outside the working directory, and a password prompt interrupted
/// at a real terminal.
extension Integration {
    @Suite("Edges a user meets", .serialized)
    struct EdgeTests {
        // MARK: HTTP

        @Test("413, HEAD on every GET route, 405 with Allow, plain-worded body and query errors, run_id/run_ref")
        func httpEdges() async throws {
            let directory = try Paths.temporaryDirectory("edges-api")
            defer { try? FileManager.default.removeItem(at: directory) }
            let daemon = try DaemonProcess.simulated(
                scenario: Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, speed: 60, in: directory)
            let base = try daemon.apiBase()
            var runRef = 0
            try await eventuallyAsync("a run is open", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs")
                runRef = (r.data as? [[String: Any]])?.first?["id"] as? Int ?? 0
                return runRef > 0
            }

            // 413 with the limit, not a 500 naming a NIO type.
            let big = #"{"user":"x","password":""# + String(repeating: "a", count: 3 * 1024 * 1024) + #""}"#
            var r = try await HTTP.request("POST", base + "/api/v1/session", rawBody: big)
            #expect(r.status == 413 && r.errorMessage.contains("65536") && !r.text.contains("NIO"), "\(r)")
            #expect((r.json["error"] as? [String: Any])?["code"] as? String == "too_large", "\(r)")

            // HEAD: the GET's status and headers, no body, on every GET route.
            let gets = [
                "/", "/dashboard/dashboard.js", "/dashboard/nothing.css", "/metrics", "/api", "/api/v1/devices", "/api/v1/runs",
                "/api/v1/runs/\(runRef)", "/api/v1/runs/\(runRef)/samples", "/api/v1/runs/\(runRef)/watch", "/api/v1/runs/999999",
                "/api/v1/alarms", "/api/v1/events", "/api/v1/products", "/api/v1/products/1", "/api/v1/session", "/api/v1/nothing",
            ]
            for path in gets {
                let get = try await HTTP.request("GET", base + path)
                let head = try await HTTP.request("HEAD", base + path)
                #expect(head.status == get.status, "HEAD \(path): \(head.status), GET \(get.status)")
                #expect(head.body.isEmpty, "HEAD \(path) has a body: \(head)")
                #expect(head.header("Content-Type") == get.header("Content-Type"), "HEAD \(path): \(head.headers) vs \(get.headers)")
                #expect((head.header("Content-Length") == nil) == (get.header("Content-Length") == nil), "HEAD \(path): \(head.headers)")
                if path.hasPrefix("/dashboard/") || path == "/" || path == "/api" {
                    #expect(head.header("Content-Length") == get.header("Content-Length"), "HEAD \(path): \(head.headers)")
                    #expect(head.header("ETag") == get.header("ETag"), "HEAD \(path): \(head.headers)")
                }
            }
            r = try await HTTP.request("HEAD", base + "/api/v1/stream")
            #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("text/event-stream") == true && r.body.isEmpty, "\(r)")

            // 405 with Allow on a known path; 404 stays for unknown ones.
            r = try await HTTP.request("POST", base + "/api/v1/runs")
            #expect(r.status == 405 && r.header("Allow") == "GET, HEAD, OPTIONS", "\(r)")
            #expect((r.json["error"] as? [String: Any])?["code"] as? String == "method_not_allowed" && r.errorMessage.contains("POST"), "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/alarms/1/acknowledge")
            #expect(r.status == 405 && r.header("Allow") == "POST, OPTIONS", "\(r)")
            r = try await HTTP.request("PUT", base + "/api/v1/session")
            #expect(r.status == 405 && r.header("Allow") == "GET, HEAD, POST, DELETE, OPTIONS", "\(r)")
            r = try await HTTP.request("DELETE", base + "/metrics")
            #expect(r.status == 405 && r.header("Allow") == "GET, HEAD, OPTIONS", "\(r)")
            r = try await HTTP.request("OPTIONS", base + "/api/v1/runs/\(runRef)/presets")
            #expect(r.status == 204 && r.header("Allow") == "POST, OPTIONS", "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/nothing")
            #expect(r.status == 404, "\(r)")
            // A page of another site (DNS rebinding) learns nothing from 405s, 413s or parameter refusals:
            // another Host is answered 421 before any of them.
            r = try await HTTP.request("POST", base + "/api/v1/runs", headers: ["Host": "rebind.example"])
            #expect(r.status == 421 && r.header("Allow") == nil, "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/alarms?limt=5", headers: ["Host": "rebind.example"])
            #expect(r.status == 421, "\(r)")

            // Bodies that are not the JSON asked for: what and where in JSON's words, no Swift type.
            r = try await HTTP.request("POST", base + "/api/v1/session", rawBody: "[]")
            #expect(r.status == 422 && r.errorMessage == "the body: expected an object, found an array", "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/session", rawBody: #"{"user": 5, "password": "x"}"#)
            #expect(r.status == 422 && r.errorMessage == "user: expected a string, found a number", "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/session", rawBody: "{\"user\": \"a\",\n \"password\": x}")
            #expect(r.status == 422 && r.errorMessage.contains("line 2, column 14 (byte 27)") && r.errorMessage.contains("'x'"), "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/session", rawBody: #"{"user": "a""#)
            #expect(r.status == 422 && r.errorMessage.contains("ends before the JSON does"), "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/runs/\(runRef)/presets", rawBody: #"{"reason": "x", "changes": {"collect_target_ml": "lots"}}"#,
                user: ("nobody", "x"))
            #expect(r.status == 422 && r.errorMessage == "changes.collect_target_ml: expected a number, found a string", "\(r)")

            // Query parameters: numbers checked, unknown names refused, each naming the parameter and value.
            for (query, words) in [
                ("/api/v1/events?limit=abc", ["limit", "\"abc\""]), ("/api/v1/events?limit=-1", ["limit", "\"-1\""]),
                ("/api/v1/events?limit=100000", ["limit", "100000", "10000"]), ("/api/v1/events?run=RUN-1", ["run", "RUN-1"]),
                ("/api/v1/events?limt=5", ["limt", "limit"]), ("/api/v1/alarms?run=x", ["run", "\"x\""]),
                ("/api/v1/alarms?state=gone", ["state", "gone"]), ("/api/v1/runs?page=2", ["page", "takes none"]),
                ("/api/v1/runs/\(runRef)/samples?from_min=-3", ["from_min", "-3"]),
                ("/api/v1/runs/\(runRef)/samples?to_min=nan", ["to_min", "nan"]),
            ] {
                r = try await HTTP.request("GET", base + query)
                #expect(r.status == 400 && words.allSatisfy(r.errorMessage.contains), "\(query): \(r)")
            }
            r = try await HTTP.request("GET", base + "/api/v1/events?limit=5&run=\(runRef)")
            #expect(r.status == 200, "\(r)")

            // run_id is the separator's RUN- string in every reply; run_ref the store's integer.
            let events = try #require(r.data as? [[String: Any]], "\(r)")
            let ofRun = events.filter { $0["run_ref"] != nil && !($0["run_ref"] is NSNull) }
            #expect(!ofRun.isEmpty, "\(events)")
            for event in ofRun {
                #expect(event["run_ref"] as? Int == runRef && (event["run_id"] as? String)?.hasPrefix("RUN-") == true, "\(event)")
            }
            r = try await HTTP.request("GET", base + "/api/v1/runs/\(runRef)")
            #expect((r.data as? [String: Any])?["run_id"] as? String == ofRun.first?["run_id"] as? String, "\(r)")
            try daemon.stop()
        }

        // MARK: Start-up refusals

        @Test("a taken API port refuses the start before READY, in plain words, with exit 69")
        func takenPort() throws {
            let directory = try Paths.temporaryDirectory("edges-port")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (holder, port) = try Self.listeningSocket()
            defer { close(holder) }
            let notify = try NotifyListener(directory: directory)
            let daemon = try DaemonProcess(
                config: """
                    format = 1
                    [daemon]
                    state_directory = "STATE"
                    [[device]]
                    name = "optia-sim"
                    transport = "simulator"
                    scenario = "\(Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path)"
                    [api]
                    listen = "127.0.0.1:\(port)"
                    """, directory: directory, environment: ["NOTIFY_SOCKET": notify.path])
            try eventually("apheresisd exits: \(daemon.failureText)", timeout: .seconds(20)) { !daemon.process.isRunning }
            notify.drain(wait: .milliseconds(200))
            let text = daemon.stderrText
            #expect(daemon.process.terminationStatus == 69, "\(text)")
            #expect(
                text.contains(
                    "cannot listen on 127.0.0.1:\(port): address already in use (another apheresisd or program holds it); choose another with [api] listen"),
                "\(text)")
            #expect(text.contains("--api-listen"), "\(text)")
            #expect(!text.contains("bind(") && !text.contains("descriptor:"), "\(text)")
            #expect(!notify.assignments.contains("READY=1"), "\(notify.assignments)")
        }

        @Test("a second daemon on a store in use is refused with exit 69 naming the first; the first stores on; kill -9 leaves no stale lock")
        func secondDaemonOnOneStore() async throws {
            let directory = try Paths.temporaryDirectory("edges-two-daemons")
            defer { try? FileManager.default.removeItem(at: directory) }
            let first = try DaemonProcess.ratioDrift(in: directory)
            _ = try first.apiBase()
            let store = first.databasePath
            try await eventuallyAsync("the first daemon stores messages: \(first.failureText)") {
                try await StoredRun.count(database: store, serial: "1OPT00417") > 0
            }
            let notify = try NotifyListener(directory: directory)
            let second = try DaemonProcess(
                config: """
                    format = 1
                    [daemon]
                    state_directory = "STATE"
                    [[device]]
                    name = "second"
                    transport = "tcp"
                    host = "127.0.0.1"
                    port = 9
                    [api]
                    listen = "127.0.0.1:0"
                    """, directory: directory, environment: ["NOTIFY_SOCKET": notify.path])
            try eventually("the second daemon exits: \(second.failureText)", timeout: .seconds(20)) { !second.process.isRunning }
            notify.drain(wait: .milliseconds(200))
            let text = second.stderrText
            #expect(second.process.terminationStatus == 69, "\(text)")
            #expect(
                text.contains("another apheresisd, process \(first.process.processIdentifier) (apheresisd), is using the store \(store)"),
                "\(text)")
            #expect(text.contains("one daemon per state directory"), "\(text)")
            #expect(!notify.assignments.contains("READY=1"), "\(notify.assignments)")
            // The refused daemon stopped before opening the store; the first one goes on storing.
            #expect(!text.contains("store open:"), "\(text)")
            let before = try await StoredRun.count(database: store, serial: "1OPT00417")
            try await eventuallyAsync("the first daemon stores on after the refusal: \(first.failureText)") {
                try await StoredRun.count(database: store, serial: "1OPT00417") > before
            }
            // The lock dies with its holder: after kill -9 a new daemon takes the store at once.
            first.killHard()
            let third = try DaemonProcess.ratioDrift(in: directory)
            _ = try third.apiBase()
            #expect(third.process.isRunning, "\(third.failureText)")
            try third.stop()
        }

        @Test("a demo scenario that is missing or not a scenario refuses the start with exit 78, naming the path")
        func badDemoScenario() throws {
            let directory = try Paths.temporaryDirectory("edges-scenario")
            defer { try? FileManager.default.removeItem(at: directory) }
            let junk = directory.appendingPathComponent("junk.toml")
            try "format = \"optia-sim-scenario/1\"\n[settings\n".write(to: junk, atomically: true, encoding: .utf8)
            for (scenario, problem) in [("/nonexistent.toml", "no such file"), (junk.path, "not a valid scenario (line 2")] {
                let result = try Self.runDaemon(["--demo-scenario", scenario, "--api-listen", "127.0.0.1:0"], in: directory, timeout: .seconds(20))
                #expect(result.status == 78, "\(result)")
                #expect(result.stderr.contains(scenario) && result.stderr.contains(problem), "\(result)")
                #expect(!result.stderr.contains("ready"), "\(result)")
            }
        }

        // MARK: The demo's state

        @Test("the demo keeps its state under XDG_STATE_HOME, says where, and creates nothing in its working directory")
        func demoStateOutsideWorkingDirectory() throws {
            let directory = try Paths.temporaryDirectory("edges-demo")
            defer { try? FileManager.default.removeItem(at: directory) }
            let cwd = directory.appendingPathComponent("cwd")
            let stateHome = directory.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
            let err = directory.appendingPathComponent("demo.stderr")
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let process = Process()
            process.executableURL = DaemonProcess.executable
            process.arguments = [
                "--demo-scenario", Paths.scenarios.appendingPathComponent("normal-boy-10y.toml").path, "--api-listen", "127.0.0.1:0",
            ]
            process.currentDirectoryURL = cwd
            var environment = Self.cleanEnvironment()
            environment["HOME"] = directory.appendingPathComponent("home").path
            environment["XDG_STATE_HOME"] = stateHome.path
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let demoState = stateHome.appendingPathComponent("apheresisd-demo")
            let stderrText = { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }
            try eventually("the demo is ready and stores: \(stderrText())", timeout: .seconds(30)) {
                stderrText().contains("ready:") && FileManager.default.fileExists(atPath: demoState.appendingPathComponent("apheresisd.sqlite").path)
            }
            #expect(stderrText().contains(demoState.path), "the start names the state directory: \(stderrText())")
            Thread.sleep(forTimeInterval: 2)
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(stderrText())")
            let left = try FileManager.default.contentsOfDirectory(atPath: cwd.path)
            #expect(left.isEmpty, "the demo wrote into its working directory: \(left)")
        }

        // MARK: --version

        @Test("--version: the same version string from apheresisd, apheresisctl and optia-sim")
        func versions() throws {
            let directory = try Paths.temporaryDirectory("edges-version")
            defer { try? FileManager.default.removeItem(at: directory) }
            var outputs: [String] = []
            for executable in [DaemonProcess.executable, Ctl.executable, Paths.simulator] {
                let result = try Self.run(executable, ["--version"], in: directory, timeout: .seconds(20))
                #expect(result.status == 0, "\(executable.lastPathComponent): \(result)")
                outputs.append(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            #expect(Set(outputs).count == 1, "\(outputs)")
            let version = outputs[0]
            #expect(version.split(separator: ".").count == 3 && version.split(separator: ".").allSatisfy { Int($0) != nil }, "\(version)")
        }

        // MARK: The password prompt

        @Test("Ctrl-C at a password prompt puts the terminal's echo back and exits 130")
        func interruptedPasswordPrompt() async throws {
            let directory = try Paths.temporaryDirectory("edges-prompt")
            defer { try? FileManager.default.removeItem(at: directory) }
            let database = directory.appendingPathComponent("store.sqlite").path
            try await RecordStore.open(path: database).close()

            let pair = try PseudoTerminal.create()
            defer {
                close(pair.master)
                close(pair.keeper)
            }
            // The terminal as a login shell leaves it: cooked, echoing, Ctrl-C interrupting.
            let slave = open(pair.path, O_RDWR | O_NOCTTY)
            #expect(slave >= 0)
            defer { close(slave) }
            var settings = termios()
            tcgetattr(slave, &settings)
            settings.c_lflag |= tcflag_t(ECHO | ICANON | ISIG)
            settings.c_iflag |= tcflag_t(ICRNL)
            settings.c_oflag |= tcflag_t(OPOST | ONLCR)
            withUnsafeMutableBytes(of: &settings.c_cc) { $0[Int(VINTR)] = 3 }
            tcsetattr(slave, TCSANOW, &settings)

            // In a session of its own with the pty as its controlling terminal, so that Ctrl-C is a SIGINT.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
            process.arguments = [
                "-w", "-c", Ctl.executable.path, "user", "add", "sup", "--full-name", "Sue", "--role", "supervisor", "--database", database,
            ]
            process.currentDirectoryURL = directory
            process.environment = Self.cleanEnvironment()
            let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
            process.standardInput = terminal
            process.standardOutput = terminal
            process.standardError = terminal
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

            var seen = ""
            try eventually("the prompt: \(seen)", timeout: .seconds(20)) {
                seen += Self.readAvailable(pair.master)
                return seen.contains("New password for sup:")
            }
            func echoing() -> Bool {
                var now = termios()
                tcgetattr(pair.master, &now)
                return now.c_lflag & tcflag_t(ECHO) != 0
            }
            try eventually("echo is off at the prompt", timeout: .seconds(5)) { !echoing() }
            var interrupt: UInt8 = 3
            #expect(write(pair.master, &interrupt, 1) == 1)
            try eventually("apheresisctl ends on Ctrl-C: \(seen)", timeout: .seconds(10)) { !process.isRunning }
            process.waitUntilExit()
            #expect(echoing(), "the terminal was left without echo")
            #expect(process.terminationStatus == 130, "status \(process.terminationStatus) (\(process.terminationReason)): \(seen)")
        }

        // MARK: Helpers

        static func cleanEnvironment() -> [String: String] {
            var environment = ProcessInfo.processInfo.environment
            for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID", "LISTEN_FDS", "LISTEN_PID"] {
                environment[key] = nil
            }
            environment["OPTIA_SIM"] = Paths.simulator.path
            return environment
        }

        static func readAvailable(_ fd: Int32) -> String {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { return "" }
            let n = read(fd, &buffer, buffer.count)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        }

        /// A TCP socket listening on a port the kernel picks on 127.0.0.1.
        static func listeningSocket() throws -> (Int32, Int) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw SimulatorFailure(description: "cannot listen on 127.0.0.1: errno \(errno)") }
            return (fd, Int(UInt16(bigEndian: address.sin_port)))
        }

        static func runDaemon(_ arguments: [String], in directory: URL, timeout: Duration) throws -> CtlResult {
            var environment = cleanEnvironment()
            environment["XDG_STATE_HOME"] = directory.appendingPathComponent("state").path
            return try run(DaemonProcess.executable, arguments, in: directory, environment: environment, timeout: timeout)
        }

        static func run(
            _ executable: URL, _ arguments: [String], in directory: URL, environment: [String: String]? = nil, timeout: Duration
        ) throws -> CtlResult {
            let tag = UUID().uuidString.prefix(8)
            let out = directory.appendingPathComponent("run-\(tag).out")
            let err = directory.appendingPathComponent("run-\(tag).err")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.environment = environment ?? cleanEnvironment()
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
            let deadline = ContinuousClock.now + timeout
            while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                Issue.record("\(executable.lastPathComponent) \(arguments) did not finish within \(timeout)")
            }
            process.waitUntilExit()
            return CtlResult(
                status: process.terminationStatus, stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
        }
    }
}
