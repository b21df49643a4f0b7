/// A run, as OBR names it.
public struct HL7Run: Hashable, Sendable {
    /// The separator's run id; with the serial it names the run everywhere (OBR-3).
    public var runID: String
    public var procedure: String
    /// DTM of the run's start, when known.
    public var startedAt: String?

    public init(runID: String, procedure: String, startedAt: String?) {
        self.runID = runID
        self.procedure = procedure
        self.startedAt = startedAt
    }
}

/// PCD-01 (Communicate PCD Data): a run's figures at one sample.
public struct RunObservation: Hashable, Sendable {
    public var patient: HL7Patient
    public var equipment: HL7Equipment
    public var run: HL7Run
    /// DTM of the sample (the separator's time of it).
    public var observedAt: String
    /// The run's last sample (RUN_END): OBR-8 is set to its time.
    public var runEnded: Bool
    public var values: [ObservedValue]

    public init(
        patient: HL7Patient, equipment: HL7Equipment, run: HL7Run, observedAt: String, runEnded: Bool, values: [ObservedValue]
    ) {
        self.patient = patient
        self.equipment = equipment
        self.run = run
        self.observedAt = observedAt
        self.runEnded = runEnded
        self.values = values
    }

    /// `ORU^R01^ORU_R01`: MSH, PID, PV1, OBR (the run), one OBX for the system (MDS) and one per figure.
    public func message(_ envelope: HL7Envelope) -> HL7Message {
        var segments = [
            CommonSegments.msh(envelope, type: ["ORU", "R01", "ORU_R01"], profile: CommonSegments.pcd01Profile),
            CommonSegments.pid(patient), CommonSegments.pv1(),
        ]
        var obr = HL7Segment("OBR", [])
        obr.set(1, "1")
        obr.set(3, HL7Text.components(["\(equipment.serialNumber)-\(run.runID)", "APHERESISD"]))
        obr.set(4, HL7Text.components(["APH_RUN", "Apheresis run monitoring, \(run.procedure)", "99APH"]))
        obr.set(7, observedAt)
        if runEnded { obr.set(8, observedAt) }
        segments.append(obr)
        // The system itself (MDS): no value, status X, the equipment named.
        var mds = HL7Segment("OBX", [])
        mds.set(1, "1")
        mds.set(3, HL7Text.components(["APH_SYSTEM", "Apheresis system", "99APH"]))
        mds.set(4, "1")
        mds.set(11, "X")
        mds.set(14, observedAt)
        mds.set(18, equipment.field)
        segments.append(mds)
        var setID = 1
        for value in values {
            guard let number = HL7Text.number(value.value) else { continue }
            setID += 1
            var obx = HL7Segment("OBX", [])
            obx.set(1, String(setID))
            obx.set(2, "NM")
            obx.set(3, value.kind.identifier)
            obx.set(4, value.kind.containment)
            obx.set(5, number)
            obx.set(6, value.kind.unitField)
            obx.set(11, "R")
            obx.set(14, observedAt)
            obx.set(18, equipment.field)
            segments.append(obx)
        }
        return HL7Message(segments)
    }
}

/// PCD-04 (Report Alert): one step in the life of one alarm.
public struct AlarmReport: Hashable, Sendable {
    public enum Phase: String, Hashable, Sendable {
        case start, escalate, deescalate = "de-escalate", update, end
    }

    public enum Priority: String, Hashable, Sendable {
        case high = "PH", medium = "PM", low = "PL"
    }

    public enum AlertType: String, Hashable, Sendable {
        case physiological = "SP", technical = "ST"
    }

    public var patient: HL7Patient
    public var equipment: HL7Equipment
    /// The alert's identity, the same in every message about it (OBR-3).
    public var alertID: String
    public var code: String
    public var text: String
    public var phase: Phase
    /// False once cleared.
    public var active: Bool
    public var acknowledged: Bool
    public var priority: Priority
    public var type: AlertType
    /// The quantity judged, its value, unit and the limit crossed, when the alarm has one.
    public var value: Double?
    public var unit: String?
    public var limit: Double?
    /// DTM of this step.
    public var at: String
    /// Who acknowledged, or why it cleared.
    public var actor: String?
    public var note: String?

    public init(
        patient: HL7Patient, equipment: HL7Equipment, alertID: String, code: String, text: String, phase: Phase, active: Bool,
        acknowledged: Bool, priority: Priority, type: AlertType, value: Double?, unit: String?, limit: Double?, at: String,
        actor: String?, note: String?
    ) {
        self.patient = patient
        self.equipment = equipment
        self.alertID = alertID
        self.code = code
        self.text = text
        self.phase = phase
        self.active = active
        self.acknowledged = acknowledged
        self.priority = priority
        self.type = type
        self.value = value
        self.unit = unit
        self.limit = limit
        self.at = at
        self.actor = actor
        self.note = note
    }

    /// `ORU^R40^ORU_R01` (IHE PCD-04: the trigger is R40, the structure ORU_R01): MSH, PID, PV1, OBR
    /// (MDC_EVT_ALARM, the alert's id), and the OBX rows IHE ACM defines: the event, its source value,
    /// phase, state, inactivation state, priority and type.
    public func message(_ envelope: HL7Envelope) -> HL7Message {
        var segments = [
            CommonSegments.msh(envelope, type: ["ORU", "R40", "ORU_R01"], profile: CommonSegments.pcd04Profile),
            CommonSegments.pid(patient), CommonSegments.pv1(),
        ]
        var obr = HL7Segment("OBR", [])
        obr.set(1, "1")
        obr.set(3, HL7Text.components([alertID, "APHERESISD"]))
        obr.set(4, HL7Text.components(["196616", "MDC_EVT_ALARM", "MDC"]))
        obr.set(7, at)
        segments.append(obr)
        func row(_ setID: Int, _ type: String, _ id: String, _ sub: Int, _ value: String) -> HL7Segment {
            var obx = HL7Segment("OBX", [])
            obx.set(1, String(setID))
            obx.set(2, type)
            obx.set(3, id)
            obx.set(4, "1.0.0.0.\(sub)")
            obx.set(5, value)
            obx.set(11, "R")
            return obx
        }
        var event = row(1, "CWE", HL7Text.components(["196616", "MDC_EVT_ALARM", "MDC"]), 1, HL7Text.components([code, text, "99APH"]))
        event.set(14, at)
        event.set(18, equipment.field)
        if let actor { event.set(16, HL7Text.components([nil, actor])) }
        segments.append(event)
        if let value, let number = HL7Text.number(value) {
            var source = row(2, "NM", HL7Text.components([code, nil, "99APH"]), 2, number)
            if let unit, !unit.isEmpty { source.set(6, HL7Text.components([unit, unit, "UCUM"])) }
            // OBX-7 as a reference range bounded by the limit crossed: "<13" when the value went above
            // 13, ">1.2" when it went below 1.2.
            if let limit, let limitText = HL7Text.number(limit) {
                source.set(7, (value > limit ? "<" : value < limit ? ">" : "") + limitText)
            }
            source.set(14, at)
            segments.append(source)
        } else {
            segments.append(row(2, "ST", HL7Text.components(["68480", "MDC_ATTR_ALERT_SOURCE", "MDC"]), 2, HL7Text.escape(code)))
        }
        segments.append(row(3, "ST", HL7Text.components(["68481", "MDC_ATTR_EVENT_PHASE", "MDC"]), 3, phase.rawValue))
        segments.append(row(4, "ST", HL7Text.components(["68482", "MDC_ATTR_ALARM_STATE", "MDC"]), 4, active ? "active" : "inactive"))
        segments.append(
            row(
                5, "ST", HL7Text.components(["68483", "MDC_ATTR_ALARM_INACTIVATION_STATE", "MDC"]), 5,
                acknowledged ? "alert-acknowledged" : "enabled"))
        segments.append(row(6, "ST", HL7Text.components(["68484", "MDC_ATTR_ALARM_PRIORITY", "MDC"]), 6, priority.rawValue))
        segments.append(row(7, "ST", HL7Text.components(["68485", "MDC_ATTR_ALERT_TYPE", "MDC"]), 7, type.rawValue))
        if let note, !note.isEmpty { segments.append(HL7Segment("NTE", ["1", "", HL7Text.escape(note)])) }
        return HL7Message(segments)
    }
}

/// A released product (ORU^R01): the cell lab's system gets its units without typing.
public struct ProductReleaseReport: Hashable, Sendable {
    public struct Unit: Hashable, Sendable {
        /// The unit's ISBT 128 product code (with its division).
        public var productCode: String
        public var volumeMillilitres: Double
        public var cd3Cells: Double
        public var cd3CellsPerKilogram: Double?
        public var doseFlag: String

        public init(productCode: String, volumeMillilitres: Double, cd3Cells: Double, cd3CellsPerKilogram: Double?, doseFlag: String) {
            self.productCode = productCode
            self.volumeMillilitres = volumeMillilitres
            self.cd3Cells = cd3Cells
            self.cd3CellsPerKilogram = cd3CellsPerKilogram
            self.doseFlag = doseFlag
        }
    }

    public var patient: HL7Patient
    public var din: String
    public var productName: String
    public var productDescriptionCode: String
    /// DTM of the collection and of the release.
    public var collectedAt: String
    public var releasedAt: String
    public var releasedBy: String
    public var collectedVolumeMillilitres: Double
    public var collectedCD3Cells: Double
    public var viabilityFraction: Double?
    public var signedContentSHA256: String
    public var units: [Unit]

    public init(
        patient: HL7Patient, din: String, productName: String, productDescriptionCode: String, collectedAt: String,
        releasedAt: String, releasedBy: String, collectedVolumeMillilitres: Double, collectedCD3Cells: Double,
        viabilityFraction: Double?, signedContentSHA256: String, units: [Unit]
    ) {
        self.patient = patient
        self.din = din
        self.productName = productName
        self.productDescriptionCode = productDescriptionCode
        self.collectedAt = collectedAt
        self.releasedAt = releasedAt
        self.releasedBy = releasedBy
        self.collectedVolumeMillilitres = collectedVolumeMillilitres
        self.collectedCD3Cells = collectedCD3Cells
        self.viabilityFraction = viabilityFraction
        self.signedContentSHA256 = signedContentSHA256
        self.units = units
    }

    /// `ORU^R01^ORU_R01`: MSH, PID, PV1, OBR (the product: filler order number = DIN, result status
    /// F), OBX rows for the product, then per unit its identification, volume and CD3+ content
    /// (OBX-4 = unit number).
    public func message(_ envelope: HL7Envelope) -> HL7Message {
        var segments = [
            CommonSegments.msh(envelope, type: ["ORU", "R01", "ORU_R01"], profile: nil),
            CommonSegments.pid(patient), CommonSegments.pv1(),
        ]
        var obr = HL7Segment("OBR", [])
        obr.set(1, "1")
        obr.set(3, HL7Text.components([din, "ISBT128"]))
        obr.set(4, HL7Text.components(["APH_PRODUCT", "Apheresis product released", "99APH"]))
        obr.set(7, collectedAt)
        obr.set(22, releasedAt)
        obr.set(25, "F")
        segments.append(obr)
        var setID = 0
        func add(_ type: String, _ code: String, _ text: String, _ sub: String, _ value: String, unit: (String, String)? = nil) {
            setID += 1
            var obx = HL7Segment("OBX", [])
            obx.set(1, String(setID))
            obx.set(2, type)
            obx.set(3, HL7Text.components([code, text, "99APH"]))
            obx.set(4, sub)
            obx.set(5, value)
            if let unit { obx.set(6, HL7Text.components([unit.0, unit.1, "UCUM"])) }
            obx.set(11, "F")
            obx.set(14, releasedAt)
            segments.append(obx)
        }
        func number(_ x: Double) -> String? { HL7Text.number(x) }
        add("ST", "APH_DIN", "Donation identification number (ISBT 128)", "0", HL7Text.escape(din))
        add("ST", "APH_PRODUCT_NAME", "Product", "0", HL7Text.escape("\(productName) (\(productDescriptionCode))"))
        if let v = number(collectedVolumeMillilitres) { add("NM", "APH_COLLECTED_VOL", "Collected volume", "0", v, unit: ("mL", "mL")) }
        if let v = number(collectedCD3Cells) { add("NM", "APH_CD3_COLLECTED", "CD3+ cells collected", "0", v, unit: ("{cells}", "cells")) }
        if let viability = viabilityFraction, let v = number(HL7Text.converted(viability, by: 100)) {
            add("NM", "APH_VIABILITY", "Viability", "0", v, unit: ("%", "%"))
        }
        add("ST", "APH_RELEASED_BY", "Released by (electronic signature)", "0", HL7Text.escape(releasedBy))
        add("ST", "APH_SIGNED_SHA256", "SHA-256 of the signed content", "0", HL7Text.escape(signedContentSHA256))
        add("NM", "APH_UNIT_COUNT", "Units", "0", String(units.count))
        for (index, unit) in units.enumerated() {
            let sub = String(index + 1)
            add("ST", "APH_UNIT_PRODUCT_CODE", "Unit product code (ISBT 128)", sub, HL7Text.escape(unit.productCode))
            if let v = number(unit.volumeMillilitres) { add("NM", "APH_UNIT_VOL", "Unit volume", sub, v, unit: ("mL", "mL")) }
            if let v = number(unit.cd3Cells) { add("NM", "APH_UNIT_CD3", "CD3+ cells in the unit", sub, v, unit: ("{cells}", "cells")) }
            if let perKg = unit.cd3CellsPerKilogram, let v = number(perKg) {
                add("NM", "APH_UNIT_CD3_PER_KG", "CD3+ cells per kg of the patient", sub, v, unit: ("{cells}/kg", "cells/kg"))
            }
            add("ST", "APH_UNIT_DOSE_BAND", "Unit against the dose band", sub, HL7Text.escape(unit.doseFlag))
        }
        return HL7Message(segments)
    }
}
