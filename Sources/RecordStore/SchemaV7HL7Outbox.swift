import Foundation
import GRDB

extension Schema {
    /// v7: the hospital interface's outbox (docs/hl7.md). Each message is written in the transaction
    /// of what it reports and keeps its bytes and control id for every resend; only its delivery
    /// state changes. Destinations are registered by the daemon from its configuration, so any
    /// writer of the store (apheresisctl releasing a product, say) queues for the same destinations.
    static func v7(_ db: Database) throws {
        var random = SystemRandomNumberGenerator()
        let tag = String(format: "%08X", UInt32.random(in: 0...UInt32.max, using: &random))
        try db.execute(
            sql: """
                -- MSH-10 control ids are '<store tag>-<outbox id>': a new store never reuses an old one's ids.
                CREATE TABLE hl7_identity (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    store_tag TEXT NOT NULL
                ) STRICT;
                CREATE TRIGGER hl7_identity_fixed BEFORE UPDATE ON hl7_identity
                BEGIN SELECT RAISE(ABORT, 'the store tag never changes'); END;

                CREATE TABLE hl7_destinations (
                    name TEXT PRIMARY KEY NOT NULL,
                    address TEXT NOT NULL,
                    feeds TEXT NOT NULL, -- space-separated: observations alarms products
                    observation_interval_min REAL NOT NULL CHECK (observation_interval_min > 0),
                    sending_application TEXT NOT NULL,
                    sending_facility TEXT NOT NULL,
                    receiving_application TEXT NOT NULL,
                    receiving_facility TEXT NOT NULL,
                    time_zone TEXT NOT NULL,
                    active INTEGER NOT NULL CHECK (active IN (0, 1)),
                    updated_at_unix_ms INTEGER NOT NULL
                ) STRICT;

                CREATE TABLE hl7_outbox (
                    id INTEGER PRIMARY KEY,
                    destination TEXT NOT NULL REFERENCES hl7_destinations(name),
                    feed TEXT NOT NULL CHECK (feed IN ('observations', 'alarms', 'products')),
                    message_type TEXT NOT NULL,
                    control_id TEXT NOT NULL UNIQUE,
                    run_ref INTEGER REFERENCES runs(id),
                    -- Observations: the RUN_TIME they report, for the interval (in run time).
                    run_time_min REAL,
                    -- What the message reports: 'message:<id>', 'alarm_event:<id>', 'signature:<id>'.
                    subject TEXT NOT NULL,
                    created_at_unix_ms INTEGER NOT NULL,
                    message BLOB NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'set_aside')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    -- Answers AE/CE among the attempts: the destination's error_attempts sets a message aside.
                    error_answers INTEGER NOT NULL DEFAULT 0,
                    last_attempt_at_unix_ms INTEGER,
                    last_error TEXT,
                    ack_code TEXT,
                    ack_text TEXT,
                    finished_at_unix_ms INTEGER,
                    UNIQUE (destination, subject)
                ) STRICT;
                CREATE INDEX hl7_outbox_pending ON hl7_outbox(destination, id) WHERE state = 'pending';
                CREATE INDEX hl7_outbox_run ON hl7_outbox(destination, run_ref, feed);
                -- What was queued is never rewritten or removed; only the delivery columns change, and
                -- a delivered message stays delivered.
                CREATE TRIGGER hl7_outbox_fixed BEFORE UPDATE OF id, destination, feed, message_type, control_id, run_ref,
                    run_time_min, subject, created_at_unix_ms, message ON hl7_outbox
                BEGIN SELECT RAISE(ABORT, 'hl7_outbox messages are never rewritten'); END;
                CREATE TRIGGER hl7_outbox_delivered_stays BEFORE UPDATE OF state ON hl7_outbox
                WHEN OLD.state = 'delivered' AND NEW.state <> 'delivered'
                BEGIN SELECT RAISE(ABORT, 'a delivered message stays delivered'); END;
                CREATE TRIGGER hl7_outbox_no_delete BEFORE DELETE ON hl7_outbox
                BEGIN SELECT RAISE(ABORT, 'hl7_outbox is never deleted from'); END;
                PRAGMA user_version = 7;
                """)
        try db.execute(sql: "INSERT INTO hl7_identity (id, store_tag) VALUES (1, ?)", arguments: [tag])
    }
}
