import Foundation
import Testing

/// The files under systemd/ in this repository.
enum RepositoryFiles {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let unit = root.appendingPathComponent("systemd/apheresisd.service")
}

struct ToolResult {
    var status: Int32
    var output: String
}

/// Runs a tool and returns its exit status and stdout+stderr. A missing tool
/// throws: these tests must fail, not skip, where systemd-analyze is absent.
func run(_ tool: String, _ arguments: [String]) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.environment = ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""]
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

let systemdAnalyze = "/usr/bin/systemd-analyze"

extension ProcessWideTests {
    @Suite struct UnitFile {
        @Test func systemdAnalyzeIsInstalled() {
            #expect(FileManager.default.isExecutableFile(atPath: systemdAnalyze), "systemd-analyze is required for the unit tests")
        }

        /// `verify` refuses a unit whose ExecStart binary does not exist, and the
        /// daemon is not installed at /usr/local/bin here: so a copy of the unit
        /// with ExecStart pointed at /bin/true is verified instead; everything
        /// else is the shipped file.
        @Test func verifyPasses() throws {
            let original = try String(contentsOf: RepositoryFiles.unit, encoding: .utf8)
            #expect(original.contains("ExecStart=/usr/local/bin/apheresisd --config /etc/apheresisd/apheresisd.toml"))
            let copy = original.split(separator: "\n", omittingEmptySubsequences: false).map {
                $0.hasPrefix("ExecStart=") ? "ExecStart=/bin/true --config /etc/apheresisd/apheresisd.toml" : String($0)
            }.joined(separator: "\n")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apheresisd-verify-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let unit = directory.appendingPathComponent("apheresisd.service")
            try copy.write(to: unit, atomically: true, encoding: .utf8)

            let result = try run(systemdAnalyze, ["verify", unit.path])
            #expect(result.status == 0, "\(result.output)")
            // verify exits 0 on unknown or misspelt keys but prints them: none allowed.
            let complaints = result.output.split(separator: "\n").filter { $0.contains("apheresisd.service") }
            #expect(complaints.isEmpty, "\(complaints)")
        }

        @Test func securityExposureIsAtMostOnePointFive() throws {
            let result = try run(systemdAnalyze, ["security", "--offline=yes", "--no-pager", RepositoryFiles.unit.path])
            let exposure = Self.overallExposure(result.output)
            #expect(exposure != nil, "no overall exposure in: \(result.output)")
            if let exposure {
                #expect(exposure <= 1.5, "\(result.output)")
            }
        }

        /// "→ Overall exposure level for apheresisd.service: 1.5 OK 🙂" (":-)" without UTF-8): the first number.
        static func overallExposure(_ output: String) -> Double? {
            for line in output.split(separator: "\n") where line.contains("Overall exposure level") {
                return line.split(separator: " ").lazy.compactMap { Double($0) }.first
            }
            return nil
        }

        @Test func parsesTheRating() {
            #expect(Self.overallExposure("x\n→ Overall exposure level for a.service: 1.5 OK :-)\n") == 1.5)
            #expect(Self.overallExposure("→ Overall exposure level for a.service: 9.6 UNSAFE 😨") == 9.6)
        }

        @Test func unitHasTheRequiredSettings() throws {
            let text = try String(contentsOf: RepositoryFiles.unit, encoding: .utf8)
            let lines = Set(text.split(separator: "\n").map(String.init))
            for required in [
                "Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "Restart=on-failure", "RestartSec=2s",
                "User=apheresisd", "Group=apheresisd", "SupplementaryGroups=dialout", "StateDirectory=apheresisd",
                "StateDirectoryMode=0750", "ConfigurationDirectory=apheresisd", "ProtectSystem=strict",
                "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw", "MemoryDenyWriteExecute=yes",
                "CapabilityBoundingSet=", "AmbientCapabilities=", "UMask=0027",
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=~@privileged @resources",
            ] {
                #expect(lines.contains(required), "missing \(required)")
            }
            // It talks to TCP bridges.
            #expect(!lines.contains { $0.hasPrefix("PrivateNetwork=") })
        }

        /// A bad configuration (exit 78, EX_CONFIG) is not restarted into the same mistake, and the
        /// unit names the documents the README installs under /usr/local/share/doc/apheresisd.
        @Test func noRestartLoopAndDocumentation() throws {
            let text = try String(contentsOf: RepositoryFiles.unit, encoding: .utf8)
            let lines = text.split(separator: "\n").map(String.init)
            #expect(lines.contains("RestartPreventExitStatus=78"), "\(lines)")
            let documents = lines.filter { $0.hasPrefix("Documentation=") }.flatMap { $0.dropFirst("Documentation=".count).split(separator: " ") }
            for name in ["README.md", "service.md", "configuration.md", "daemon.md", "api.md"] {
                #expect(documents.contains(Substring("file:///usr/local/share/doc/apheresisd/\(name)")), "\(documents)")
                let source = name == "README.md" ? RepositoryFiles.root.appendingPathComponent(name) : RepositoryFiles.root.appendingPathComponent("docs/\(name)")
                #expect(FileManager.default.fileExists(atPath: source.path), "the unit names \(name), which the repository lacks")
            }
            // systemd parses both: verify complains of an unparsable value or URL with "FILE:LINE:".
            let result = try run(systemdAnalyze, ["verify", "--man=no", RepositoryFiles.unit.path])
            #expect(!result.output.contains(RepositoryFiles.unit.path + ":"), "\(result.output)")
        }
    }
}
