import GRDB

extension Schema {
    /// v4: label voids and reprints, out-of-band units, lab plausibility refusals.
    ///
    /// What became of a print's labels: each `label_prints` row ends at most once, either
    /// `voided` (the labels were destroyed; a person says so, with a reason) or `superseded`
    /// (a reprint replaced them; the row names the print that replaced them and why). A print
    /// with no row here is still valid. Append-only, audited like the product records.
    /// (Out-of-band units are the `units.dose_flag` of v2, now printed on the label; plausibility
    /// refusals are audit entries: neither needs a table.)
    static func v4(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE label_print_fates (
                    id INTEGER PRIMARY KEY,
                    label_print_ref INTEGER NOT NULL UNIQUE REFERENCES label_prints(id),
                    fate TEXT NOT NULL CHECK (fate IN ('voided', 'superseded')),
                    -- The print that replaced it (superseded only).
                    replaced_by_print_ref INTEGER REFERENCES label_prints(id),
                    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
                    recorded_by TEXT NOT NULL,
                    recorded_at_unix_ms INTEGER NOT NULL,
                    CHECK ((fate = 'superseded') = (replaced_by_print_ref IS NOT NULL)),
                    CHECK (replaced_by_print_ref IS NULL OR replaced_by_print_ref > label_print_ref)
                ) STRICT;
                CREATE TRIGGER label_print_fates_no_update BEFORE UPDATE ON label_print_fates
                BEGIN SELECT RAISE(ABORT, 'label_print_fates is append-only'); END;
                CREATE TRIGGER label_print_fates_no_delete BEFORE DELETE ON label_print_fates
                BEGIN SELECT RAISE(ABORT, 'label_print_fates is append-only'); END;
                """)
        try db.execute(sql: "PRAGMA user_version = 4")
    }
}
