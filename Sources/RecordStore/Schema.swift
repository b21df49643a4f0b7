import GRDB
import SeparatorProtocol

/// Telemetry codes that get their own `samples` column, in wire units (separator-interface.md, section 3).
/// Column names carry the unit so a reader of the raw database never has to guess it.
enum TelemetryColumns {
    static let all: [(code: ParameterCode, column: String)] = [
        (.runTime, "run_time_min"),
        (.inletVolume, "inlet_vol_ml"),
        (.wholeBloodVolume, "wb_vol_ml"),
        (.acVolume, "ac_vol_ml"),
        (.acToPatient, "ac_to_patient_ml"),
        (.collectVolume, "collect_vol_ml"),
        (.plasmaVolume, "plasma_vol_ml"),
        (.inletFlow, "inlet_flow_ml_min"),
        (.acFlow, "ac_flow_ml_min"),
        (.returnFlow, "return_flow_ml_min"),
        (.collectFlow, "collect_flow_ml_min"),
        (.acRatio, "ac_ratio"),
        (.acInfusionRate, "ac_inf_rate_ml_min_l"),
        (.bloodVolumesProcessed, "tbv_processed"),
        (.centrifugeSpeed, "centrifuge_rpm"),
        (.accessPressure, "access_press_mmhg"),
        (.returnPressure, "return_press_mmhg"),
    ]
    static let byCode: [ParameterCode: String] = Dictionary(uniqueKeysWithValues: all.map { ($0.code, $0.column) })
}

enum Schema {
    /// The newest schema this build knows. Also written to `PRAGMA user_version` so tools outside GRDB can tell.
    static let version = 1

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // Never erase: the database is the medical record. Schema changes are new migrations only.
        migrator.eraseDatabaseOnSchemaChange = false
        migrator.registerMigration("v1") { db in try v1(db) }
        return migrator
    }

    /// Tables are STRICT (SQLite >= 3.37; Debian 12 ships 3.40) so a wrong type is an error, not a silent coercion.
    private static func v1(_ db: Database) throws {
        let telemetry = TelemetryColumns.all.map { "    \($0.column) REAL," }.joined(separator: "\n")
        try db.execute(
            sql: """
                CREATE TABLE devices (
                    serial TEXT PRIMARY KEY NOT NULL,
                    model TEXT NOT NULL,
                    software_version TEXT NOT NULL,
                    name TEXT,
                    first_seen_at_unix_ms INTEGER NOT NULL,
                    last_seen_at_unix_ms INTEGER NOT NULL
                ) STRICT;

                CREATE TABLE export_files (
                    id INTEGER PRIMARY KEY,
                    path TEXT NOT NULL,
                    content_sha256 TEXT NOT NULL,
                    device_serial TEXT,
                    run_id TEXT,
                    ingested_at_unix_ms INTEGER NOT NULL,
                    outcome TEXT NOT NULL CHECK (outcome IN ('ingested', 'duplicate', 'malformed')),
                    detail TEXT
                ) STRICT;
                -- A file's content is ingested once; later sightings are logged as 'duplicate' rows.
                CREATE UNIQUE INDEX export_files_ingested_once ON export_files(content_sha256) WHERE outcome = 'ingested';

                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY,
                    device_serial TEXT NOT NULL REFERENCES devices(serial),
                    run_id TEXT NOT NULL,
                    procedure TEXT NOT NULL,
                    patient_id TEXT,
                    patient_family TEXT,
                    patient_given TEXT,
                    birth_date TEXT,
                    sex TEXT,
                    height_cm REAL,
                    weight_kg REAL,
                    start_device_ts TEXT,
                    end_device_ts TEXT,
                    opened_at_unix_ms INTEGER NOT NULL,
                    closed_at_unix_ms INTEGER,
                    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
                    profile_name TEXT,
                    settings TEXT, -- JSON array of the RUN_START R records; NULL until RUN_START is seen
                    UNIQUE (device_serial, run_id)
                ) STRICT;

                CREATE TABLE messages (
                    id INTEGER PRIMARY KEY,
                    device_serial TEXT NOT NULL REFERENCES devices(serial),
                    sequence INTEGER CHECK (sequence IS NULL OR sequence >= 0),
                    kind TEXT NOT NULL,
                    run_ref INTEGER REFERENCES runs(id),
                    device_ts TEXT NOT NULL,
                    received_at_unix_ms INTEGER NOT NULL,
                    received_monotonic_ns INTEGER,
                    source TEXT NOT NULL CHECK (source IN ('live', 'export')),
                    export_file_ref INTEGER REFERENCES export_files(id),
                    raw BLOB NOT NULL,
                    -- The delivery guarantee's key: one stored message per (device, sequence number).
                    UNIQUE (device_serial, sequence),
                    -- Live messages have a sequence number, file messages have none and name their file.
                    CHECK ((source = 'live' AND sequence IS NOT NULL AND export_file_ref IS NULL)
                        OR (source = 'export' AND sequence IS NULL AND export_file_ref IS NOT NULL))
                ) STRICT;
                CREATE INDEX messages_run ON messages(run_ref);

                CREATE TABLE samples (
                    id INTEGER PRIMARY KEY,
                    run_ref INTEGER NOT NULL REFERENCES runs(id),
                    message_ref INTEGER NOT NULL REFERENCES messages(id),
                    device_ts TEXT NOT NULL,
                \(telemetry)
                    extra TEXT, -- JSON object for codes without a column (unknown, text-valued, or in another unit)
                    quality_flags TEXT NOT NULL DEFAULT '',
                    -- A run seen live and then in its export file: the file's rows hit this key and are skipped.
                    UNIQUE (run_ref, run_time_min, device_ts)
                ) STRICT;

                CREATE TABLE alarms (
                    id INTEGER PRIMARY KEY,
                    device_serial TEXT NOT NULL,
                    run_ref INTEGER REFERENCES runs(id),
                    code TEXT NOT NULL,
                    level TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('raised', 'acknowledged', 'cleared')),
                    value REAL,
                    limit_value REAL,
                    unit TEXT,
                    message TEXT,
                    raised_at_unix_ms INTEGER NOT NULL,
                    raised_run_time_min REAL,
                    acknowledged_by TEXT,
                    acknowledged_at_unix_ms INTEGER,
                    cleared_at_unix_ms INTEGER,
                    clear_reason TEXT
                ) STRICT;
                -- At most one active alarm per (device, run, code): a second raise is a caller bug, not a new alarm.
                CREATE UNIQUE INDEX alarms_one_active ON alarms(device_serial, IFNULL(run_ref, 0), code) WHERE state <> 'cleared';
                CREATE INDEX alarms_run ON alarms(run_ref);

                CREATE TABLE alarm_events (
                    id INTEGER PRIMARY KEY,
                    alarm_ref INTEGER NOT NULL REFERENCES alarms(id),
                    kind TEXT NOT NULL CHECK (kind IN ('raised', 'escalated', 'deescalated', 'acknowledged', 'cleared')),
                    level TEXT NOT NULL,
                    value REAL,
                    limit_value REAL,
                    run_time_min REAL,
                    actor TEXT,
                    detail TEXT,
                    message_ref INTEGER REFERENCES messages(id),
                    at_unix_ms INTEGER NOT NULL
                ) STRICT;
                CREATE INDEX alarm_events_alarm ON alarm_events(alarm_ref);

                CREATE TABLE events (
                    id INTEGER PRIMARY KEY,
                    device_serial TEXT,
                    run_ref INTEGER REFERENCES runs(id),
                    message_ref INTEGER REFERENCES messages(id),
                    kind TEXT NOT NULL,
                    at_unix_ms INTEGER NOT NULL,
                    device_ts TEXT,
                    detail TEXT
                ) STRICT;
                CREATE INDEX events_run ON events(run_ref);

                CREATE TABLE quarantine (
                    id INTEGER PRIMARY KEY,
                    device_serial TEXT,
                    received_at_unix_ms INTEGER NOT NULL,
                    source TEXT NOT NULL CHECK (source IN ('live', 'export')),
                    reason TEXT NOT NULL,
                    raw BLOB NOT NULL
                ) STRICT;
                """)
        // History tables are append-only, enforced by SQLite itself and not only by this code.
        for table in ["messages", "samples", "alarm_events", "events", "quarantine", "export_files"] {
            try db.execute(
                sql: """
                    CREATE TRIGGER \(table)_no_update BEFORE UPDATE ON \(table)
                    BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END;
                    CREATE TRIGGER \(table)_no_delete BEFORE DELETE ON \(table)
                    BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END;
                    """)
        }
        // One row the daemon rewrites at a steady pace: proof that the store
        // writer can still commit (its systemd watchdog depends on it).
        try db.execute(
            sql: """
                CREATE TABLE heartbeat (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    at_unix_ms INTEGER NOT NULL
                ) STRICT
                """)
        try db.execute(sql: "PRAGMA user_version = 1")
    }
}
