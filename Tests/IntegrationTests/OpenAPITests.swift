import Foundation
import RecordStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The OpenAPI document (GET /api/v1/openapi.json) kept true against the real daemon: schemathesis
/// (PyPI, in the venv `make openapi-venv` makes; $APHERESISD_OPENAPI_PYTHON names another Python that
/// has it) generates requests from the document, sends them to one daemon with data (a closed run
/// with a released and printed product, a live run raising alarms), and checks every reply against
/// it: status, content type, headers, body schema, no 5xx, 405 for other methods, 401 without
/// credentials (`--checks all`, with the exceptions written in scripts/openapi/schemathesis.toml).
extension Integration {
    @Suite("OpenAPI document against the running daemon (schemathesis)", .serialized)
    struct OpenAPITests {
        static var python: String {
            ProcessInfo.processInfo.environment["APHERESISD_OPENAPI_PYTHON"]
                ?? Paths.packageRoot.appendingPathComponent(".build-openapivenv/bin/python").path
        }
        /// Examples per operation and phase; the run takes about 25 s at 10 (APHERESISD_OPENAPI_EXAMPLES for more).
        static var examples: String { ProcessInfo.processInfo.environment["APHERESISD_OPENAPI_EXAMPLES"] ?? "10" }
        /// Fixed by default so that a failure repeats; APHERESISD_OPENAPI_SEED for another.
        static var seed: String { ProcessInfo.processInfo.environment["APHERESISD_OPENAPI_SEED"] ?? "16" }

        @Test("schemathesis: every reply of every /api/v1 operation matches the document, no 5xx")
        func schemathesisAgainstTheDaemon() async throws {
            let schemathesis = URL(fileURLWithPath: Self.python).deletingLastPathComponent().appendingPathComponent("schemathesis").path
            guard FileManager.default.isExecutableFile(atPath: Self.python), FileManager.default.isExecutableFile(atPath: schemathesis) else {
                throw SimulatorFailure(
                    description: "no schemathesis beside \(Self.python): run `make openapi-venv` (make test does), or set APHERESISD_OPENAPI_PYTHON to a venv's python that has it")
            }
            let directory = try Paths.temporaryDirectory("openapi")
            defer { try? FileManager.default.removeItem(at: directory) }

            // A closed run from an export file, of a separator with its own serial (the live one
            // below plays under the scenarios' serial: their run ids must not meet).
            let exports = directory.appendingPathComponent("exports")
            try FileManager.default.createDirectory(at: exports, withIntermediateDirectories: true)
            let scenario = directory.appendingPathComponent("export-run.toml")
            try String(contentsOf: Paths.scenarios.appendingPathComponent("normal-boy-10y.toml"), encoding: .utf8)
                .replacingOccurrences(of: "serial = \"1OPT00417\"", with: "serial = \"1OPT00999\"")
                .write(to: scenario, atomically: true, encoding: .utf8)
            let sim = try SimulatorProcess(
                arguments: ["run", scenario.path, "--export-dir", exports.path, "--speed", "1000000", "--state", directory.appendingPathComponent("sim.state").path],
                workingDirectory: directory)
            try sim.waitForExit()

            let printer = try PrinterListener()
            let live = """
                [[device]]
                name = "optia-sim"
                transport = "simulator"
                scenario = "\(Paths.scenarios.appendingPathComponent("fault-ratio-drift.toml").path)"
                speed = 200
                """
            let daemon = try DaemonProcess(
                config: Integration.ProductWorkflowTests.config(exports: exports.path, printerPort: printer.port, extra: live), directory: directory)
            // The API listens once the store is open: only then can apheresisctl add the users.
            let base = try daemon.apiBase()
            try Integration.ProductWorkflowTests.addUsers(daemon, directory)
            let lab = ("lab1", Integration.ProductWorkflowTests.labPassword)

            // Data for every schema: a product with lab values, released, labels printed; an open run
            // with a sample and an alarm.
            try await eventuallyAsync("the exported run is stored and closed: \(daemon.failureText)", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/runs/1")
                return (r.data as? [String: Any])?["state"] as? String == "closed"
            }
            var r = try await HTTP.request("POST", base + "/api/v1/runs/1/product", user: lab)
            #expect(r.status == 201, "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/products/1/lab",
                json: ["wbc_giga_per_litre": 1.3, "cd3_percent": 44.8, "viability_percent": 96, "qc_millilitres": 5], user: lab)
            let summary = try #require((r.data as? [String: Any])?["release_summary_sha256"] as? String, "\(r)")
            r = try await HTTP.request(
                "POST", base + "/api/v1/products/1/release", json: ["meaning": "released", "release_summary_sha256": summary], user: lab)
            #expect(r.status == 201, "\(r)")
            r = try await HTTP.request("POST", base + "/api/v1/products/1/labels/print", user: lab)
            #expect(r.status == 201, "\(r)")
            try await eventuallyAsync("an alarm of the live run: \(daemon.failureText)", timeout: .seconds(60)) {
                let r = try await HTTP.request("GET", base + "/api/v1/alarms")
                return !((r.data as? [Any]) ?? []).isEmpty
            }

            // The stream is not for schemathesis (it never ends): its headers only.
            r = try await HTTP.request("HEAD", base + "/api/v1/stream")
            #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("text/event-stream") == true, "\(r)")
            r = try await HTTP.request("GET", base + "/api/v1/openapi.json")
            #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("application/json") == true && r.json["openapi"] as? String == "3.1.0")

            let output = directory.appendingPathComponent("schemathesis.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: schemathesis)
            process.arguments = [
                "--config-file", Paths.packageRoot.appendingPathComponent("scripts/openapi/schemathesis.toml").path, "--no-color",
                "run", base + "/api/v1/openapi.json", "--url", base, "--checks", "all", "--exclude-path", "/api/v1/stream",
                "--max-examples", Self.examples, "--seed", Self.seed, "--workers", "1", "--request-timeout", "20",
                "--generation-database", "none",
            ]
            process.currentDirectoryURL = directory
            var environment = ProcessInfo.processInfo.environment
            environment["APHERESISD_OPENAPI_USER"] = "sup"
            environment["APHERESISD_OPENAPI_PASSWORD"] = Integration.ProductWorkflowTests.supervisor
            process.environment = environment
            process.standardOutput = try FileHandle(forWritingTo: output)
            process.standardError = process.standardOutput
            let started = ContinuousClock.now
            try process.run()
            let deadline = started + .seconds(240)
            while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            // The failures, else the end: schemathesis prints each with a curl line that repeats it.
            let report = text.range(of: "= FAILURES =").map { String(text[$0.lowerBound...].prefix(12_000)) } ?? String(text.suffix(6000))
            #expect(
                process.terminationReason == .exit && process.terminationStatus == 0,
                "schemathesis (seed \(Self.seed), \(ContinuousClock.now - started)) found replies that do not match the document:\n\(report)")
            #expect(text.contains("Operations:") && text.contains("Tested:"), "\(text.suffix(3000))")
            try daemon.stop()
        }
    }
}
