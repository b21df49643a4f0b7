import Foundation
import Logging
import PostgresNIO

/// The central database's schema, versioned like the workstation's (RecordStore's Schema): each
/// migration runs once, in order, in one transaction, under an advisory lock so that two daemons
/// starting together do not both apply it. Nothing is ever dropped: the central copy is a record.
///
/// Replicated tables keep the workstation's columns unchanged (SQLite INTEGER as bigint, REAL as
/// double precision, TEXT as text, BLOB as bytea), keyed by (site, local_id): the workstation and
/// its SQLite rowid. References between rows (run_ref, message_ref, ...) stay local ids, joined
/// within a site. No foreign keys: a batch commits whole, parents and children together.
public enum CentralSchema {
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        /// One statement each (the extended protocol runs one at a time).
        public var statements: [String]
    }

    /// Tables whose rows never change once written (the workstation's triggers say so too): a
    /// replayed row is skipped, and PostgreSQL itself refuses an update or delete of them.
    public static let appendOnlyTables: Set<String> = [
        "export_files", "messages", "samples", "alarm_events", "events", "quarantine", "run_gaps", "run_preset_changes",
        "audit_log", "products", "lab_results", "computations", "units", "signatures", "label_prints", "label_print_fates",
    ]

    public static var newestVersion: Int { migrations.last!.version }

    public static let migrations: [Migration] = [
        Migration(version: 1, name: "replicated-tables", statements: v1),
    ]

    static var v1: [String] {
        let (tables, function) = (v1Tables, v1RefuseChange)
        let guards = appendOnlyTables.sorted().map {
            "CREATE TRIGGER \($0)_append_only BEFORE UPDATE OR DELETE ON \($0) FOR EACH ROW EXECUTE FUNCTION apheresisd_refuse_change()"
        }
        return tables.split(separator: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            + [function, "CREATE TRIGGER din_blocks_append_only BEFORE UPDATE OR DELETE ON din_blocks FOR EACH ROW EXECUTE FUNCTION apheresisd_refuse_change()"]
            + guards
    }

    private static let v1Tables = """
                CREATE TABLE devices (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "serial" text NOT NULL,
                    "model" text NOT NULL,
                    "software_version" text NOT NULL,
                    "name" text,
                    "first_seen_at_unix_ms" bigint NOT NULL,
                    "last_seen_at_unix_ms" bigint NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE export_files (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "path" text NOT NULL,
                    "content_sha256" text NOT NULL,
                    "device_serial" text,
                    "run_id" text,
                    "ingested_at_unix_ms" bigint NOT NULL,
                    "outcome" text NOT NULL,
                    "detail" text,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE runs (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "device_serial" text NOT NULL,
                    "run_id" text NOT NULL,
                    "procedure" text NOT NULL,
                    "patient_id" text,
                    "patient_family" text,
                    "patient_given" text,
                    "birth_date" text,
                    "sex" text,
                    "height_cm" double precision,
                    "weight_kg" double precision,
                    "start_device_ts" text,
                    "end_device_ts" text,
                    "opened_at_unix_ms" bigint NOT NULL,
                    "closed_at_unix_ms" bigint,
                    "state" text NOT NULL,
                    "profile_name" text,
                    "settings" text,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE messages (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "device_serial" text NOT NULL,
                    "sequence" bigint,
                    "kind" text NOT NULL,
                    "run_ref" bigint,
                    "device_ts" text NOT NULL,
                    "received_at_unix_ms" bigint NOT NULL,
                    "received_monotonic_ns" bigint,
                    "source" text NOT NULL,
                    "export_file_ref" bigint,
                    "raw" bytea NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE samples (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "run_ref" bigint NOT NULL,
                    "message_ref" bigint NOT NULL,
                    "device_ts" text NOT NULL,
                    "run_time_min" double precision,
                    "inlet_vol_ml" double precision,
                    "wb_vol_ml" double precision,
                    "ac_vol_ml" double precision,
                    "ac_to_patient_ml" double precision,
                    "collect_vol_ml" double precision,
                    "plasma_vol_ml" double precision,
                    "inlet_flow_ml_min" double precision,
                    "ac_flow_ml_min" double precision,
                    "return_flow_ml_min" double precision,
                    "collect_flow_ml_min" double precision,
                    "ac_ratio" double precision,
                    "ac_inf_rate_ml_min_l" double precision,
                    "tbv_processed" double precision,
                    "centrifuge_rpm" double precision,
                    "access_press_mmhg" double precision,
                    "return_press_mmhg" double precision,
                    "extra" text,
                    "quality_flags" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE alarms (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "device_serial" text NOT NULL,
                    "run_ref" bigint,
                    "code" text NOT NULL,
                    "level" text NOT NULL,
                    "state" text NOT NULL,
                    "value" double precision,
                    "limit_value" double precision,
                    "unit" text,
                    "message" text,
                    "raised_at_unix_ms" bigint NOT NULL,
                    "raised_run_time_min" double precision,
                    "acknowledged_by" text,
                    "acknowledged_at_unix_ms" bigint,
                    "cleared_at_unix_ms" bigint,
                    "clear_reason" text,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE alarm_events (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "alarm_ref" bigint NOT NULL,
                    "kind" text NOT NULL,
                    "level" text NOT NULL,
                    "value" double precision,
                    "limit_value" double precision,
                    "run_time_min" double precision,
                    "actor" text,
                    "detail" text,
                    "message_ref" bigint,
                    "at_unix_ms" bigint NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE events (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "device_serial" text,
                    "run_ref" bigint,
                    "message_ref" bigint,
                    "kind" text NOT NULL,
                    "at_unix_ms" bigint NOT NULL,
                    "device_ts" text,
                    "detail" text,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE quarantine (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "device_serial" text,
                    "received_at_unix_ms" bigint NOT NULL,
                    "source" text NOT NULL,
                    "reason" text NOT NULL,
                    "raw" bytea NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE run_gaps (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "run_ref" bigint NOT NULL,
                    "kind" text NOT NULL,
                    "missing_count" bigint NOT NULL,
                    "first_missing_sequence" bigint,
                    "last_missing_sequence" bigint,
                    "run_time_before_s" double precision,
                    "run_time_after_s" double precision,
                    "tick_interval_s" double precision,
                    "description" text NOT NULL,
                    "detected_at_unix_ms" bigint NOT NULL,
                    "message_ref" bigint,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE run_preset_changes (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "run_ref" bigint NOT NULL,
                    "changed_at_unix_ms" bigint NOT NULL,
                    "changed_by" text NOT NULL,
                    "reason" text NOT NULL,
                    "changes_json" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE users (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "name" text NOT NULL,
                    "full_name" text NOT NULL,
                    "role" text NOT NULL,
                    "password_hash" text NOT NULL,
                    "created_at_unix_ms" bigint NOT NULL,
                    "created_by" text,
                    "disabled_at_unix_ms" bigint,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE audit_chain (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "store_id" text NOT NULL,
                    "keyed_from_seq" bigint NOT NULL,
                    "key_id" text,
                    "chain_mac" text,
                    "created_at_unix_ms" bigint NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE audit_log (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "seq" bigint NOT NULL,
                    "at_unix_ms" bigint NOT NULL,
                    "actor" text NOT NULL,
                    "action" text NOT NULL,
                    "entity" text NOT NULL,
                    "entity_id" text NOT NULL,
                    "old_value" text,
                    "new_value" text,
                    "reason" text,
                    "previous_hash" text NOT NULL,
                    "hash" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE products (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "run_ref" bigint NOT NULL,
                    "din" text NOT NULL,
                    "facility" text NOT NULL,
                    "din_year" bigint NOT NULL,
                    "din_sequence" bigint NOT NULL,
                    "din_flags" text NOT NULL,
                    "product_description_code" text NOT NULL,
                    "type_of_collection" text NOT NULL,
                    "product_name" text NOT NULL,
                    "collected_volume_m3" double precision NOT NULL,
                    "collected_at_unix_ms" bigint NOT NULL,
                    "patient_id" text,
                    "patient_name" text,
                    "patient_birth_date" text,
                    "patient_mass_kg" double precision,
                    "created_at_unix_ms" bigint NOT NULL,
                    "created_by" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE lab_results (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "product_ref" bigint NOT NULL,
                    "version" bigint NOT NULL,
                    "wbc_cells_per_m3" double precision NOT NULL,
                    "cd3_fraction" double precision,
                    "cd3_cells_per_m3" double precision,
                    "viability_fraction" double precision NOT NULL,
                    "qc_volume_m3" double precision NOT NULL,
                    "recovery_fraction" double precision,
                    "reduced_volume_m3" double precision,
                    "entered_at_unix_ms" bigint NOT NULL,
                    "entered_by" text NOT NULL,
                    "reason" text,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE computations (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "product_ref" bigint NOT NULL,
                    "lab_result_ref" bigint NOT NULL,
                    "computed_at_unix_ms" bigint NOT NULL,
                    "policy_reduced_volume_m3" double precision NOT NULL,
                    "policy_unit_volume_m3" double precision NOT NULL,
                    "policy_unit_cd3_min_cells" double precision NOT NULL,
                    "policy_unit_cd3_max_cells" double precision NOT NULL,
                    "policy_sufficient_cd3_cells_per_m3" double precision NOT NULL,
                    "collected_volume_m3" double precision NOT NULL,
                    "qc_volume_m3" double precision NOT NULL,
                    "volume_after_qc_m3" double precision NOT NULL,
                    "collected_tnc_cells" double precision NOT NULL,
                    "collected_cd3_cells" double precision NOT NULL,
                    "collected_cd3_cells_per_m3" double precision NOT NULL,
                    "collection_sufficient" bigint NOT NULL,
                    "tnc_before_reduction_cells" double precision NOT NULL,
                    "cd3_before_reduction_cells" double precision NOT NULL,
                    "recovery_fraction" double precision NOT NULL,
                    "recovery_measured" bigint NOT NULL,
                    "reduced_volume_m3" double precision NOT NULL,
                    "cd3_after_reduction_cells_per_m3" double precision NOT NULL,
                    "tnc_after_reduction_cells_per_m3" double precision NOT NULL,
                    "unit_volume_m3" double precision NOT NULL,
                    "unit_count" bigint NOT NULL,
                    "remainder_volume_m3" double precision NOT NULL,
                    "viability_fraction" double precision NOT NULL,
                    "patient_mass_kg" double precision,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE units (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "computation_ref" bigint NOT NULL,
                    "product_ref" bigint NOT NULL,
                    "unit_index" bigint NOT NULL,
                    "division_code" text NOT NULL,
                    "product_code" text NOT NULL,
                    "volume_m3" double precision NOT NULL,
                    "cd3_cells" double precision NOT NULL,
                    "tnc_cells" double precision NOT NULL,
                    "cd3_cells_per_kg" double precision,
                    "dose_flag" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE signatures (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "product_ref" bigint NOT NULL,
                    "computation_ref" bigint NOT NULL,
                    "user_ref" bigint NOT NULL,
                    "user_name" text NOT NULL,
                    "user_full_name" text NOT NULL,
                    "meaning" text NOT NULL,
                    "signed_at_unix_ms" bigint NOT NULL,
                    "signed_content_sha256" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE label_prints (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "unit_ref" bigint NOT NULL,
                    "signature_ref" bigint NOT NULL,
                    "printed_at_unix_ms" bigint NOT NULL,
                    "printed_by" text NOT NULL,
                    "format" text NOT NULL,
                    "destination" text NOT NULL,
                    "content_sha256" text NOT NULL,
                    PRIMARY KEY (site, local_id)
                );
                CREATE TABLE label_print_fates (
                    site text NOT NULL,
                    local_id bigint NOT NULL,
                    "id" bigint NOT NULL,
                    "label_print_ref" bigint NOT NULL,
                    "fate" text NOT NULL,
                    "replaced_by_print_ref" bigint,
                    "reason" text NOT NULL,
                    "recorded_by" text NOT NULL,
                    "recorded_at_unix_ms" bigint NOT NULL,
                    PRIMARY KEY (site, local_id)
                );

                CREATE UNIQUE INDEX messages_device_sequence ON messages (site, device_serial, sequence) WHERE sequence IS NOT NULL;
                CREATE INDEX messages_run ON messages (site, run_ref);
                CREATE INDEX samples_run ON samples (site, run_ref, local_id);
                CREATE INDEX runs_device ON runs (site, device_serial, local_id);
                CREATE INDEX alarms_active ON alarms (site, state);
                CREATE INDEX audit_log_seq ON audit_log (site, seq);
                CREATE INDEX products_din ON products (din);

                -- Each workstation's store, where its replication stands, and when it last spoke.
                CREATE TABLE central_sites (
                    site text PRIMARY KEY,
                    store_id text NOT NULL,
                    registered_at timestamptz NOT NULL DEFAULT now(),
                    last_contact_at timestamptz NOT NULL DEFAULT now(),
                    -- The workstation's replication_log entry committed last, in the same transaction as its rows.
                    replicated_through bigint NOT NULL DEFAULT 0,
                    replicated_at timestamptz,
                    backlog bigint NOT NULL DEFAULT 0,
                    report_interval_ms bigint NOT NULL DEFAULT 2000,
                    daemon_version text
                );
                -- Each workstation's separator links as it last reported them. The age of the last byte
                -- is measured on the workstation's monotonic clock and aged here on the server's clock:
                -- no comparison of two machines' wall clocks.
                CREATE TABLE central_links (
                    site text NOT NULL,
                    name text NOT NULL,
                    link text NOT NULL,
                    state text NOT NULL,
                    device_serial text,
                    activity_age_ms bigint,
                    last_error text,
                    reported_at timestamptz NOT NULL,
                    PRIMARY KEY (site, name)
                );

                -- DIN sequences of a facility and year: the next one not yet reserved by any workstation.
                CREATE TABLE din_allocations (
                    facility text NOT NULL,
                    din_year integer NOT NULL CHECK (din_year BETWEEN 0 AND 99),
                    next_sequence integer NOT NULL CHECK (next_sequence BETWEEN 1 AND 1000000),
                    PRIMARY KEY (facility, din_year)
                );
                CREATE TABLE din_blocks (
                    id bigserial PRIMARY KEY,
                    facility text NOT NULL,
                    din_year integer NOT NULL,
                    site text NOT NULL,
                    first_sequence integer NOT NULL,
                    last_sequence integer NOT NULL CHECK (last_sequence >= first_sequence AND last_sequence <= 999999),
                    reserved_at timestamptz NOT NULL DEFAULT now(),
                    UNIQUE (facility, din_year, first_sequence)
                );
                """

    private static let v1RefuseChange = """
        CREATE FUNCTION apheresisd_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only in the central record', TG_TABLE_NAME;
        END $$
        """

    /// Applies what is missing, under a transaction-scoped advisory lock. Refuses a database whose
    /// schema is newer than this build knows.
    public static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.withTransaction(logger: logger) { c in
            try await c.query("SELECT pg_advisory_xact_lock(4733291006)", logger: logger)
            try await c.query(
                """
                CREATE TABLE IF NOT EXISTS central_schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await c.query("SELECT version FROM central_schema_migrations", logger: logger)
                .decode(Int.self)
            {
                applied.insert(version)
            }
            if let newer = applied.max(), newer > newestVersion {
                throw CentralError.schemaNewer(database: newer, known: newestVersion)
            }
            var done: [Int] = []
            for migration in migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await c.query(
                    "INSERT INTO central_schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                done.append(migration.version)
            }
            return done
        }
    }
}
