import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where `verifyAudit` reads the journal's copies of the trail's heads from.
public enum AuditJournalSource: Sendable, Hashable {
    /// The journal is left out (library callers, tests of other things).
    case notConsulted
    /// `journalctl -o json` on this machine (what `apheresisctl audit verify` does).
    case journalctl
    /// A file of `journalctl -o json` lines: the journal exported elsewhere (`journalctl -o json
    /// AUDIT_STORE=<id> > FILE` on the machine the store came from), or a test's.
    case exportFile(String)
}

/// The journal as third witness of the trail's heads (after the database and the anchor file).
///
/// Each commit that appends audit entries logs its head with the fields AUDIT_SEQ, AUDIT_HASH,
/// AUDIT_AT_UNIX_MS, AUDIT_STORE and AUDIT_DATABASE (`Audit.logHead`; the journal log handler
/// upper-cases swift-log's metadata keys). journald keeps what it was given: someone who can
/// write the database and the anchor file as the service user cannot take a head back out of it.
/// So when the end of the trail is cut off together with the anchor file's last lines, the
/// journal still holds the lost heads.
enum AuditJournal {
    struct StoreIdentity: Sendable, Hashable {
        var storeID: String
        /// The database file, absolute and with symbolic links resolved.
        var databasePath: String
    }

    static func canonicalPath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// One head as the journal holds it, with who logged it (journald's trusted fields).
    struct Head: Sendable, Hashable {
        var seq: Int64
        var hash: String
        var storeID: String
        var databasePath: String?
        var atUnixMilliseconds: Int64?
        var command: String?
        var pid: String?
        var uid: String?

        var origin: String {
            var parts: [String] = []
            if let command { parts.append(command) }
            if let pid { parts.append("pid \(pid)") }
            if let uid { parts.append("uid \(uid)") }
            if let atUnixMilliseconds {
                parts.append(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(atUnixMilliseconds) / 1000)))
            }
            return parts.isEmpty ? "" : " (logged by \(parts.joined(separator: ", ")))"
        }
    }

    struct Reading: Sendable {
        /// This store's heads.
        var heads: [Head] = []
        /// Heads logged for this database file under another store identity.
        var otherStores: [Head] = []
        /// Why the journal was not consulted; nil when it was.
        var notConsulted: String?
    }

    static let fields = [
        "AUDIT_SEQ", "AUDIT_HASH", "AUDIT_STORE", "AUDIT_DATABASE", "AUDIT_AT_UNIX_MS", "_COMM", "_PID", "_UID",
    ]

    /// Reads the heads of `identity`'s store (and of its database file under other identities).
    /// Blocking (runs journalctl): call off the cooperative pool.
    static func read(_ source: AuditJournalSource, identity: StoreIdentity) -> Reading? {
        switch source {
        case .notConsulted:
            return nil
        case .exportFile(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                return Reading(notConsulted: "cannot read the journal export \(path)")
            }
            return parse(data, identity: identity, emptyReason: "the journal export \(path) holds no audit head of store \(identity.storeID)")
        case .journalctl:
            guard let executable = findExecutable("journalctl") else {
                return Reading(notConsulted: "journalctl not found")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "-o", "json", "--no-pager", "--quiet", "--output-fields=" + fields.joined(separator: ","),
                "AUDIT_STORE=\(identity.storeID)", "+", "AUDIT_DATABASE=\(identity.databasePath)",
            ]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            process.standardInput = FileHandle.nullDevice
            do {
                try process.run()
            } catch {
                return Reading(notConsulted: "cannot run \(executable): \(error)")
            }
            let data = output.fileHandleForReading.readDataToEndOfFile()
            let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let firstError = errorText.split(separator: "\n").first.map { String($0) }
            if process.terminationStatus != 0 {
                return Reading(notConsulted: "journalctl exited with status \(process.terminationStatus)\(firstError.map { ": \($0)" } ?? "")")
            }
            var reason = "the journal holds no audit head of store \(identity.storeID)"
            if let firstError { reason += " (journalctl: \(firstError))" }
            reason += "; reading the system journal needs root or membership of the systemd-journal or adm group"
            return parse(data, identity: identity, emptyReason: reason)
        }
    }

    /// `journalctl -o json` output: one object per line, field values as strings (values that are
    /// not text, or fields given twice, are skipped).
    static func parse(_ data: Data, identity: StoreIdentity, emptyReason: String) -> Reading {
        var reading = Reading()
        for line in data.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            func text(_ field: String) -> String? { object[field] as? String }
            guard let seqText = text("AUDIT_SEQ"), let seq = Int64(seqText), let hash = text("AUDIT_HASH"),
                let store = text("AUDIT_STORE")
            else { continue }
            let head = Head(
                seq: seq, hash: hash.lowercased(), storeID: store, databasePath: text("AUDIT_DATABASE"),
                atUnixMilliseconds: text("AUDIT_AT_UNIX_MS").flatMap { Int64($0) }, command: text("_COMM"), pid: text("_PID"),
                uid: text("_UID"))
            if store == identity.storeID {
                reading.heads.append(head)
            } else if head.databasePath == identity.databasePath {
                reading.otherStores.append(head)
            }
        }
        if reading.heads.isEmpty { reading.notConsulted = emptyReason }
        return reading
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/bin"] {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Adds a problem for every head the journal knows and the trail does not have (or has with
    /// another hash); returns the newest head of this store the journal holds.
    static func compare(
        _ reading: Reading, last: Int64, hashes: [Int64: String], problems: inout [AuditProblem],
        warnings: inout [String]
    ) -> Int64? {
        if let reason = reading.notConsulted {
            warnings.append("journal: not consulted (\(reason))")
        }
        for other in Set(reading.otherStores.map(\.storeID)).sorted() {
            let heads = reading.otherStores.filter { $0.storeID == other }
            let newest = heads.max { $0.seq < $1.seq }!
            warnings.append(
                "journal: this database file was also anchored as store \(other) (heads up to entry \(newest.seq)\(newest.origin)); "
                    + "if it was not replaced by another database on purpose, its audit_chain was rewritten")
        }
        guard !reading.heads.isEmpty else { return nil }
        let newest = reading.heads.max { $0.seq < $1.seq }!
        if newest.seq > last {
            problems.append(
                AuditProblem(
                    seq: newest.seq,
                    message: "journaled (hash \(newest.hash.prefix(16))...\(newest.origin)) but the trail ends at entry \(last): entries were cut off its end"))
        }
        var mismatched: [Head] = []
        var seen: Set<Int64> = []
        for head in reading.heads.sorted(by: { $0.seq < $1.seq }) where head.seq <= last {
            if hashes[head.seq] != head.hash, seen.insert(head.seq).inserted { mismatched.append(head) }
        }
        for head in mismatched.prefix(5) {
            problems.append(
                AuditProblem(
                    seq: head.seq,
                    message: "its hash is not the one the journal holds (\(head.hash.prefix(16))...\(head.origin)): the trail was rewritten"))
        }
        if mismatched.count > 5 {
            problems.append(AuditProblem(seq: nil, message: "\(mismatched.count - 5) more journaled heads differ from the trail"))
        }
        return newest.seq
    }
}
