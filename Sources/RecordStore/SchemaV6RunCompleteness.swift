import GRDB

extension Schema {
    /// v6: telemetry gaps of runs, kept as evidence with the message that revealed each one.
    /// Append-only: a gap found is a fact about the record, never edited away.
    static func v6(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE run_gaps (
                    id INTEGER PRIMARY KEY,
                    run_ref INTEGER NOT NULL REFERENCES runs(id),
                    kind TEXT NOT NULL CHECK (kind IN ('sequence', 'run_time')),
                    missing_count INTEGER NOT NULL CHECK (missing_count > 0),
                    first_missing_sequence INTEGER,
                    last_missing_sequence INTEGER,
                    run_time_before_s REAL,
                    run_time_after_s REAL,
                    tick_interval_s REAL,
                    description TEXT NOT NULL,
                    detected_at_unix_ms INTEGER NOT NULL,
                    -- The message whose arrival revealed the gap (NULL: found in an export file).
                    message_ref INTEGER REFERENCES messages(id)
                ) STRICT;
                CREATE INDEX run_gaps_by_run ON run_gaps(run_ref, id);
                CREATE TRIGGER run_gaps_no_update BEFORE UPDATE ON run_gaps
                BEGIN SELECT RAISE(ABORT, 'run_gaps is append-only'); END;
                CREATE TRIGGER run_gaps_no_delete BEFORE DELETE ON run_gaps
                BEGIN SELECT RAISE(ABORT, 'run_gaps is append-only'); END;
                PRAGMA user_version = 6;
                """)
    }
}
