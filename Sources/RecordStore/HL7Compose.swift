import Foundation
import GRDB
import HL7

/// Composes and queues outbox messages inside a write transaction (HL7Outbox.swift).
enum OutboxWriter {
    /// Queues one message: its id is taken first so that the control id (MSH-10) is in its bytes.
    /// A subject already queued for the destination is not queued again.
    static func queue(
        _ db: Database, route: HL7Route, tag: String, feed: HL7Route.Feed, type: String, runRef: Int64?, runTimeMinutes: Double?,
        subject: String, at: Int64, build: (HL7Envelope) -> HL7Message
    ) throws {
        if try Bool.fetchOne(
            db, sql: "SELECT 1 FROM hl7_outbox WHERE destination = ? AND subject = ?", arguments: [route.name, subject]) == true
        {
            return
        }
        let id = (try Int64.fetchOne(db, sql: "SELECT IFNULL(MAX(id), 0) + 1 FROM hl7_outbox") ?? 1)
        let controlID = "\(tag)-\(id)"
        let envelope = HL7Envelope(
            endpoints: route.endpoints, controlID: controlID, createdAt: HL7Time.timestamp(unixMilliseconds: at, zone: route.timeZone))
        let bytes = build(envelope).bytes
        try db.execute(
            sql: """
                INSERT INTO hl7_outbox (id, destination, feed, message_type, control_id, run_ref, run_time_min, subject,
                    created_at_unix_ms, message)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [id, route.name, feed.rawValue, type, controlID, runRef, runTimeMinutes, subject, at, Data(bytes)])
    }

    // MARK: Parties

    static func patient(_ db: Database, runRef: Int64?) throws -> HL7Patient {
        guard let runRef, let run = try Row.fetchOne(
            db, sql: "SELECT patient_id, patient_family, patient_given, birth_date, sex FROM runs WHERE id = ?", arguments: [runRef])
        else { return HL7Patient(id: nil, family: nil, given: nil, birthDate: nil, sex: nil) }
        return HL7Patient(id: run["patient_id"], family: run["patient_family"], given: run["patient_given"], birthDate: run["birth_date"], sex: run["sex"])
    }

    static func equipment(_ db: Database, serial: String) throws -> HL7Equipment {
        let model = try String.fetchOne(db, sql: "SELECT model FROM devices WHERE serial = ?", arguments: [serial])
        return HL7Equipment(serialNumber: serial, model: model ?? "separator")
    }

    // MARK: PCD-01

    /// After a TICK or RUN_END was stored: an observation for each destination whose interval of run
    /// time has passed since the run's last one (or that has none yet), and always at the run's end.
    static func queueObservation(
        _ db: Database, routes: [HL7Route], tag: String, runRef: Int64, messageRef: Int64, figures: ObservationFigures?,
        runEnded: Bool, at: Int64
    ) throws {
        guard let sample = try Row.fetchOne(db, sql: "SELECT * FROM samples WHERE message_ref = ?", arguments: [messageRef]),
            let run = try Row.fetchOne(db, sql: "SELECT device_serial, run_id, procedure, start_device_ts FROM runs WHERE id = ?", arguments: [runRef])
        else { return }
        let runTime: Double? = sample["run_time_min"]
        var due: [HL7Route] = []
        for route in routes {
            if runEnded {
                due.append(route)
                continue
            }
            guard let runTime else { continue }
            let last = try Double.fetchOne(
                db, sql: "SELECT MAX(run_time_min) FROM hl7_outbox WHERE destination = ? AND run_ref = ? AND feed = 'observations'",
                arguments: [route.name, runRef])
            // A thousandth of a minute: RUN_TIME's resolution on the wire.
            if last == nil || runTime - last! >= route.observationIntervalMinutes - 0.0005 { due.append(route) }
        }
        guard !due.isEmpty else { return }
        let serial: String = run["device_serial"]
        let deviceTimestamp: String = sample["device_ts"]
        let observedAt = HL7Time.fromDeviceTimestamp(deviceTimestamp) ?? HL7Time.timestamp(unixMilliseconds: at, zone: TimeZone(identifier: "UTC")!)
        var values: [ObservedValue] = []
        func add(_ kind: ObservationKind, _ value: Double?) { if let value { values.append(ObservedValue(kind, value)) } }
        add(.runTime, runTime)
        add(.totalBloodVolume, figures?.totalBloodVolumeMillilitres)
        add(.inletVolume, sample["inlet_vol_ml"])
        add(.inletFlow, sample["inlet_flow_ml_min"])
        add(.wholeBloodProcessed, sample["wb_vol_ml"])
        add(.bloodVolumesProcessed, sample["tbv_processed"])
        add(.acVolume, sample["ac_vol_ml"])
        add(.acFlow, sample["ac_flow_ml_min"])
        add(.acToPatient, sample["ac_to_patient_ml"])
        add(.acRatioWindow, figures?.windowRatio)
        add(.acRatioRun, figures?.runRatio)
        add(.acRatioDevice, sample["ac_ratio"])
        add(.acInfusionRate, figures?.acInfusionRateMillilitresPerMinutePerLitre)
        add(.acInfusionRateDevice, sample["ac_inf_rate_ml_min_l"])
        add(.citrateLoadRate, figures?.citrateLoadRateMilligramsPerKilogramPerMinute)
        add(.citrateLoadTotal, figures?.citrateLoadTotalMilligramsPerKilogram)
        add(.collectVolume, sample["collect_vol_ml"])
        let observation = RunObservation(
            patient: try patient(db, runRef: runRef), equipment: try equipment(db, serial: serial),
            run: HL7Run(
                runID: run["run_id"], procedure: run["procedure"],
                startedAt: (run["start_device_ts"] as String?).flatMap(HL7Time.fromDeviceTimestamp)),
            observedAt: observedAt, runEnded: runEnded, values: values)
        for route in due {
            try queue(
                db, route: route, tag: tag, feed: .observations, type: "ORU^R01", runRef: runRef, runTimeMinutes: runTime,
                subject: "message:\(messageRef)", at: at, build: observation.message)
        }
    }

    // MARK: PCD-04

    /// Alarm codes about the patient rather than the equipment or the data (ALERT_TYPE SP, else ST).
    static let physiologicalAlarmCodes: Set<String> = ["CITRATE_LOAD", "AC_INF_RATE", "ECV"]

    /// Every alarm step stored in this transaction after `afterEventID`, in order.
    static func queueAlarmSteps(_ db: Database, routes: [HL7Route], tag: String, afterEventID: Int64) throws {
        let steps = try Row.fetchAll(
            db,
            sql: """
                SELECT e.id, e.alarm_ref, e.kind, e.level, e.value, e.limit_value, e.actor, e.detail, e.at_unix_ms,
                    a.device_serial, a.run_ref, a.code, a.unit, a.message
                FROM alarm_events e JOIN alarms a ON a.id = e.alarm_ref WHERE e.id > ? ORDER BY e.id
                """,
            arguments: [afterEventID])
        for step in steps {
            let eventRef: Int64 = step["id"]
            let alarmRef: Int64 = step["alarm_ref"]
            let kind: String = step["kind"]
            // Acknowledged as of this step: an acknowledgement since the last raise or escalation.
            var acknowledged = false
            for earlier in try String.fetchAll(
                db, sql: "SELECT kind FROM alarm_events WHERE alarm_ref = ? AND id <= ? ORDER BY id", arguments: [alarmRef, eventRef])
            {
                switch earlier {
                case "raised", "escalated": acknowledged = false
                case "acknowledged": acknowledged = true
                default: break
                }
            }
            let phase: AlarmReport.Phase =
                switch kind {
                case "raised": .start
                case "escalated": .escalate
                case "deescalated": .deescalate
                case "cleared": .end
                default: .update
                }
            let level: String = step["level"]
            let code: String = step["code"]
            let at: Int64 = step["at_unix_ms"]
            let runRef: Int64? = step["run_ref"]
            let detail: String? = step["detail"]
            let message: String? = step["message"]
            for route in routes {
                let report = AlarmReport(
                    patient: try patient(db, runRef: runRef), equipment: try equipment(db, serial: step["device_serial"]),
                    alertID: "\(tag)-A\(alarmRef)", code: code, text: message ?? code, phase: phase, active: kind != "cleared",
                    acknowledged: acknowledged, priority: level == "alarm" ? .high : level == "warning" ? .medium : .low,
                    type: physiologicalAlarmCodes.contains(code) ? .physiological : .technical, value: step["value"], unit: step["unit"],
                    limit: step["limit_value"], at: HL7Time.timestamp(unixMilliseconds: at, zone: route.timeZone),
                    actor: step["actor"], note: kind == "cleared" ? detail : nil)
                try queue(
                    db, route: route, tag: tag, feed: .alarms, type: "ORU^R40", runRef: runRef, runTimeMinutes: nil,
                    subject: "alarm_event:\(eventRef)", at: at, build: report.message)
            }
        }
    }

    // MARK: Product release

    static func queueRelease(_ db: Database, routes: [HL7Route], tag: String, signatureRef: Int64, at: Int64) throws {
        guard let signature = try Row.fetchOne(db, sql: "SELECT * FROM signatures WHERE id = ?", arguments: [signatureRef]),
            let product = try Row.fetchOne(db, sql: "SELECT * FROM products WHERE id = ?", arguments: [signature["product_ref"] as Int64]),
            let computation = try Row.fetchOne(
                db, sql: "SELECT * FROM computations WHERE id = ?", arguments: [signature["computation_ref"] as Int64])
        else { return }
        let viability = try Double.fetchOne(
            db, sql: "SELECT viability_fraction FROM lab_results WHERE id = ?", arguments: [computation["lab_result_ref"] as Int64])
        let units = try Row.fetchAll(
            db, sql: "SELECT * FROM units WHERE computation_ref = ? ORDER BY unit_index", arguments: [computation["id"] as Int64]
        ).map { unit in
            ProductReleaseReport.Unit(
                productCode: unit["product_code"], volumeMillilitres: HL7Text.converted(unit["volume_m3"], by: 1e6), cd3Cells: unit["cd3_cells"],
                cd3CellsPerKilogram: unit["cd3_cells_per_kg"], doseFlag: unit["dose_flag"])
        }
        var patient = try patient(db, runRef: product["run_ref"])
        // The product's own copy of the patient is what its labels print.
        if let id: String = product["patient_id"] { patient.id = id }
        if let birth: String = product["patient_birth_date"] { patient.birthDate = birth.replacingOccurrences(of: "-", with: "") }
        let fullName: String = signature["user_full_name"]
        let userName: String = signature["user_name"]
        for route in routes {
            let zone = route.timeZone
            let report = ProductReleaseReport(
                patient: patient, din: product["din"], productName: product["product_name"],
                productDescriptionCode: product["product_description_code"],
                collectedAt: HL7Time.timestamp(unixMilliseconds: product["collected_at_unix_ms"], zone: zone),
                releasedAt: HL7Time.timestamp(unixMilliseconds: signature["signed_at_unix_ms"], zone: zone),
                releasedBy: "\(fullName) (\(userName))",
                collectedVolumeMillilitres: HL7Text.converted(computation["collected_volume_m3"], by: 1e6),
                collectedCD3Cells: computation["collected_cd3_cells"], viabilityFraction: viability,
                signedContentSHA256: signature["signed_content_sha256"], units: units)
            try queue(
                db, route: route, tag: tag, feed: .products, type: "ORU^R01", runRef: product["run_ref"], runTimeMinutes: nil,
                subject: "signature:\(signatureRef)", at: at, build: report.message)
        }
    }
}

extension RecordStore {
    /// Runs `body` (which may store alarm steps) and queues a PCD-04 for each step it stored, in
    /// the same transaction. Without a destination for alarms nothing extra is read.
    func reportingAlarmSteps<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        let (tag, routes) = hl7Routing.routes(for: .alarms)
        guard !routes.isEmpty else { return try body() }
        let before = try Int64.fetchOne(db, sql: "SELECT IFNULL(MAX(id), 0) FROM alarm_events") ?? 0
        let result = try body()
        try OutboxWriter.queueAlarmSteps(db, routes: routes, tag: tag, afterEventID: before)
        return result
    }

    func queueObservation(_ db: Database, runRef: Int64?, messageRef: Int64, figures: ObservationFigures?, runEnded: Bool, at: Int64) throws {
        guard let runRef else { return }
        let (tag, routes) = hl7Routing.routes(for: .observations)
        guard !routes.isEmpty else { return }
        try OutboxWriter.queueObservation(
            db, routes: routes, tag: tag, runRef: runRef, messageRef: messageRef, figures: figures, runEnded: runEnded, at: at)
    }

    func queueRelease(_ db: Database, signatureRef: Int64, at: Int64) throws {
        let (tag, routes) = hl7Routing.routes(for: .products)
        guard !routes.isEmpty else { return }
        try OutboxWriter.queueRelease(db, routes: routes, tag: tag, signatureRef: signatureRef, at: at)
    }
}
