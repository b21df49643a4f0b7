import GRDB

extension Schema {
    /// The tables a workstation replicates to the central database (docs/central.md), parents
    /// before children: the order the first backfill logs them in. Not replicated: the heartbeat,
    /// the local DIN counter (the central database allocates), the HL7 outbox (a local delivery
    /// queue) and the replication bookkeeping itself.
    static let replicatedTables: [String] = [
        "devices", "export_files", "runs", "messages", "samples", "alarms", "alarm_events", "events", "quarantine",
        "run_gaps", "run_preset_changes", "users", "audit_chain", "audit_log", "products", "lab_results",
        "computations", "units", "signatures", "label_prints", "label_print_fates",
    ]

    /// v8: the replication log, the workstation's side of the central record.
    ///
    /// Every insert into and update of a replicated table appends (table, rowid) to
    /// `replication_log` in the same transaction, once logging is on (the first start with
    /// `[central]`): a queue in commit order that the replicator reads from a snapshot and deletes
    /// only after PostgreSQL committed it. Until then no row is logged, so a store that never
    /// replicates pays one indexed read per write. `din_blocks` holds the DIN sequence blocks the
    /// central database reserved for this workstation.
    static func v8(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE replication_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    logging INTEGER NOT NULL CHECK (logging IN (0, 1)),
                    -- Set with logging: DINs come from central blocks only, never from the local counter.
                    din_from_central INTEGER NOT NULL CHECK (din_from_central IN (0, 1)),
                    site TEXT,
                    logging_since_unix_ms INTEGER,
                    -- The last log entry PostgreSQL committed, as the replicator last learnt it.
                    confirmed_seq INTEGER NOT NULL DEFAULT 0,
                    confirmed_at_unix_ms INTEGER
                ) STRICT;
                INSERT INTO replication_state (id, logging, din_from_central) VALUES (1, 0, 0);
                CREATE TRIGGER replication_state_stays_on BEFORE UPDATE ON replication_state
                WHEN (OLD.logging = 1 AND NEW.logging = 0) OR (OLD.din_from_central = 1 AND NEW.din_from_central = 0)
                BEGIN SELECT RAISE(ABORT, 'replication logging and central DINs stay on once on'); END;

                CREATE TABLE replication_log (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    table_name TEXT NOT NULL,
                    row_id INTEGER NOT NULL
                ) STRICT;

                CREATE TABLE din_blocks (
                    id INTEGER PRIMARY KEY,
                    facility TEXT NOT NULL,
                    din_year INTEGER NOT NULL CHECK (din_year BETWEEN 0 AND 99),
                    first_sequence INTEGER NOT NULL CHECK (first_sequence BETWEEN 1 AND 999999),
                    last_sequence INTEGER NOT NULL CHECK (last_sequence BETWEEN first_sequence AND 999999),
                    central_block_id INTEGER NOT NULL UNIQUE,
                    reserved_at_unix_ms INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX din_blocks_by_year ON din_blocks(facility, din_year, first_sequence);
                CREATE TRIGGER din_blocks_no_update BEFORE UPDATE ON din_blocks
                BEGIN SELECT RAISE(ABORT, 'din_blocks is append-only'); END;
                CREATE TRIGGER din_blocks_no_delete BEFORE DELETE ON din_blocks
                BEGIN SELECT RAISE(ABORT, 'din_blocks is append-only'); END;
                """)
        for table in replicatedTables {
            try db.execute(
                sql: """
                    CREATE TRIGGER \(table)_replicate_insert AFTER INSERT ON \(table)
                    WHEN (SELECT logging FROM replication_state WHERE id = 1) = 1
                    BEGIN INSERT INTO replication_log (table_name, row_id) VALUES ('\(table)', NEW.rowid); END;
                    CREATE TRIGGER \(table)_replicate_update AFTER UPDATE ON \(table)
                    WHEN (SELECT logging FROM replication_state WHERE id = 1) = 1
                    BEGIN INSERT INTO replication_log (table_name, row_id) VALUES ('\(table)', NEW.rowid); END;
                    """)
        }
        try db.execute(sql: "PRAGMA user_version = 8")
    }
}
