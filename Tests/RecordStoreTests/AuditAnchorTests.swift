import Foundation
import GRDB
import Logging
import SeparatorProtocol
import Synchronization
import Testing

@testable import RecordStore

/// The keyed chain, its anchor file and journal line, legacy trails, key files and the run facts
/// (schema v5, docs/products.md): on real SQLite files, forged the way someone who can write the
/// database file (but has no key) would.
@Suite("Audit key and anchor")
struct AuditAnchorTests {
    static func anchorPath(_ dir: borrowing TempDirectory, _ name: String = "store.sqlite") -> String {
        dir.path + "/audit-anchor/\(name).heads"
    }

    /// Rewrites the file's trail as a forger would: unit 2's dose changed in its row and its entry,
    /// then every entry's hash recomputed (plain SHA-256 when `key` is nil).
    static func forge(_ file: String, key: [UInt8]?) throws {
        let queue = try DatabaseQueue(path: file)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_log_no_update; DROP TRIGGER units_no_update")
            try db.execute(sql: "UPDATE units SET cd3_cells = 99e6 WHERE id = 2")
            let unitJSON = try #require(try Audit.rowJSON(db, table: "units", id: 2, excluded: []))
            try db.execute(
                sql: "UPDATE audit_log SET new_value = ? WHERE entity = 'unit' AND entity_id = '2'", arguments: [unitJSON])
            var previous = Audit.genesisHash
            for row in try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY seq") {
                let e = Audit.entry(row)
                let hash = Audit.hash(
                    seq: e.seq, at: e.atUnixMilliseconds, actor: e.actor, action: e.action, entity: e.entity,
                    entityID: e.entityID, old: e.oldValue, new: e.newValue, reason: e.reason, previous: previous, key: key)
                try db.execute(
                    sql: "UPDATE audit_log SET previous_hash = ?, hash = ? WHERE seq = ?", arguments: [previous, hash, e.seq])
                previous = hash
            }
        }
        try queue.close()
    }

    // MARK: (a) a chain recomputed without the key

    @Test(arguments: ["plain SHA-256", "a wrong key"])
    func aChainRecomputedWithoutTheKeyIsBroken(_ how: String) async throws {
        let dir = try TempDirectory()
        let (store, _) = try await ProductStoreTests.fullTrail(dir)
        try await store.close()
        try Self.forge(dir.file(), key: how == "a wrong key" ? Array(repeating: 7, count: 32) : nil)
        // Even with the anchor file gone too, the chain itself gives it away (opened to verify:
        // an ordinary open refuses a keyed store without its anchor file).
        try FileManager.default.removeItem(atPath: Self.anchorPath(dir))
        let reopened = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        let v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(!v.isIntact)
        #expect(v.problems.first?.seq == 1, "\(v.problems)")
        let expected = how == "a wrong key" ? "does not match its keyed hash" : "plain SHA-256, but keyed entries begin at entry 1"
        #expect(v.problems.first?.message.contains(expected) == true, "\(v.problems)")
        #expect(v.problems.contains { $0.message.contains("anchor file") && $0.message.contains("is missing") }, "\(v.problems)")
    }

    // MARK: (b) the end cut off with its record

    @Test func theLastEntryDeletedWithItsRecordIsFoundByTheAnchorFile() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await ProductStoreTests.prepared(dir)
        _ = try await ProductStoreTests.product(store, run: runs[0])
        let before = try await store.verifyAudit()
        #expect(before.isIntact && before.warnings.isEmpty, "\(before)")
        #expect(before.anchoredSeq == Int64(before.entries))
        try await store.close()
        try ProductStoreTests.sqlite(
            dir.file(),
            ProductStoreTests.dropTriggers
                + "DROP TRIGGER products_no_delete; DELETE FROM products; DELETE FROM audit_log WHERE entity = 'product'")
        let tampered = try await RecordStore.open(path: dir.file())
        let v = try await tampered.verifyAudit()
        try await tampered.close()
        #expect(!v.isIntact)
        let cut = try #require(v.problems.first { $0.message.contains("entries were cut off its end") }, "\(v.problems)")
        #expect(cut.seq == Int64(before.entries), "\(cut)")
        #expect(v.problems.first?.description.contains("audit entry \(before.entries): anchored") == true, "\(v.problems)")
    }

    // MARK: (c) the anchor file missing, truncated, or behind after a crash

    /// Once keyed, a missing anchor file is never recreated: an ordinary open (the daemon's, a
    /// write of apheresisctl) refuses, naming the file and how to restore it; verify reports it.
    @Test func aMissingAnchorFileIsRefusedAtOpenAndBrokenInVerify() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await ProductStoreTests.prepared(dir, runs: 0)
        try await store.close()
        try FileManager.default.removeItem(atPath: Self.anchorPath(dir))
        let error = await #expect(throws: AuditAnchorError.self) { _ = try await RecordStore.open(path: dir.file()) }
        #expect(error?.kind == .tampered)
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("the audit anchor file \(Self.anchorPath(dir)) is missing") && text.contains("Restore"), "\(text)")
        #expect(text.contains("chattr +a") && text.contains("# apheresisd audit anchor v1 store="), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: Self.anchorPath(dir)))

        let reopened = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        let v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(v.problems.map(\.message).contains { $0.contains("the anchor file \(Self.anchorPath(dir)) is missing") }, "\(v.problems)")
        #expect(!FileManager.default.fileExists(atPath: Self.anchorPath(dir)))
    }

    /// Also for a keyed store with no keyed entry yet: its anchor file is not made up again either.
    @Test func aMissingAnchorFileOfAKeyedStoreWithoutKeyedEntriesIsRefusedToo() async throws {
        let dir = try TempDirectory()
        try await RecordStore.open(path: dir.file()).close()
        try FileManager.default.removeItem(atPath: Self.anchorPath(dir))
        await #expect(throws: AuditAnchorError.self) { _ = try await RecordStore.open(path: dir.file()) }
        #expect(!FileManager.default.fileExists(atPath: Self.anchorPath(dir)))
        let reopened = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        let v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(v.problems.map(\.message).contains { $0.contains("is missing: the heads written outside") }, "\(v.problems)")
    }

    // MARK: (c2) audit_chain rewritten or reset without the key

    /// The reviewer's attack: with write access to the database (not the key), drop the trigger, move
    /// `keyed_from_seq` past the last entry, recompute the chain with plain SHA-256, delete the anchor
    /// file. The row's MAC gives it away: refused at open, BROKEN in verify, no anchor file made.
    @Test func theSwitchMovedPastTheEndWithAPlainChainAndNoAnchorIsRefused() async throws {
        let dir = try TempDirectory()
        let (store, count) = try await ProductStoreTests.fullTrail(dir)
        try await store.close()
        try ProductStoreTests.sqlite(
            dir.file(), "DROP TRIGGER audit_chain_fixed; UPDATE audit_chain SET keyed_from_seq = \(count + 1)")
        try Self.forge(dir.file(), key: nil)
        try FileManager.default.removeItem(atPath: Self.anchorPath(dir))

        let error = await #expect(throws: AuditAnchorError.self) { _ = try await RecordStore.open(path: dir.file()) }
        #expect(error?.kind == .tampered)
        #expect(error.map { "\($0)" }?.contains("is not signed by the audit key") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: Self.anchorPath(dir)), "the anchor file must not be recreated")

        let reopened = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        let v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(!v.isIntact)
        #expect(
            v.problems.contains { $0.message.contains("audit_chain row") && $0.message.contains("is not signed by the audit key") },
            "\(v.problems)")
        #expect(v.problems.contains { $0.message.contains("anchor file") && $0.message.contains("is missing") }, "\(v.problems)")
        #expect(!FileManager.default.fileExists(atPath: Self.anchorPath(dir)))
    }

    /// audit_chain reset to "never keyed" (key id and MAC NULL) and a forged run row added: the next
    /// open must not take it for a first keyed open and sign the run with a `run.adopt` entry.
    @Test(arguments: ["anchor kept", "anchor deleted", "switch moved past the end, plain chain, anchor deleted"])
    func aResetAuditChainIsRefusedAndNothingIsAdopted(_ how: String) async throws {
        let dir = try TempDirectory()
        let (store, count) = try await ProductStoreTests.fullTrail(dir)
        try await store.close()
        let moved = how.hasPrefix("switch moved")
        try ProductStoreTests.sqlite(
            dir.file(),
            "DROP TRIGGER audit_chain_fixed; UPDATE audit_chain SET \(moved ? "keyed_from_seq = \(count + 1), " : "")key_id = NULL, chain_mac = NULL; "
                + "INSERT INTO runs (device_serial, run_id, procedure, opened_at_unix_ms, state, weight_kg) "
                + "VALUES ('\(Fixture.device.serialNumber)', 'FORGED-1', 'CMNC', 1, 'closed', 99)")
        if moved { try Self.forge(dir.file(), key: nil) }
        if how != "anchor kept" { try FileManager.default.removeItem(atPath: Self.anchorPath(dir)) }

        let error = await #expect(throws: AuditAnchorError.self) { _ = try await RecordStore.open(path: dir.file()) }
        let text = error.map { "\($0)" } ?? ""
        #expect(error?.kind == .tampered)
        #expect(text.contains("audit_chain says this store was never keyed") && text.contains("audit_chain was reset"), "\(text)")
        #expect(FileManager.default.fileExists(atPath: Self.anchorPath(dir)) == (how == "anchor kept"))

        let reopened = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        let adopted = try await reopened.auditEntries(entity: "run").filter { $0.action == "run.adopt" }
        let v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(adopted.isEmpty, "forged run rows signed: \(adopted)")
        #expect(!v.isIntact)
        #expect(v.problems.contains { $0.message.contains("the audit_chain row records no key") }, "\(v.problems)")
    }

    /// An open that stopped after applying v5 and before keying (or after creating the anchor file,
    /// before recording the key): the next open keys the store; no trail is lost.
    @Test(arguments: [false, true])
    func anInterruptedFirstKeyingIsCompletedByTheNextOpen(_ anchorCreated: Bool) async throws {
        let dir = try TempDirectory()
        try Self.legacyStore(dir.file())
        let queue = try DatabaseQueue(path: dir.file())
        try Schema.migrator.migrate(queue)
        let (storeID, keyedFrom) = try await queue.read { db in
            let row = try #require(try Row.fetchOne(db, sql: "SELECT store_id, keyed_from_seq FROM audit_chain"))
            return (row["store_id"] as String, row["keyed_from_seq"] as Int64)
        }
        try queue.close()
        if anchorCreated {
            _ = try AnchorFile.create(
                Self.anchorPath(dir), header: AnchorFile.header(storeID: storeID, keyedFromSeq: keyedFrom), appendOnly: false)
        }
        let store = try await RecordStore.open(path: dir.file())
        let adopted = try await store.auditEntries(entity: "run")
        let v = try await store.verifyAudit()
        try await store.close()
        #expect(adopted.map(\.action) == ["run.adopt"], "\(adopted)")
        #expect(v.isIntact && v.warnings.isEmpty, "\(v)")
        #expect(v.anchoredSeq == 2)
    }

    // MARK: (c3) an anchor file that cannot be made

    /// `[audit] anchor_file` in a place the service cannot write (ProtectSystem=strict without
    /// ReadWritePaths=; /sys here, which not even root can write): a configuration error naming
    /// the path and what to do.
    @Test func anAnchorFileThatCannotBeCreatedIsAConfigurationError() async throws {
        let dir = try TempDirectory()
        let anchor = "/sys/apheresisd-test-\(UUID().uuidString.prefix(8))/store.heads"
        let error = await #expect(throws: AuditAnchorError.self) {
            _ = try await RecordStore.open(path: dir.file(), audit: AuditOptions(anchorPath: anchor))
        }
        #expect(error?.kind == .anchorNotWritable)
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(anchor) && text.contains("ReadWritePaths=\(RecordStore.directory(of: anchor))"), "\(text)")
        #expect(text.contains("use the default \(Self.anchorPath(dir))"), "\(text)")
        #expect(!text.contains("run as the service user"), "\(text)")
    }

    @Test func aTruncatedAnchorFileIsReported() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await ProductStoreTests.prepared(dir, runs: 0)
        try await store.close()
        let path = Self.anchorPath(dir)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("# apheresisd audit anchor v1 store="), "\(text)")

        // Cut mid-line: a partial last line, and the trail's end no longer anchored.
        try String(text.dropLast(10)).write(toFile: path, atomically: false, encoding: .utf8)
        var reopened = try await RecordStore.open(path: dir.file())
        var v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(v.warnings.contains { $0.contains("ends in a partial line") }, "\(v.warnings)")
        #expect(v.warnings.contains { $0.contains("anchor behind by 1 entry") }, "\(v.warnings)")

        // Cut to nothing: no header, so nothing ties it to this store.
        try "".write(toFile: path, atomically: false, encoding: .utf8)
        reopened = try await RecordStore.open(path: dir.file())
        v = try await reopened.verifyAudit()
        try await reopened.close()
        #expect(v.problems.contains { $0.message.contains("has no header line") }, "\(v.problems)")
    }

    /// The process died between a commit and its anchor write (simulated by taking the last line
    /// away): a warning, not tampering; the next audited write re-anchors.
    @Test func anAnchorBehindIsAWarningAndTheNextWriteCatchesUp() async throws {
        let dir = try TempDirectory()
        let (store, _, _) = try await ProductStoreTests.prepared(dir, runs: 0)
        let path = Self.anchorPath(dir)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        lines.removeLast()
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
        var v = try await store.verifyAudit()
        #expect(v.isIntact, "\(v.problems)")
        #expect(v.warnings.count == 1 && v.warnings[0].hasPrefix("anchor behind by 1 entry (2...2"), "\(v.warnings)")
        _ = try await store.disableUser(name: "lab1", by: "sup", reason: "left", atUnixMilliseconds: Fixture.now)
        v = try await store.verifyAudit()
        #expect(v.isIntact && v.warnings.isEmpty, "\(v)")
        #expect(v.anchoredSeq == 3)
        try await store.close()
    }

    // MARK: (d) the journal's copy

    final class CapturedLog: Sendable {
        struct Line: Sendable {
            var level: Logger.Level
            var message: String
            var metadata: [String: String]
        }
        let lines = Mutex<[Line]>([])
    }

    struct CapturingHandler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).mapValues { "\($0)" }
            log.lines.withLock {
                $0.append(CapturedLog.Line(level: event.level, message: event.message.description, metadata: fields))
            }
        }
    }

    @Test func everyAnchoredHeadIsAStructuredLogLine() async throws {
        let dir = try TempDirectory()
        let captured = CapturedLog()
        let logger = Logger(label: "test") { _ in CapturingHandler(log: captured) }
        let store = try await RecordStore.open(path: dir.file(), audit: AuditOptions(logger: logger))
        _ = try await store.createUser(
            name: "sup", fullName: "Sue", role: .supervisor, passwordHash: ProductStoreTests.hash, createdBy: nil,
            reason: nil, atUnixMilliseconds: Fixture.now)
        let head = try await store.verifyAudit().headHash
        try await store.close()
        let heads = captured.lines.withLock { $0 }.filter { $0.metadata["audit_seq"] != nil }
        #expect(heads.count == 1, "\(heads)")
        #expect(heads.first?.level == .notice)
        #expect(heads.first?.metadata["audit_seq"] == "1")
        #expect(heads.first?.metadata["audit_hash"] == head)
        #expect(heads.first?.metadata["audit_anchor"] == Self.anchorPath(dir))
        #expect(heads.first?.metadata["audit_store"] == store.audit.storeID && store.audit.storeID.count == 32)
        #expect(heads.first?.metadata["audit_database"] == AuditJournal.canonicalPath(dir.file()))
        #expect(heads.first?.message == "audit head: entry 1 hash \(head)")
    }

    // MARK: (d2) the journal as third witness

    /// The heads a logger captured, as `journalctl -o json` prints what JournalLogHandler sent
    /// (metadata keys upper-cased, journald's trusted fields added).
    static func journalExport(_ lines: [CapturedLog.Line]) throws -> String {
        try lines.filter { $0.metadata["audit_seq"] != nil }.map { line in
            var object = [
                "MESSAGE": line.message, "PRIORITY": "5", "SYSLOG_IDENTIFIER": "apheresisd", "_COMM": "apheresisd",
                "_PID": "4242", "_UID": "998",
            ]
            for (key, value) in line.metadata { object[key.uppercased()] = value }
            return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }.map { $0 + "\n" }.joined()
    }

    /// Two users, one commit each, their heads captured as the journal would keep them.
    static func journaledStore(_ dir: borrowing TempDirectory) async throws -> (RecordStore, [CapturedLog.Line]) {
        let captured = CapturedLog()
        let logger = Logger(label: "test") { _ in CapturingHandler(log: captured) }
        let store = try await RecordStore.open(path: dir.file(), audit: AuditOptions(logger: logger))
        _ = try await store.createUser(
            name: "sup", fullName: "Sue", role: .supervisor, passwordHash: ProductStoreTests.hash, createdBy: nil,
            reason: nil, atUnixMilliseconds: Fixture.now)
        _ = try await store.createUser(
            name: "lab1", fullName: "Lab", role: .lab, passwordHash: ProductStoreTests.hash, createdBy: "sup", reason: nil,
            atUnixMilliseconds: Fixture.now)
        return (store, captured.lines.withLock { $0 })
    }

    /// The last entry cut off the database together with its record AND the anchor file's last
    /// line: the two agree again; the journal still holds the lost head.
    @Test func theEndCutOffTheTrailAndTheAnchorFileIsFoundInTheJournal() async throws {
        let dir = try TempDirectory()
        let (store, lines) = try await Self.journaledStore(dir)
        let intact = try await store.verifyAudit()
        try await store.close()
        let export = dir.file("journal.json")
        // Another store's heads in the same journal do not mix in.
        let other = #"{"AUDIT_SEQ":"9","AUDIT_HASH":"\#(String(repeating: "f", count: 64))","AUDIT_STORE":"\#(String(repeating: "0", count: 32))","AUDIT_DATABASE":"/elsewhere/store.sqlite"}"#
        try (Self.journalExport(lines) + other + "\n").write(toFile: export, atomically: true, encoding: .utf8)

        try ProductStoreTests.sqlite(
            dir.file(),
            ProductStoreTests.dropTriggers + "DROP TRIGGER users_no_delete; DELETE FROM users WHERE name = 'lab1'; DELETE FROM audit_log WHERE seq = 2")
        let path = Self.anchorPath(dir)
        var kept = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        kept.removeLast()
        try (kept.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)

        let reopened = try await RecordStore.open(path: dir.file())
        let withoutJournal = try await reopened.verifyAudit()
        let v = try await reopened.verifyAudit(journal: .exportFile(export))
        try await reopened.close()
        // Cut consistently, the database and the anchor file agree: nothing inside them tells.
        #expect(withoutJournal.isIntact && withoutJournal.warnings.isEmpty && withoutJournal.anchoredSeq == 1, "\(withoutJournal)")
        #expect(!v.isIntact)
        let cut = try #require(v.problems.first { $0.message.hasPrefix("journaled") }, "\(v.problems)")
        #expect(cut.seq == 2 && cut.message.contains("hash \(intact.headHash.prefix(16))"), "\(cut)")
        #expect(cut.message.contains("logged by apheresisd, pid 4242, uid 998") && cut.message.contains("entries were cut off its end"), "\(cut)")
        #expect(v.journaledSeq == 2)
        #expect(!v.warnings.contains { $0.contains("journal:") }, "\(v.warnings)")
    }

    @Test func aJournaledHeadWithAnotherHashIsBrokenAndAnAgreeingJournalIsIntact() async throws {
        let dir = try TempDirectory()
        let (store, lines) = try await Self.journaledStore(dir)
        let export = dir.file("journal.json")
        try Self.journalExport(lines).write(toFile: export, atomically: true, encoding: .utf8)
        var v = try await store.verifyAudit(journal: .exportFile(export))
        #expect(v.isIntact && v.warnings.isEmpty && v.journaledSeq == 2, "\(v)")

        // The journal knows entry 1 with another hash than the trail has now.
        let first = try #require(lines.first { $0.metadata["audit_seq"] == "1" })
        var changed = first
        changed.metadata["audit_hash"] = String(repeating: "a", count: 64)
        try Self.journalExport([changed]).write(toFile: export, atomically: true, encoding: .utf8)
        v = try await store.verifyAudit(journal: .exportFile(export))
        #expect(v.problems.map(\.description) == ["audit entry 1: its hash is not the one the journal holds (aaaaaaaaaaaaaaaa... (logged by apheresisd, pid 4242, uid 998, \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(first.metadata["audit_at_unix_ms"].flatMap { Int64($0) } ?? 0) / 1000))))): the trail was rewritten"], "\(v.problems)")

        // The same database file journaled under another store identity: audit_chain replaced?
        var renamed = first
        renamed.metadata["audit_store"] = String(repeating: "1", count: 32)
        try Self.journalExport(lines + [renamed]).write(toFile: export, atomically: true, encoding: .utf8)
        v = try await store.verifyAudit(journal: .exportFile(export))
        #expect(v.isIntact && v.warnings.contains { $0.contains("this database file was also anchored as store 1111") }, "\(v)")
        try await store.close()
    }

    /// No journal to read (none in a container; no heads of this store; an empty export): a
    /// warning that says so, not a problem.
    @Test func aJournalWithoutHeadsIsNotConsultedAndSaysSo() async throws {
        let dir = try TempDirectory()
        let (store, _) = try await Self.journaledStore(dir)
        let export = dir.file("empty.json")
        try "".write(toFile: export, atomically: true, encoding: .utf8)
        var v = try await store.verifyAudit(journal: .exportFile(export))
        #expect(v.isIntact && v.journaledSeq == nil, "\(v)")
        #expect(v.warnings == ["journal: not consulted (the journal export \(export) holds no audit head of store \(store.audit.storeID))"], "\(v.warnings)")
        // journalctl here: not installed, no journal files, or none of this new store's heads.
        v = try await store.verifyAudit(journal: .journalctl)
        #expect(v.isIntact && v.warnings.count == 1 && v.warnings[0].hasPrefix("journal: not consulted ("), "\(v.warnings)")
        try await store.close()
    }

    // MARK: (e) a legacy trail

    /// A store as schema v4 left it: a user and its plain SHA-256 entry, a run without one.
    static func legacyStore(_ file: String) throws {
        let queue = try DatabaseQueue(path: file)
        try Schema.migrator.migrate(queue, upTo: "v4-product-trust")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO devices (serial, model, software_version, first_seen_at_unix_ms, last_seen_at_unix_ms)
                    VALUES ('1OPT00417', 'OPTIA', '1.0', 1, 1);
                    INSERT INTO runs (device_serial, run_id, procedure, opened_at_unix_ms, state, weight_kg)
                    VALUES ('1OPT00417', 'OLD-1', 'CMNC', 1, 'closed', 31.5);
                    INSERT INTO users (name, full_name, role, password_hash, created_at_unix_ms)
                    VALUES ('sup', 'Sue', 'supervisor', 'x', 1);
                    """)
            let json = try Audit.rowJSON(db, table: "users", id: 1, excluded: ["password_hash"])
            let hash = Audit.hash(
                seq: 1, at: 1, actor: "sup", action: "user.create", entity: "user", entityID: "1", old: nil, new: json,
                reason: nil, previous: Audit.genesisHash, key: nil)
            try db.execute(
                sql: """
                    INSERT INTO audit_log (seq, at_unix_ms, actor, action, entity, entity_id, old_value, new_value, reason,
                        previous_hash, hash)
                    VALUES (1, 1, 'sup', 'user.create', 'user', '1', NULL, ?, NULL, ?, ?)
                    """, arguments: [json, Audit.genesisHash, hash])
        }
        try queue.close()
    }

    @Test func aLegacyTrailStillVerifiesAndPlainEntriesAfterKeyedOnesAreRefused() async throws {
        let dir = try TempDirectory()
        try Self.legacyStore(dir.file())
        let store = try await RecordStore.open(path: dir.file())
        // The legacy prefix is entry 1; the run recorded before v5 was brought into the trail, keyed.
        var v = try await store.verifyAudit()
        #expect(v.isIntact && v.warnings.isEmpty, "\(v)")
        let adopted = try await store.auditEntries(entity: "run")
        #expect(adopted.map(\.action) == ["run.adopt"] && adopted.first?.seq == 2, "\(adopted)")
        _ = try await store.createUser(
            name: "lab1", fullName: "Lab", role: .lab, passwordHash: "y", createdBy: "sup", reason: nil,
            atUnixMilliseconds: Fixture.now)
        v = try await store.verifyAudit()
        #expect(v.isIntact && v.entries == 3, "\(v)")
        try await store.close()

        // A plain SHA-256 entry after the keyed ones, chained properly: refused.
        let queue = try DatabaseQueue(path: dir.file())
        try await queue.write { db in
            let head: String = try #require(try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE seq = 3"))
            let hash = Audit.hash(
                seq: 4, at: 5, actor: "mallory", action: "user.note", entity: "note", entityID: "1", old: nil, new: nil,
                reason: "plain", previous: head, key: nil)
            try db.execute(
                sql: """
                    INSERT INTO audit_log (seq, at_unix_ms, actor, action, entity, entity_id, previous_hash, hash, reason)
                    VALUES (4, 5, 'mallory', 'user.note', 'note', '1', ?, ?, 'plain')
                    """, arguments: [head, hash])
        }
        try queue.close()
        let reopened = try await RecordStore.open(path: dir.file())
        v = try await reopened.verifyAudit()
        #expect(v.problems.first?.seq == 4, "\(v.problems)")
        #expect(v.problems.first?.message.contains("plain SHA-256, but keyed entries begin at entry 2") == true, "\(v.problems)")
        try await reopened.close()

        // Moving the switch so that keyed entries pass as legacy ones: the anchor file's header disagrees.
        try ProductStoreTests.sqlite(
            dir.file(), "DROP TRIGGER audit_chain_fixed; DROP TRIGGER audit_log_no_delete; UPDATE audit_chain SET keyed_from_seq = 9; DELETE FROM audit_log WHERE seq = 4")
        await #expect(throws: AuditAnchorError.self) { _ = try await RecordStore.open(path: dir.file()) }
        let moved = try await RecordStore.open(path: dir.file(), audit: AuditOptions(verifyOnly: true))
        v = try await moved.verifyAudit()
        #expect(v.problems.contains { $0.message.contains("begin at entry 9 in the database but at entry 2 in the anchor file") }, "\(v.problems)")
        #expect(v.problems.contains { $0.message.contains("is not signed by the audit key") }, "\(v.problems)")
        try await moved.close()
    }

    // MARK: (f) key files

    static func writeKey(_ path: String, bytes: Int, mode: Int) throws {
        try Data((0..<bytes).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test func aKeyFileOthersCanReadOrThatIsTooShortIsRefused() async throws {
        let dir = try TempDirectory()
        let key = dir.file("audit.key")
        try Self.writeKey(key, bytes: 32, mode: 0o644)
        do {
            let error = await #expect(throws: (any Error).self) { _ = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(key))) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("has mode 644: readable or writable by group or others") && text.contains("chmod 600"), "\(text)")
        }
        try Self.writeKey(key, bytes: 16, mode: 0o600)
        do {
            let error = await #expect(throws: (any Error).self) { _ = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(key))) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("holds 16 bytes; an audit key needs at least 32"), "\(text)")
        }

        // A good key is used, and then no other: the store remembers which key its trail has.
        try Self.writeKey(key, bytes: 48, mode: 0o600)
        let store = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(key)))
        _ = try await store.createUser(
            name: "sup", fullName: "Sue", role: .supervisor, passwordHash: "x", createdBy: nil, reason: nil,
            atUnixMilliseconds: Fixture.now)
        try await store.close()
        do {
            let error = await #expect(throws: (any Error).self) { _ = try await RecordStore.open(path: dir.file()) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("does not exist, but this store's trail was keyed with key id"), "\(text)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/audit-key/audit.key"))
        let other = dir.file("other.key")
        try Self.writeKey(other, bytes: 40, mode: 0o400)
        do {
            let error = await #expect(throws: (any Error).self) { _ = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(other))) }
            let text = error.map { "\($0)" } ?? ""
            #expect(text.contains("is not the key the store's trail was written with"), "\(text)")
        }
    }

    /// `head -c 32 /dev/urandom` ends in a newline byte once in 256 keys (and in CR as often): all
    /// of its bytes are the key, never trimmed down to 31 and refused.
    @Test func aRandomKeyEndingInANewlineByteIsTheWholeKey() async throws {
        let dir = try TempDirectory()
        let key = dir.file("audit.key")
        var bytes = (0..<31).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        bytes.append(0x0A)
        #expect(FileManager.default.createFile(atPath: key, contents: Data(bytes), attributes: [.posixPermissions: 0o600]))
        let store = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(key)))
        _ = try await store.createUser(
            name: "sup", fullName: "Sue", role: .supervisor, passwordHash: "x", createdBy: nil, reason: nil,
            atUnixMilliseconds: Fixture.now)
        #expect(try await store.verifyAudit().isIntact)
        try await store.close()
        // The same 32 bytes without the last one are another (and too short) key.
        #expect(FileManager.default.createFile(atPath: key, contents: Data(bytes.dropLast()), attributes: [.posixPermissions: 0o600]))
        await #expect(throws: (any Error).self) { _ = try await RecordStore.open(path: dir.file(), audit: AuditOptions(key: .file(key))) }
    }

    @Test func theDemoKeyIsMadeOwnerOnlyInItsOwnDirectory() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.close()
        let key = dir.path + "/audit-key/audit.key"
        let file = try FileManager.default.attributesOfItem(atPath: key)
        let directory = try FileManager.default.attributesOfItem(atPath: dir.path + "/audit-key")
        #expect((file[.posixPermissions] as? Int) == 0o600)
        #expect((directory[.posixPermissions] as? Int) == 0o700)
        #expect((file[.size] as? Int) == 32)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/audit-key") == ["audit.key"])
    }

    @Test func theKeySourcesAreTriedInOrder() throws {
        let dir = try TempDirectory()
        #expect(AuditKeySource.resolve(keyFileOption: nil, configuredKeyFile: nil, environment: [:]) == .generated(nil))
        #expect(AuditKeySource.resolve(keyFileOption: nil, configuredKeyFile: "/k", environment: [:]) == .file("/k"))
        let environment = ["CREDENTIALS_DIRECTORY": dir.path]
        #expect(AuditKeySource.resolve(keyFileOption: nil, configuredKeyFile: "/k", environment: environment) == .file("/k"))
        _ = FileManager.default.createFile(atPath: dir.path + "/audit-key", contents: Data(count: 32))
        #expect(
            AuditKeySource.resolve(keyFileOption: nil, configuredKeyFile: "/k", environment: environment)
                == .credential(dir.path + "/audit-key"))
        #expect(AuditKeySource.resolve(keyFileOption: "/f", configuredKeyFile: "/k", environment: environment) == .file("/f"))
    }

    // MARK: (g) the run facts a product uses

    @Test func aRunsFactsAreAuditedOnceAndAChangedWeightIsCaught() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await ProductStoreTests.prepared(dir)
        let entries = try await store.auditEntries(entity: "run")
        #expect(entries.count == 1, "one entry per run, not one per tick: \(entries.map(\.action))")
        let open = try #require(entries.first)
        #expect(open.action == "run.open" && open.entityID == String(runs[0]) && open.actor == "apheresisd")
        #expect(open.newValue?.contains(#""weight_kg":60.5"#) == true, "\(open.newValue ?? "")")
        #expect(open.newValue?.contains(#""patient_id":"P-1""#) == true)
        #expect(open.newValue?.contains("TBV") == true || open.newValue?.contains("4200") == true, "\(open.newValue ?? "")")
        let product = try await ProductStoreTests.product(store, run: runs[0])
        #expect(product.patientMassKilograms == 60.5)
        #expect(try await store.verifyAudit().isIntact)
        try await store.close()

        // The run's weight changed in the file: the run no longer matches its entry.
        try ProductStoreTests.sqlite(dir.file(), "UPDATE runs SET weight_kg = 20 WHERE id = \(runs[0])")
        let tampered = try await RecordStore.open(path: dir.file())
        let v = try await tampered.verifyAudit()
        try await tampered.close()
        #expect(v.problems.map(\.message) == ["run \(runs[0]) in table runs differs from its newest audit entry \(open.seq) (patient, weight or RUN_START settings changed behind the trail)"])
    }

    @Test func aProductMadeWithAnotherMassThanTheAuditedWeightIsCaught() async throws {
        let dir = try TempDirectory()
        let (store, runs, _) = try await ProductStoreTests.prepared(dir)
        _ = try await store.createProduct(
            runRef: runs[0], facility: "G1234", dinYear: 26, dinFlags: "00", productDescriptionCode: "S9999",
            typeOfCollection: "1", productName: "MNC", collectedVolumeCubicMetres: 160e-6,
            collectedAtUnixMilliseconds: Fixture.now, patientMassKilograms: 20, by: "lab1", atUnixMilliseconds: Fixture.now,
            din: { _ in "G123426000001" })
        let v = try await store.verifyAudit()
        try await store.close()
        #expect(v.problems.map(\.message) == ["product 1's patient mass 20.0 kg is not the weight of run \(runs[0]) in audit entry 1 (60.5 kg)"])
    }

    @Test func aRunFirstSeenMidRunGetsItsFactsWhenItsStartArrives() async throws {
        let dir = try TempDirectory()
        let store = try await RecordStore.open(path: dir.file())
        try await store.commit(Fixture.telemetry(1, minutes: 5))
        try await store.commit(Fixture.telemetry(2, minutes: 10))
        try await store.commit(Fixture.runStart(3))
        try await store.commit(Fixture.telemetry(4, minutes: 15))
        let entries = try await store.auditEntries(entity: "run")
        #expect(entries.map(\.action) == ["run.open", "run.facts"], "\(entries)")
        #expect(entries.last?.oldValue?.contains(#""weight_kg":null"#) == true, "\(entries.last?.oldValue ?? "")")
        #expect(entries.last?.newValue?.contains(#""weight_kg":60.5"#) == true)
        #expect(try await store.verifyAudit().isIntact)
        try await store.close()
    }
}
