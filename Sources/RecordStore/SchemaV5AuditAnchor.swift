import GRDB

extension Schema {
    /// The migration's identifier (Schema.migrator); `open` compares the applied ones before and after.
    static let auditAnchorMigration = "v5-audit-anchor"

    /// v5: the keyed (HMAC) audit chain and its anchors.
    ///
    /// `audit_chain` (one row) says where keyed entries begin: entries before `keyed_from_seq` were
    /// written by schema < 5 with plain SHA-256 and stay verifiable as the legacy prefix; every entry
    /// from it on must be an HMAC-SHA256 under the audit key, so a plain entry there is a downgrade
    /// and is refused. The anchor file's header repeats `keyed_from_seq` and `store_id`, so that the
    /// switch cannot be moved inside the database alone. `key_id` identifies (does not reveal) the key
    /// the trail is written with; it is set by the first open with a key (only the open that applied
    /// this migration, or one that finds no keyed entry and no anchor file: AuditSetup.prepare),
    /// together with `chain_mac`, an HMAC under the key of (store_id, keyed_from_seq, key_id): the
    /// row cannot be rewritten (the switch moved, the store renamed) without the key. docs/products.md.
    static func v5(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE audit_chain (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    store_id TEXT NOT NULL,
                    keyed_from_seq INTEGER NOT NULL CHECK (keyed_from_seq >= 1),
                    key_id TEXT,
                    chain_mac TEXT,
                    created_at_unix_ms INTEGER NOT NULL
                ) STRICT;
                INSERT INTO audit_chain (id, store_id, keyed_from_seq, key_id, created_at_unix_ms)
                VALUES (1, lower(hex(randomblob(16))), (SELECT IFNULL(MAX(seq), 0) + 1 FROM audit_log), NULL,
                        CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
                CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
                BEGIN SELECT RAISE(ABORT, 'audit_chain is never deleted'); END;
                CREATE TRIGGER audit_chain_fixed BEFORE UPDATE ON audit_chain
                WHEN OLD.key_id IS NOT NULL OR NEW.store_id <> OLD.store_id OR NEW.keyed_from_seq <> OLD.keyed_from_seq
                    OR NEW.created_at_unix_ms <> OLD.created_at_unix_ms OR NEW.id <> OLD.id
                BEGIN SELECT RAISE(ABORT, 'audit_chain is fixed once its key is recorded'); END;
                """)
        try db.execute(sql: "PRAGMA user_version = 5")
    }
}
