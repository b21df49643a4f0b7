import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The independent HL7 receiver (scripts/hl7/receiver.py: PyPI `hl7`'s MLLP listener, `hl7apy`'s
/// v2.6 validation) as a real child process. The venv is made by `make test` (`make hl7-venv`);
/// $APHERESISD_HL7_PYTHON names another interpreter that has both packages.
final class HL7Receiver {
    struct Received {
        var controlID: String
        var messageType: String
        var valid: Bool
        var errors: [String]
        var ack: String?
        var raw: String
    }

    let process = Process()
    let port: Int
    let logPath: URL
    let policyPath: URL
    let outPath: URL

    static var python: String {
        ProcessInfo.processInfo.environment["APHERESISD_HL7_PYTHON"]
            ?? Paths.packageRoot.appendingPathComponent(".build-hl7venv/bin/python").path
    }

    /// Starts on `port` (0: one the kernel picks), appending to `directory`/`name`.jsonl.
    /// `tls`: the receiver's certificate and key (PEM files): it listens with TLS.
    init(directory: URL, name: String, port: Int = 0, policy: [String: Any] = [:], tls: (certificate: String, key: String)? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw SimulatorFailure(
                description: "no Python with hl7 and hl7apy at \(Self.python): run `make hl7-venv` (make test does), or set APHERESISD_HL7_PYTHON")
        }
        logPath = directory.appendingPathComponent("\(name).jsonl")
        policyPath = directory.appendingPathComponent("\(name)-policy.json")
        outPath = directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(6)).out")
        _ = FileManager.default.createFile(atPath: outPath.path, contents: nil)
        try Self.write(policy, to: policyPath)
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [
            Paths.packageRoot.appendingPathComponent("scripts/hl7/receiver.py").path, "--port", String(port), "--log", logPath.path,
            "--policy", policyPath.path,
        ] + (tls.map { ["--tls-cert", $0.certificate, "--tls-key", $0.key] } ?? [])
        process.standardOutput = try FileHandle(forWritingTo: outPath)
        process.standardError = process.standardOutput
        try process.run()
        var found = 0
        let out = outPath
        try eventually("the HL7 receiver says where it listens", timeout: .seconds(30)) {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                let p = Int(line.dropFirst("listening on ".count))
            else { return false }
            found = p
            return true
        }
        self.port = found
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// The policy the receiver reads for its next message (written whole, then renamed over).
    func setPolicy(_ policy: [String: Any]) throws { try Self.write(policy, to: policyPath) }

    private static func write(_ policy: [String: Any], to path: URL) throws {
        let temporary = path.appendingPathExtension("new")
        try JSONSerialization.data(withJSONObject: policy).write(to: temporary)
        _ = rename(temporary.path, path.path)
    }

    /// Every message received so far, in order (a line being written is left for the next look).
    func received() -> [Received] {
        guard let data = try? Data(contentsOf: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Received(
                controlID: object["control_id"] as? String ?? "", messageType: object["message_type"] as? String ?? "",
                valid: object["valid"] as? Bool ?? false, errors: object["errors"] as? [String] ?? [], ack: object["ack"] as? String,
                raw: object["raw"] as? String ?? "")
        }
    }

    func killHard() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    var outputText: String { (try? String(contentsOf: outPath, encoding: .utf8)) ?? "" }
}

/// A TCP port nothing listens on now (bound, read, released).
func unusedTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SimulatorFailure(description: "socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw SimulatorFailure(description: "bind: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A certificate authority and receiver certificates made with the openssl command, in `directory`:
/// `ca.pem`; `receiver.pem`/`.key` for 127.0.0.1 and localhost; `named.pem`/`.key` for the name
/// receiver.test only; and a second, unrelated authority `other-ca.pem`.
func makeTestCertificates(in directory: URL) throws {
    func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SimulatorFailure(description: "openssl \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ["ca", "other-ca"] {
        try openssl(["req", "-x509"] + ec + ["-keyout", "\(name).key", "-out", "\(name).pem", "-days", "2", "-subj", "/CN=apheresisd test \(name)"])
    }
    for (name, names) in [("receiver", "IP:127.0.0.1, DNS:localhost"), ("named", "DNS:receiver.test")] {
        try openssl(["req"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=hl7 \(name)"])
        try "subjectAltName = \(names)\n".write(to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "\(name).pem", "-days", "2",
            "-extfile", "\(name).ext",
        ])
    }
}
