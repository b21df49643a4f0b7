import Crypto
import Foundation
import GRDB
import TextFormats

/// The audit trail: one entry per create, change, release, print and refusal, and one per run's
/// facts (patient, weight, RUN_START settings), chained by HMAC-SHA256 under the audit key
/// (entries written before schema v5: plain SHA-256, the legacy prefix).
///
/// Each entry's hash covers its own fields and the previous entry's hash, so changing, removing or
/// reordering an entry breaks the chain from there on; without the key the chain cannot be
/// recomputed. A record row changed behind the trail's back is caught by the second check of
/// `verifyAudit`: every audited row must equal the newest value its entries recorded. A trail cut
/// short at its end is caught by the anchor file (AuditAnchor.swift). See docs/products.md.
public struct AuditEntry: Hashable, Sendable, Codable {
    public var seq: Int64
    public var atUnixMilliseconds: Int64
    public var actor: String
    public var action: String
    public var entity: String
    public var entityID: String
    /// Canonical JSON of the row before the change (nil for a create or a refusal).
    public var oldValue: String?
    /// Canonical JSON of the row after the change (nil for a refusal).
    public var newValue: String?
    public var reason: String?
    public var previousHash: String
    public var hash: String
}

public struct AuditProblem: Hashable, Sendable, CustomStringConvertible {
    /// The first entry found wrong, when the problem is in the trail itself.
    public var seq: Int64?
    public var message: String
    public var description: String { seq.map { "audit entry \($0): \(message)" } ?? message }
}

public struct AuditVerification: Hashable, Sendable {
    public var entries: Int
    /// The hash of the last entry: written down elsewhere (a ticket, a log), it pins the whole trail.
    public var headHash: String
    /// Empty when the trail and the records agree. The first element is the first bad entry.
    public var problems: [AuditProblem]
    /// Not tampering, but worth a look: the anchor file is behind the trail (the process stopped
    /// between a commit and its anchor write; the next audited write re-anchors).
    public var warnings: [String] = []
    /// The newest head the anchor file holds; nil when it holds none.
    public var anchoredSeq: Int64? = nil
    /// The newest head of this store the journal holds; nil when the journal was not consulted or
    /// holds none.
    public var journaledSeq: Int64? = nil
    public var isIntact: Bool { problems.isEmpty }
}

enum Audit {
    static let genesisHash = String(repeating: "0", count: 64)

    /// The tables the trail covers, with the entity name entries use and the columns recorded only
    /// by their SHA-256 (a password hash is not copied into the trail, but replacing it is caught).
    static let audited: [(table: String, entity: String, excluded: Set<String>)] = [
        ("users", "user", ["password_hash"]),
        ("products", "product", []),
        ("lab_results", "lab_result", []),
        ("computations", "computation", []),
        ("units", "unit", []),
        ("signatures", "signature", []),
        ("label_prints", "label_print", []),
        ("label_print_fates", "label_print_fate", []),
        ("run_preset_changes", "run_preset_change", []),
    ]

    /// The fields, each as its UTF-8 length, ':' and its bytes (a missing value as '-'): unambiguous,
    /// and independent of any JSON encoder's choices.
    static func fieldBytes(
        seq: Int64, at: Int64, actor: String, action: String, entity: String, entityID: String, old: String?, new: String?,
        reason: String?, previous: String
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        for field in [String(seq), String(at), actor, action, entity, entityID, old, new, reason, previous] as [String?] {
            if let field {
                bytes += Array("\(field.utf8.count):".utf8) + Array(field.utf8)
            } else {
                bytes += Array("-".utf8)
            }
        }
        return bytes
    }

    /// HMAC-SHA256 of the fields under `key`; plain SHA-256 when `key` is nil (the legacy scheme of
    /// entries before `audit_chain.keyed_from_seq`).
    static func hash(
        seq: Int64, at: Int64, actor: String, action: String, entity: String, entityID: String, old: String?, new: String?,
        reason: String?, previous: String, key: [UInt8]?
    ) -> String {
        let bytes = fieldBytes(
            seq: seq, at: at, actor: actor, action: action, entity: entity, entityID: entityID, old: old, new: new,
            reason: reason, previous: previous)
        if let key { return mac(bytes, key: key) }
        return Digest.sha256Hex(bytes)
    }

    /// `audit_chain.chain_mac`: HMAC-SHA256 under the key of the store's identity, where keyed
    /// entries begin and the key's identity, length-prefixed as entries' fields are.
    static func chainMAC(storeID: String, keyedFromSeq: Int64, keyID: String, key: [UInt8]) -> String {
        var bytes: [UInt8] = []
        for field in ["apheresisd audit chain v1", storeID, String(keyedFromSeq), keyID] {
            bytes += Array("\(field.utf8.count):".utf8) + Array(field.utf8)
        }
        return mac(bytes, key: key)
    }

    /// Hex HMAC-SHA256 of `bytes` under `key`.
    static func mac(_ bytes: [UInt8], key: [UInt8]) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: key))
        return Hex.encode(code.withUnsafeBytes { [UInt8]($0) })
    }


    /// Appends an entry in the caller's transaction; returns its sequence number.
    @discardableResult
    static func append(
        _ db: Database, at: Int64, actor: String, action: String, entity: String, entityID: String, old: String?,
        new: String?, reason: String?
    ) throws -> Int64 {
        let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        let seq: Int64 = (last?["seq"] ?? 0) + 1
        let previous: String = last?["hash"] ?? genesisHash
        let bytes = fieldBytes(
            seq: seq, at: at, actor: actor, action: action, entity: entity, entityID: entityID, old: old, new: new,
            reason: reason, previous: previous)
        // Keyed: the MAC is computed by the connection's function, which holds the store's key.
        guard let hash = try String.fetchOne(db, sql: "SELECT \(AuditContext.macFunctionName)(?)", arguments: [Data(bytes)]) else {
            throw RecordStoreError.corrupt("audit entry \(seq): the audit key gave no hash")
        }
        try db.execute(
            sql: """
                INSERT INTO audit_log (seq, at_unix_ms, actor, action, entity, entity_id, old_value, new_value, reason,
                                       previous_hash, hash)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [seq, at, actor, action, entity, entityID, old, new, reason, previous, hash])
        return seq
    }

    /// Audits the row just inserted or changed in `table` (one of `audited`).
    @discardableResult
    static func record(
        _ db: Database, table: String, id: Int64, action: String, actor: String, at: Int64, old: String? = nil,
        reason: String? = nil
    ) throws -> Int64 {
        guard let spec = audited.first(where: { $0.table == table }) else {
            preconditionFailure("\(table) is not an audited table")
        }
        let new = try rowJSON(db, table: table, id: id, excluded: spec.excluded)
        return try append(
            db, at: at, actor: actor, action: action, entity: spec.entity, entityID: String(id), old: old, new: new,
            reason: reason)
    }

    /// The row as canonical JSON (sorted keys); nil when there is no such row.
    static func rowJSON(_ db: Database, table: String, id: Int64, excluded: Set<String>) throws -> String? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM \(table) WHERE id = ?", arguments: [id]) else { return nil }
        return canonicalJSON(row, excluded: excluded)
    }

    static func canonicalJSON(_ row: Row, excluded: Set<String>) -> String {
        var object: [String: CanonicalValue] = [:]
        for (column, value) in row {
            if excluded.contains(column) {
                // Kept out of the trail, but pinned by its digest.
                if case .string(let text) = value.storage {
                    object[column + "_sha256"] = .text(Digest.sha256Hex(text))
                }
            } else {
                object[column] = CanonicalValue(value)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: (try? encoder.encode(object)) ?? Data(), as: UTF8.self)
    }

    enum CanonicalValue: Encodable {
        case null, integer(Int64), real(Double), text(String), blob(String)
        init(_ value: DatabaseValue) {
            switch value.storage {
            case .null: self = .null
            case .int64(let i): self = .integer(i)
            case .double(let d): self = .real(d)
            case .string(let s): self = .text(s)
            case .blob(let b): self = .blob(b.base64EncodedString())
            }
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .null: try c.encodeNil()
            case .integer(let i): try c.encode(i)
            case .real(let d): try c.encode(d)
            case .text(let s): try c.encode(s)
            case .blob(let s): try c.encode(["base64": s])
            }
        }
    }

    static func entry(_ row: Row) -> AuditEntry {
        AuditEntry(
            seq: row["seq"], atUnixMilliseconds: row["at_unix_ms"], actor: row["actor"], action: row["action"],
            entity: row["entity"], entityID: row["entity_id"], oldValue: row["old_value"], newValue: row["new_value"],
            reason: row["reason"], previousHash: row["previous_hash"], hash: row["hash"])
    }

    // MARK: Run facts

    /// The columns of a run a product is made from (patient identity, weight, the RUN_START settings
    /// with the total blood volume): audited as entity "run", one entry when the run is opened or
    /// its facts are completed (RUN_START adopted), never per tick. Columns the daemon keeps
    /// changing (state, end, completeness) are not facts.
    static let runFactColumns = [
        "id", "device_serial", "run_id", "procedure", "patient_id", "patient_family", "patient_given", "birth_date", "sex",
        "height_cm", "weight_kg", "start_device_ts", "settings",
    ]

    static func runFacts(_ db: Database, runRef: Int64) throws -> String? {
        let columns = runFactColumns.joined(separator: ", ")
        guard let row = try Row.fetchOne(db, sql: "SELECT \(columns) FROM runs WHERE id = ?", arguments: [runRef]) else {
            return nil
        }
        return canonicalJSON(row, excluded: [])
    }

    /// Appends an entry for the run's facts when they differ from its newest entry (or it has none),
    /// in the caller's transaction (the commit that wrote the run row).
    static func recordRunFacts(
        _ db: Database, runRef: Int64, at: Int64, action: String? = nil, reason: String? = nil
    ) throws {
        guard let facts = try runFacts(db, runRef: runRef) else { return }
        let newest = try String.fetchOne(
            db, sql: "SELECT new_value FROM audit_log WHERE entity = 'run' AND entity_id = ? ORDER BY seq DESC LIMIT 1",
            arguments: [String(runRef)])
        if let newest, newest == facts { return }
        try append(
            db, at: at, actor: "apheresisd", action: action ?? (newest == nil ? "run.open" : "run.facts"), entity: "run",
            entityID: String(runRef), old: newest, new: facts,
            reason: reason ?? (newest == nil ? nil : "completed from a later message of the run"))
    }

    static func weight(inFacts json: String) -> Double? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        return (object["weight_kg"] as? NSNumber)?.doubleValue
    }

    // MARK: Verification

    /// `key`: the store's audit key (nil: keyed entries cannot be checked, reported as such).
    /// `anchor`: the anchor file as read BEFORE this read transaction began, so that every head in
    /// it was committed before the snapshot verified here.
    /// `journal`: the journal's heads, read (like the anchor) before this read transaction began.
    static func verify(
        _ db: Database, expectedHead: String? = nil, key: [UInt8]? = nil, anchor: AnchorFile.Contents? = nil,
        journal: AuditJournal.Reading? = nil
    ) throws -> AuditVerification {
        var headSeen = false
        var problems: [AuditProblem] = []
        var warnings: [String] = []
        var expectedSeq: Int64 = 1
        var previous = genesisHash
        var count = 0
        let chain = try Row.fetchOne(db, sql: "SELECT store_id, keyed_from_seq, key_id, chain_mac FROM audit_chain WHERE id = 1")
        let storeID: String? = chain?["store_id"]
        let keyedFrom: Int64 = chain?["keyed_from_seq"] ?? 1
        let keyID: String? = chain?["key_id"]
        let recordedMAC: String? = chain?["chain_mac"]
        // Reported after the walk: `problems` empty is what lets the walk name the first bad entry.
        var chainProblems: [AuditProblem] = []
        if chain == nil {
            chainProblems.append(
                AuditProblem(seq: nil, message: "the audit_chain row is missing: where keyed entries begin was removed"))
        } else if let storeID {
            // The row says where keyed entries begin; only the key can have signed it.
            if let keyID {
                if let key, recordedMAC != chainMAC(storeID: storeID, keyedFromSeq: keyedFrom, keyID: keyID, key: key) {
                    chainProblems.append(
                        AuditProblem(
                            seq: nil,
                            message: "the audit_chain row (store \(storeID), keyed entries from \(keyedFrom), key id \(keyID)) is not signed by the audit key: it was rewritten without the key (the switch to keyed entries moved, or the store renamed)"))
                }
            } else {
                chainProblems.append(
                    AuditProblem(
                        seq: nil,
                        message: "the audit_chain row records no key: this store was never keyed, or audit_chain was reset to look so (every store at schema v5 or later is keyed at its first open)"))
            }
        }
        // Newest recorded value per (entity, id), for the second check.
        var newest: [String: (seq: Int64, value: String)] = [:]
        var hashes: [Int64: String] = [:]
        // Each run's facts entries in order, and each product's creation entry: product mass vs run weight.
        var runHistory: [String: [(seq: Int64, value: String)]] = [:]
        var productCreated: [String: Int64] = [:]
        let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit_log ORDER BY seq")
        while let row = try cursor.next() {
            let e = entry(row)
            count += 1
            if problems.isEmpty {
                if e.seq != expectedSeq {
                    problems.append(
                        AuditProblem(
                            seq: expectedSeq,
                            message: e.seq > expectedSeq
                                ? "missing (the trail jumps from entry \(expectedSeq - 1) to entry \(e.seq))"
                                : "out of order (entry \(e.seq) follows entry \(expectedSeq - 1))"))
                } else if e.previousHash != previous {
                    problems.append(
                        AuditProblem(
                            seq: e.seq,
                            message: "its previous_hash does not match entry \(e.seq - 1)'s hash (an entry before it was changed, removed or reordered)"))
                } else {
                    func recompute(_ key: [UInt8]?) -> String {
                        hash(
                            seq: e.seq, at: e.atUnixMilliseconds, actor: e.actor, action: e.action, entity: e.entity,
                            entityID: e.entityID, old: e.oldValue, new: e.newValue, reason: e.reason, previous: e.previousHash,
                            key: key)
                    }
                    if e.seq < keyedFrom {
                        if recompute(nil) != e.hash {
                            problems.append(
                                AuditProblem(seq: e.seq, message: "its content does not match its hash (the entry was changed)"))
                        }
                    } else if let key {
                        if recompute(key) != e.hash {
                            problems.append(
                                AuditProblem(
                                    seq: e.seq,
                                    message: recompute(nil) == e.hash
                                        ? "its hash is plain SHA-256, but keyed entries begin at entry \(keyedFrom): the chain was rewritten without the audit key"
                                        : "its content does not match its keyed hash (the entry was changed, or the chain recomputed without the audit key)"
                                ))
                        }
                    } else {
                        problems.append(AuditProblem(seq: e.seq, message: "keyed, and no audit key was given to check it"))
                    }
                }
            }
            expectedSeq = e.seq + 1
            previous = e.hash
            hashes[e.seq] = e.hash
            if e.hash == expectedHead { headSeen = true }
            if let value = e.newValue { newest["\(e.entity)#\(e.entityID)"] = (e.seq, value) }
            if e.entity == "run", let value = e.newValue { runHistory[e.entityID, default: []].append((e.seq, value)) }
            if e.entity == "product", e.action == "product.create" { productCreated[e.entityID] = e.seq }
        }
        problems += chainProblems
        // A head hash written down elsewhere pins the trail up to it: entries cut off the end of the
        // trail together with the rows they recorded are found only this way.
        if let expectedHead, !headSeen {
            problems.append(
                AuditProblem(
                    seq: nil,
                    message: "the head hash \(expectedHead) written down earlier is not in the trail: entries were removed from its end (or it belongs to another database)"))
        }
        // Every audited row must be what its newest entry says it is.
        for spec in audited {
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(spec.table) ORDER BY id")
            var seen: Set<String> = []
            for row in rows {
                let id: Int64 = row["id"]
                let key = "\(spec.entity)#\(id)"
                seen.insert(key)
                let current = canonicalJSON(row, excluded: spec.excluded)
                guard let recorded = newest[key] else {
                    problems.append(AuditProblem(seq: nil, message: "\(spec.entity) \(id) has no audit entry"))
                    continue
                }
                if recorded.value != current {
                    problems.append(
                        AuditProblem(
                            seq: nil,
                            message: "\(spec.entity) \(id) in table \(spec.table) differs from its newest audit entry \(recorded.seq)"))
                }
            }
            for (key, recorded) in newest where key.hasPrefix(spec.entity + "#") && !seen.contains(key) {
                problems.append(
                    AuditProblem(
                        seq: nil,
                        message: "audit entry \(recorded.seq) records \(key.replacingOccurrences(of: "#", with: " ")), which is missing from table \(spec.table)"))
            }
        }
        // Runs: their facts must be what the newest run entry says (every run has one from schema v5 on).
        for runRef in try Int64.fetchAll(db, sql: "SELECT id FROM runs ORDER BY id") {
            guard let recorded = newest["run#\(runRef)"] else {
                problems.append(AuditProblem(seq: nil, message: "run \(runRef) has no audit entry for its facts"))
                continue
            }
            if try runFacts(db, runRef: runRef) != recorded.value {
                problems.append(
                    AuditProblem(
                        seq: nil,
                        message: "run \(runRef) in table runs differs from its newest audit entry \(recorded.seq) (patient, weight or RUN_START settings changed behind the trail)"))
            }
        }
        // A product's patient mass is the run's audited weight when the product was made.
        for row in try Row.fetchAll(db, sql: "SELECT id, run_ref, patient_mass_kg FROM products ORDER BY id") {
            let id: Int64 = row["id"]
            let runRef: Int64 = row["run_ref"]
            guard let mass: Double = row["patient_mass_kg"], let history = runHistory[String(runRef)], !history.isEmpty else { continue }
            let created = productCreated[String(id)] ?? .max
            // Runs recorded before schema v5 were brought into the trail after their products: the first entry then.
            let basis = history.last(where: { $0.seq < created }) ?? history[0]
            let weight = weight(inFacts: basis.value)
            if weight.map({ abs($0 - mass) > 1e-9 * max(1, abs(mass)) }) ?? true {
                problems.append(
                    AuditProblem(
                        seq: nil,
                        message: "product \(id)'s patient mass \(mass) kg is not the weight of run \(runRef) in audit entry \(basis.seq) (\(weight.map { "\($0) kg" } ?? "none"))"))
            }
        }
        // The anchor file: every head in it must be in the trail with the same hash.
        var anchoredSeq: Int64?
        if let anchor {
            let keyedEntries = expectedSeq - 1 >= keyedFrom
            if let unreadable = anchor.unreadable {
                problems.append(AuditProblem(seq: nil, message: "anchor file: \(unreadable)"))
            } else if !anchor.exists {
                if keyID != nil || keyedEntries {
                    let which = keyedEntries ? "the heads of entries \(keyedFrom)...\(expectedSeq - 1)" : "the heads"
                    problems.append(
                        AuditProblem(
                            seq: nil,
                            message: "the anchor file \(anchor.path) is missing: \(which) written outside the database are gone (a keyed store's anchor file is never recreated; restore it from a backup)"))
                }
            } else {
                if anchor.storeID == nil {
                    problems.append(
                        AuditProblem(seq: nil, message: "the anchor file \(anchor.path) has no header line (it was truncated or rewritten)"))
                } else if let storeID, anchor.storeID != storeID {
                    problems.append(
                        AuditProblem(
                            seq: nil,
                            message: "the anchor file \(anchor.path) belongs to another record store (store \(anchor.storeID ?? "-"), this one is \(storeID))"))
                }
                if let fileKeyedFrom = anchor.keyedFromSeq, fileKeyedFrom != keyedFrom {
                    problems.append(
                        AuditProblem(
                            seq: nil,
                            message: "keyed entries begin at entry \(keyedFrom) in the database but at entry \(fileKeyedFrom) in the anchor file: the switch to keyed entries was moved"))
                }
                for line in anchor.badLines {
                    problems.append(AuditProblem(seq: nil, message: "the anchor file \(anchor.path) line \(line) is not a head"))
                }
                let last = expectedSeq - 1
                for head in anchor.heads {
                    if head.seq > last {
                        problems.append(
                            AuditProblem(
                                seq: head.seq,
                                message: "anchored (hash \(head.hash.prefix(16))...) but the trail ends at entry \(last): entries were cut off its end"))
                    } else if hashes[head.seq] != head.hash {
                        problems.append(
                            AuditProblem(
                                seq: head.seq,
                                message: "its hash is not the one anchored (\(head.hash.prefix(16))...): the trail was rewritten"))
                    }
                }
                anchoredSeq = anchor.heads.map(\.seq).max()
                if anchor.partialLastLine {
                    warnings.append("the anchor file \(anchor.path) ends in a partial line (its last write was cut short)")
                }
                if keyedEntries {
                    let behind = last - max(anchoredSeq ?? 0, keyedFrom - 1)
                    if behind > 0 {
                        warnings.append(
                            "anchor behind by \(behind) entr\(behind == 1 ? "y" : "ies") (\(last - behind + 1)...\(last) are not in \(anchor.path)): "
                                + "the writer stopped between a commit and its anchor write, or the file lost its last lines; "
                                + "the next audited write re-anchors. Compare with the journal (journalctl AUDIT_SEQ=\(last))")
                    }
                }
            }
        }
        // The journal: every head it holds for this store must be in the trail with the same hash.
        var journaledSeq: Int64?
        if let journal {
            journaledSeq = AuditJournal.compare(
                journal, last: expectedSeq - 1, hashes: hashes, problems: &problems, warnings: &warnings)
        }
        return AuditVerification(
            entries: count, headHash: count == 0 ? genesisHash : previous, problems: problems, warnings: warnings,
            anchoredSeq: anchoredSeq, journaledSeq: journaledSeq)
    }
}

extension RecordStore {
    /// Walks the whole trail and checks every audited row against it. Read-only. `expectedHead`: a head
    /// hash printed by an earlier verify; it must still be in the trail.
    /// Also checks the keyed chain with the store's key and every head in the anchor file.
    /// `journal`: where the journal's copies of the heads come from (`journalctl`, or a file of
    /// `journalctl -o json` lines); `.notConsulted` (the default) leaves the journal out.
    public func verifyAudit(expectedHead: String? = nil, journal: AuditJournalSource = .notConsulted) async throws
        -> AuditVerification
    {
        let path = audit.anchorPath
        let identity = audit.identity
        // The file and the journal first: every head in them was committed before the snapshot read below.
        let (anchor, journalReading) = try await Self.offPool {
            (AnchorFile.read(path), AuditJournal.read(journal, identity: identity))
        }
        let key = audit.context.key?.bytes
        return try await pool.read { db in
            try Audit.verify(db, expectedHead: expectedHead, key: key, anchor: anchor, journal: journalReading)
        }
    }

    /// Where this store anchors its trail's heads.
    public var auditAnchorPath: String { audit.anchorPath }

    /// Entries in order, optionally for one entity (e.g. "product", "7").
    public func auditEntries(entity: String? = nil, entityID: String? = nil) async throws -> [AuditEntry] {
        try await pool.read { db in
            var sql = "SELECT * FROM audit_log"
            var arguments: StatementArguments = []
            if let entity {
                sql += " WHERE entity = ?"
                arguments += [entity]
                if let entityID {
                    sql += " AND entity_id = ?"
                    arguments += [entityID]
                }
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY seq", arguments: arguments).map(Audit.entry)
        }
    }

    /// A refusal that must stay on record (a wrong password at a signature, a print before release).
    public func recordRefusal(
        actor: String, action: String, entity: String, entityID: String, reason: String, atUnixMilliseconds: Int64
    ) async throws {
        try await recordAuditEntry(
            actor: actor, action: action, entity: entity, entityID: entityID, reason: reason, atUnixMilliseconds: atUnixMilliseconds)
    }

    /// An entry about something that changes no audited row (a refusal, a sign-in), on the chain.
    public func recordAuditEntry(
        actor: String, action: String, entity: String, entityID: String, reason: String?, atUnixMilliseconds: Int64
    ) async throws {
        _ = try await pool.write { db in
            try Audit.append(
                db, at: atUnixMilliseconds, actor: actor, action: action, entity: entity, entityID: entityID, old: nil,
                new: nil, reason: reason)
        }
    }
}
