import Crypto
import Foundation
import GRDB

/// The audit trail: one entry per create, change, release, print and refusal, chained by SHA-256.
///
/// Each entry's hash covers its own fields and the previous entry's hash, so changing, removing or
/// reordering an entry breaks the chain from there on. A record row changed behind the trail's back
/// (or a trail cut short at its end) is caught by the second check of `verifyAudit`: every audited row
/// must equal the newest value its entries recorded. See docs/products.md.
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
        ("run_preset_changes", "run_preset_change", []),
    ]

    /// SHA-256 over the fields, each as its UTF-8 length, ':' and its bytes (a missing value as '-'):
    /// unambiguous, and independent of any JSON encoder's choices.
    static func hash(
        seq: Int64, at: Int64, actor: String, action: String, entity: String, entityID: String, old: String?, new: String?,
        reason: String?, previous: String
    ) -> String {
        var bytes: [UInt8] = []
        for field in [String(seq), String(at), actor, action, entity, entityID, old, new, reason, previous] as [String?] {
            if let field {
                bytes += Array("\(field.utf8.count):".utf8) + Array(field.utf8)
            } else {
                bytes += Array("-".utf8)
            }
        }
        return hex(SHA256.hash(data: bytes))
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
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
        let hash = hash(
            seq: seq, at: at, actor: actor, action: action, entity: entity, entityID: entityID, old: old, new: new,
            reason: reason, previous: previous)
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
                    object[column + "_sha256"] = .text(hex(SHA256.hash(data: Array(text.utf8))))
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

    static func verify(_ db: Database, expectedHead: String? = nil) throws -> AuditVerification {
        var headSeen = false
        var problems: [AuditProblem] = []
        var expectedSeq: Int64 = 1
        var previous = genesisHash
        var count = 0
        // Newest recorded value per (entity, id), for the second check.
        var newest: [String: (seq: Int64, value: String)] = [:]
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
                    let recomputed = hash(
                        seq: e.seq, at: e.atUnixMilliseconds, actor: e.actor, action: e.action, entity: e.entity,
                        entityID: e.entityID, old: e.oldValue, new: e.newValue, reason: e.reason, previous: e.previousHash)
                    if recomputed != e.hash {
                        problems.append(
                            AuditProblem(seq: e.seq, message: "its content does not match its hash (the entry was changed)"))
                    }
                }
            }
            expectedSeq = e.seq + 1
            previous = e.hash
            if e.hash == expectedHead { headSeen = true }
            if let value = e.newValue { newest["\(e.entity)#\(e.entityID)"] = (e.seq, value) }
        }
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
        return AuditVerification(entries: count, headHash: count == 0 ? genesisHash : previous, problems: problems)
    }
}

extension RecordStore {
    /// Walks the whole trail and checks every audited row against it. Read-only. `expectedHead`: a head
    /// hash printed by an earlier verify; it must still be in the trail.
    public func verifyAudit(expectedHead: String? = nil) async throws -> AuditVerification {
        try await pool.read { db in try Audit.verify(db, expectedHead: expectedHead) }
    }

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
