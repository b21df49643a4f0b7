import Foundation
import RecordStore
import SeparatorProtocol
import Testing

/// `apheresisctl audit verify` as a child process, with the audit key given by --audit-key and by
/// a systemd credential directory: the end of the trail cut off together with its record is
/// BROKEN (exit 2) through the anchor file alone; a key file others can read, or a wrong key, is
/// refused (exit 1).
extension Integration {
    @Suite("apheresisctl audit verify: keyed chain and anchor file")
    struct AuditAnchorCtlTests {
        static func writeKey(_ url: URL, seed: UInt8, mode: Int) throws {
            try Data((0..<32).map { UInt8($0) &+ seed }).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        }

        /// A store keyed from `directory/audit.key` with two audited entries (two users), closed.
        static func keyedStoreWithTwoUsers(in directory: URL, seed: UInt8) async throws -> (database: String, key: URL, anchorPath: String) {
            let database = directory.appendingPathComponent("state/apheresisd.sqlite").path
            let key = directory.appendingPathComponent("audit.key")
            try writeKey(key, seed: seed, mode: 0o600)
            let store = try await RecordStore.open(path: database, audit: AuditOptions(key: .file(key.path)))
            _ = try await store.createUser(
                name: "sup", fullName: "Sue", role: .supervisor, passwordHash: "x", createdBy: nil, reason: "bootstrap",
                atUnixMilliseconds: 1_795_000_000_000)
            _ = try await store.createUser(
                name: "lab1", fullName: "Lab", role: .lab, passwordHash: "y", createdBy: "sup", reason: nil,
                atUnixMilliseconds: 1_795_000_000_001)
            let anchorPath = store.auditAnchorPath
            try await store.close()
            return (database, key, anchorPath)
        }

        @Test("cut-off end found without --expect-head; key from --audit-key or $CREDENTIALS_DIRECTORY; bad keys refused")
        func verifyThroughTheAnchorFile() async throws {
            let directory = try Paths.temporaryDirectory("audit-anchor")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (database, key, _) = try await Self.keyedStoreWithTwoUsers(in: directory, seed: 3)
            let target = ["audit", "verify", "--database", database]

            var r = try Ctl.run(target + ["--audit-key", key.path], in: directory)
            #expect(r.status == 0 && r.stdout.contains("audit trail intact: 2 entries") && r.stdout.contains("anchored to entry 2"), "\(r)")

            // The same key as a systemd credential (what `systemd-run --property=LoadCredential=audit-key:...` gives).
            let credentials = directory.appendingPathComponent("credentials")
            try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: key, to: credentials.appendingPathComponent("audit-key"))
            r = try Ctl.run(target, in: directory, environment: ["CREDENTIALS_DIRECTORY": credentials.path])
            #expect(r.status == 0 && r.stdout.contains("audit trail intact"), "\(r)")

            // No key at all: the demo's key beside the store is not made up for a keyed trail.
            r = try Ctl.run(target, in: directory)
            #expect(r.status == 1 && r.stderr.contains("this store's trail was keyed with key id"), "\(r)")

            // A key file others can read, and another key: refused with what to do.
            let loose = directory.appendingPathComponent("loose.key")
            try Self.writeKey(loose, seed: 3, mode: 0o644)
            r = try Ctl.run(target + ["--audit-key", loose.path], in: directory)
            #expect(r.status == 1 && r.stderr.contains("has mode 644") && r.stderr.contains("chmod 600"), "\(r)")
            let other = directory.appendingPathComponent("other.key")
            try Self.writeKey(other, seed: 9, mode: 0o600)
            r = try Ctl.run(target + ["--audit-key", other.path], in: directory)
            #expect(r.status == 1 && r.stderr.contains("is not the key the store's trail was written with"), "\(r)")

            // The last entry removed together with the user it recorded: the chain is sound, the rows
            // match it, and only the anchor file (outside the database) tells.
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            sqlite.arguments = [
                database,
                "DROP TRIGGER audit_log_no_delete; DROP TRIGGER users_no_delete; DELETE FROM users WHERE name = 'lab1'; DELETE FROM audit_log WHERE seq = 2",
            ]
            try sqlite.run()
            sqlite.waitUntilExit()
            #expect(sqlite.terminationStatus == 0)
            r = try Ctl.run(target + ["--audit-key", key.path], in: directory)
            #expect(r.status == 2, "\(r)")
            #expect(r.stdout.contains("audit trail BROKEN: audit entry 2: anchored") && r.stdout.contains("entries were cut off its end"), "\(r)")
        }

        static func sqlite(_ database: String, _ sql: String) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
            process.arguments = [database, sql]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "sqlite3 \(sql)")
        }

        /// The end cut off the trail (with its record) AND off the anchor file: verify with the
        /// journal's heads (here an export of `journalctl -o json` lines: this container runs no
        /// journald) finds it; without a journal it says the journal was not consulted.
        @Test("the end cut off the trail and the anchor file is BROKEN through the journal's heads")
        func verifyThroughTheJournal() async throws {
            let directory = try Paths.temporaryDirectory("audit-journal")
            defer { try? FileManager.default.removeItem(at: directory) }
            let (database, key, anchorPath) = try await Self.keyedStoreWithTwoUsers(in: directory, seed: 5)

            // What the journal holds: the heads as the anchor file has them, with the store's identity
            // (from the anchor file's header) and the fields JournalLogHandler sends.
            let anchorText = try String(contentsOfFile: anchorPath, encoding: .utf8)
            let header = try #require(anchorText.split(separator: "\n").first)
            let storeID = try #require(header.split(separator: " ").first(where: { $0.hasPrefix("store=") })?.dropFirst(6))
            let headLines = anchorText.split(separator: "\n").dropFirst()
            var journal = ""
            for line in headLines {
                var object = ["SYSLOG_IDENTIFIER": "apheresisd", "_COMM": "apheresisd", "_PID": "321", "_UID": "998", "AUDIT_STORE": String(storeID)]
                for field in line.split(separator: " ") {
                    let parts = field.split(separator: "=", maxSplits: 1)
                    let name = ["seq": "AUDIT_SEQ", "hash": "AUDIT_HASH", "at": "AUDIT_AT_UNIX_MS"][String(parts[0])]!
                    object[name] = String(parts[1])
                }
                journal += String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self) + "\n"
            }
            let export = directory.appendingPathComponent("journal.json")
            try journal.write(to: export, atomically: true, encoding: .utf8)
            let target = ["audit", "verify", "--database", database, "--audit-key", key.path]

            var r = try Ctl.run(target + ["--journal-export", export.path], in: directory)
            #expect(r.status == 0 && r.stdout.contains("anchored to entry 2, journaled to entry 2"), "\(r)")

            try Self.sqlite(
                database,
                "DROP TRIGGER audit_log_no_delete; DROP TRIGGER users_no_delete; DELETE FROM users WHERE name = 'lab1'; DELETE FROM audit_log WHERE seq = 2")
            try (headLines.dropLast().reduce(String(header) + "\n") { $0 + $1 + "\n" }).write(
                toFile: anchorPath, atomically: false, encoding: .utf8)

            // Without the journal: the database and the anchor file agree again, "intact".
            r = try Ctl.run(target, in: directory)
            #expect(r.status == 0 && r.stdout.contains("audit trail intact: 1 entries"), "\(r)")
            #expect(r.stdout.contains("warning: journal: not consulted ("), "\(r)")
            // With it: BROKEN.
            r = try Ctl.run(target + ["--journal-export", export.path], in: directory)
            #expect(r.status == 2, "\(r)")
            #expect(r.stdout.contains("audit trail BROKEN: audit entry 2: journaled") && r.stdout.contains("entries were cut off its end"), "\(r)")
        }

        static func daemonConfig(_ audit: String) -> String {
            """
            format = 1
            [daemon]
            state_directory = "STATE"
            log_level = "info"
            [api]
            enabled = false
            \(audit)
            [[device]]
            name = "optia-test"
            transport = "pty"
            path = "/nonexistent/apheresisd-test-pty"
            """
        }

        /// An `[audit] anchor_file` the service cannot create (ProtectSystem=strict without
        /// ReadWritePaths=; /sys here): exit 78 naming the path and what to do.
        @Test("an anchor file in a read-only place refuses the start with exit 78 and ReadWritePaths=")
        func anchorFileInAReadOnlyPlace() throws {
            let directory = try Paths.temporaryDirectory("audit-anchor-ro")
            defer { try? FileManager.default.removeItem(at: directory) }
            let anchor = "/sys/apheresisd-test-\(UUID().uuidString.prefix(8))/heads.log"
            let daemon = try DaemonProcess(config: Self.daemonConfig("[audit]\nanchor_file = \"\(anchor)\""), directory: directory)
            try eventually("apheresisd exits: \(daemon.failureText)", timeout: .seconds(30)) { !daemon.process.isRunning }
            let text = daemon.stderrText
            #expect(daemon.process.terminationStatus == 78, "\(text)")
            #expect(text.contains(anchor) && text.contains("ReadWritePaths="), "\(text)")
            #expect(!text.contains("run as the service user"), "\(text)")
        }

        /// A keyed store whose anchor file is gone: the daemon refuses to start (78) and does not
        /// make a new one; apheresisctl's writes refuse too, and verify reports it.
        @Test("a keyed store without its anchor file: the daemon exits 78 and recreates nothing")
        func missingAnchorFileRefusesTheDaemon() async throws {
            let directory = try Paths.temporaryDirectory("audit-anchor-missing")
            defer { try? FileManager.default.removeItem(at: directory) }
            let database = directory.appendingPathComponent("state/apheresisd.sqlite").path
            // The daemon's own default: the demo key beside the store, the anchor in audit-anchor/.
            let store = try await RecordStore.open(path: database)
            _ = try await store.createUser(
                name: "sup", fullName: "Sue", role: .supervisor, passwordHash: "x", createdBy: nil, reason: "bootstrap",
                atUnixMilliseconds: 1_795_000_000_000)
            let anchorPath = store.auditAnchorPath
            try await store.close()
            try FileManager.default.removeItem(atPath: anchorPath)

            let daemon = try DaemonProcess(config: Self.daemonConfig(""), directory: directory)
            try eventually("apheresisd exits: \(daemon.failureText)", timeout: .seconds(30)) { !daemon.process.isRunning }
            let text = daemon.stderrText
            #expect(daemon.process.terminationStatus == 78, "\(text)")
            #expect(text.contains("the audit anchor file \(anchorPath) is missing") && text.contains("Restore"), "\(text)")
            #expect(!FileManager.default.fileExists(atPath: anchorPath))

            let r = try Ctl.run(["audit", "verify", "--database", database], in: directory)
            #expect(r.status == 2 && r.stdout.contains("the anchor file \(anchorPath) is missing"), "\(r)")
            #expect(!FileManager.default.fileExists(atPath: anchorPath))
        }
    }
}
