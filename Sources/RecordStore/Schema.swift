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
    static let version = 8

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // Never erase: the database is the medical record. Schema changes are new migrations only.
        migrator.eraseDatabaseOnSchemaChange = false
        migrator.registerMigration("v1") { db in try v1(db) }
        migrator.registerMigration("v2-products") { db in try v2(db) }
        migrator.registerMigration("v3-run-presets") { db in try v3(db) }
        migrator.registerMigration("v4-product-trust") { db in try v4(db) }
        migrator.registerMigration("v5-audit-anchor") { db in try v5(db) }
        migrator.registerMigration("v6-run-completeness") { db in try v6(db) }
        migrator.registerMigration("v7-hl7-outbox") { db in try v7(db) }
        migrator.registerMigration("v8-replication") { db in try v8(db) }
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

    /// Products, units, people and their audit trail (product-records.md, docs/products.md).
    /// Every table here is append-only except `users` (disabling a user) and `din_sequences`
    /// (a counter that may only grow); the old value of any change stays readable in `audit_log`.
    private static func v2(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE audit_log (
                    seq INTEGER PRIMARY KEY,
                    at_unix_ms INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    entity TEXT NOT NULL,
                    entity_id TEXT NOT NULL,
                    old_value TEXT,
                    new_value TEXT,
                    reason TEXT,
                    previous_hash TEXT NOT NULL,
                    hash TEXT NOT NULL
                ) STRICT;
                CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);

                CREATE TABLE users (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    full_name TEXT NOT NULL,
                    role TEXT NOT NULL CHECK (role IN ('operator', 'lab', 'supervisor')),
                    password_hash TEXT NOT NULL,
                    created_at_unix_ms INTEGER NOT NULL,
                    created_by TEXT,
                    disabled_at_unix_ms INTEGER
                ) STRICT;
                CREATE TRIGGER users_no_delete BEFORE DELETE ON users
                BEGIN SELECT RAISE(ABORT, 'users are never deleted; disable them'); END;
                CREATE TRIGGER users_fixed_identity BEFORE UPDATE OF id, name, created_at_unix_ms, created_by ON users
                BEGIN SELECT RAISE(ABORT, 'a user''s name and creation are fixed'); END;

                -- The last DIN sequence issued per facility and year. Only ever grows, so a sequence is
                -- never issued twice even if a product row were somehow lost.
                CREATE TABLE din_sequences (
                    facility TEXT NOT NULL,
                    din_year INTEGER NOT NULL CHECK (din_year BETWEEN 0 AND 99),
                    last_sequence INTEGER NOT NULL CHECK (last_sequence BETWEEN 1 AND 999999),
                    PRIMARY KEY (facility, din_year)
                ) STRICT;
                CREATE TRIGGER din_sequences_only_grow BEFORE UPDATE ON din_sequences
                WHEN NEW.last_sequence <= OLD.last_sequence OR NEW.facility <> OLD.facility OR NEW.din_year <> OLD.din_year
                BEGIN SELECT RAISE(ABORT, 'DIN sequences only grow'); END;
                CREATE TRIGGER din_sequences_no_delete BEFORE DELETE ON din_sequences
                BEGIN SELECT RAISE(ABORT, 'DIN sequences are never deleted'); END;

                CREATE TABLE products (
                    id INTEGER PRIMARY KEY,
                    run_ref INTEGER NOT NULL UNIQUE REFERENCES runs(id),
                    din TEXT NOT NULL UNIQUE,
                    facility TEXT NOT NULL,
                    din_year INTEGER NOT NULL,
                    din_sequence INTEGER NOT NULL,
                    din_flags TEXT NOT NULL,
                    product_description_code TEXT NOT NULL,
                    type_of_collection TEXT NOT NULL,
                    product_name TEXT NOT NULL,
                    collected_volume_m3 REAL NOT NULL,
                    collected_at_unix_ms INTEGER NOT NULL,
                    -- The patient as the run named them when the product was made: labels print these,
                    -- so a later change to the run cannot change a released unit's label.
                    patient_id TEXT,
                    patient_name TEXT,
                    patient_birth_date TEXT,
                    patient_mass_kg REAL,
                    created_at_unix_ms INTEGER NOT NULL,
                    created_by TEXT NOT NULL,
                    UNIQUE (facility, din_year, din_sequence)
                ) STRICT;

                -- Every entry is a version; the newest is current, the older ones stay readable.
                CREATE TABLE lab_results (
                    id INTEGER PRIMARY KEY,
                    product_ref INTEGER NOT NULL REFERENCES products(id),
                    version INTEGER NOT NULL,
                    wbc_cells_per_m3 REAL NOT NULL,
                    cd3_fraction REAL,
                    cd3_cells_per_m3 REAL,
                    viability_fraction REAL NOT NULL,
                    qc_volume_m3 REAL NOT NULL,
                    recovery_fraction REAL,
                    reduced_volume_m3 REAL,
                    entered_at_unix_ms INTEGER NOT NULL,
                    entered_by TEXT NOT NULL,
                    reason TEXT,
                    UNIQUE (product_ref, version),
                    CHECK ((cd3_fraction IS NULL) <> (cd3_cells_per_m3 IS NULL))
                ) STRICT;

                CREATE TABLE computations (
                    id INTEGER PRIMARY KEY,
                    product_ref INTEGER NOT NULL REFERENCES products(id),
                    lab_result_ref INTEGER NOT NULL UNIQUE REFERENCES lab_results(id),
                    computed_at_unix_ms INTEGER NOT NULL,
                    policy_reduced_volume_m3 REAL NOT NULL,
                    policy_unit_volume_m3 REAL NOT NULL,
                    policy_unit_cd3_min_cells REAL NOT NULL,
                    policy_unit_cd3_max_cells REAL NOT NULL,
                    policy_sufficient_cd3_cells_per_m3 REAL NOT NULL,
                    collected_volume_m3 REAL NOT NULL,
                    qc_volume_m3 REAL NOT NULL,
                    volume_after_qc_m3 REAL NOT NULL,
                    collected_tnc_cells REAL NOT NULL,
                    collected_cd3_cells REAL NOT NULL,
                    collected_cd3_cells_per_m3 REAL NOT NULL,
                    collection_sufficient INTEGER NOT NULL CHECK (collection_sufficient IN (0, 1)),
                    tnc_before_reduction_cells REAL NOT NULL,
                    cd3_before_reduction_cells REAL NOT NULL,
                    recovery_fraction REAL NOT NULL,
                    recovery_measured INTEGER NOT NULL CHECK (recovery_measured IN (0, 1)),
                    reduced_volume_m3 REAL NOT NULL,
                    cd3_after_reduction_cells_per_m3 REAL NOT NULL,
                    tnc_after_reduction_cells_per_m3 REAL NOT NULL,
                    unit_volume_m3 REAL NOT NULL,
                    unit_count INTEGER NOT NULL CHECK (unit_count >= 1),
                    remainder_volume_m3 REAL NOT NULL,
                    viability_fraction REAL NOT NULL,
                    patient_mass_kg REAL
                ) STRICT;

                CREATE TABLE units (
                    id INTEGER PRIMARY KEY,
                    computation_ref INTEGER NOT NULL REFERENCES computations(id),
                    product_ref INTEGER NOT NULL REFERENCES products(id),
                    unit_index INTEGER NOT NULL CHECK (unit_index >= 0),
                    division_code TEXT NOT NULL,
                    product_code TEXT NOT NULL,
                    volume_m3 REAL NOT NULL,
                    cd3_cells REAL NOT NULL,
                    tnc_cells REAL NOT NULL,
                    cd3_cells_per_kg REAL,
                    dose_flag TEXT NOT NULL CHECK (dose_flag IN ('within_band', 'below_band', 'above_band')),
                    UNIQUE (computation_ref, unit_index)
                ) STRICT;

                -- An electronic signature: who, what it means, when, and the hash of exactly what was signed.
                CREATE TABLE signatures (
                    id INTEGER PRIMARY KEY,
                    product_ref INTEGER NOT NULL REFERENCES products(id),
                    computation_ref INTEGER NOT NULL REFERENCES computations(id),
                    user_ref INTEGER NOT NULL REFERENCES users(id),
                    user_name TEXT NOT NULL,
                    user_full_name TEXT NOT NULL,
                    meaning TEXT NOT NULL CHECK (meaning IN ('released')),
                    signed_at_unix_ms INTEGER NOT NULL,
                    signed_content_sha256 TEXT NOT NULL
                ) STRICT;

                CREATE TABLE label_prints (
                    id INTEGER PRIMARY KEY,
                    unit_ref INTEGER NOT NULL REFERENCES units(id),
                    signature_ref INTEGER NOT NULL REFERENCES signatures(id),
                    printed_at_unix_ms INTEGER NOT NULL,
                    printed_by TEXT NOT NULL,
                    format TEXT NOT NULL,
                    destination TEXT NOT NULL,
                    content_sha256 TEXT NOT NULL
                ) STRICT;
                """)
        for table in ["audit_log", "products", "lab_results", "computations", "units", "signatures", "label_prints"] {
            try db.execute(
                sql: """
                    CREATE TRIGGER \(table)_no_update BEFORE UPDATE ON \(table)
                    BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END;
                    CREATE TRIGGER \(table)_no_delete BEFORE DELETE ON \(table)
                    BEGIN SELECT RAISE(ABORT, '\(table) is append-only'); END;
                    """)
        }
        try db.execute(sql: "PRAGMA user_version = 2")
    }

    /// Presets changed for one run (limits.md), each change a row of its own with its reason and
    /// who made it, audited like the product records. The watcher merges them in id order.
    static func v3(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE run_preset_changes (
                    id INTEGER PRIMARY KEY,
                    run_ref INTEGER NOT NULL REFERENCES runs(id),
                    changed_at_unix_ms INTEGER NOT NULL,
                    changed_by TEXT NOT NULL,
                    reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
                    -- {"key": value, ...} in each key's unit (docs/api.md); canonical, sorted keys.
                    changes_json TEXT NOT NULL
                ) STRICT;
                CREATE INDEX run_preset_changes_by_run ON run_preset_changes(run_ref, id);
                CREATE TRIGGER run_preset_changes_no_update BEFORE UPDATE ON run_preset_changes
                BEGIN SELECT RAISE(ABORT, 'run_preset_changes is append-only'); END;
                CREATE TRIGGER run_preset_changes_no_delete BEFORE DELETE ON run_preset_changes
                BEGIN SELECT RAISE(ABORT, 'run_preset_changes is append-only'); END;
                PRAGMA user_version = 3;
                """)
    }
}
