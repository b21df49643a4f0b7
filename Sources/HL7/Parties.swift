/// Who sends and who receives (MSH-3 to MSH-6), as configured per destination.
public struct HL7Endpoints: Hashable, Sendable {
    public var sendingApplication: String
    public var sendingFacility: String
    public var receivingApplication: String
    public var receivingFacility: String

    public init(sendingApplication: String, sendingFacility: String, receivingApplication: String, receivingFacility: String) {
        self.sendingApplication = sendingApplication
        self.sendingFacility = sendingFacility
        self.receivingApplication = receivingApplication
        self.receivingFacility = receivingFacility
    }
}

/// What MSH says about one message besides the endpoints.
public struct HL7Envelope: Hashable, Sendable {
    public var endpoints: HL7Endpoints
    /// MSH-10: unique per sending store, kept for every resend of the message.
    public var controlID: String
    /// MSH-7 as DTM with its offset (`HL7Time`).
    public var createdAt: String

    public init(endpoints: HL7Endpoints, controlID: String, createdAt: String) {
        self.endpoints = endpoints
        self.controlID = controlID
        self.createdAt = createdAt
    }
}

/// The patient of the run as the separator named them (PID); every part may be missing.
public struct HL7Patient: Hashable, Sendable {
    public var id: String?
    public var family: String?
    public var given: String?
    /// `YYYYMMDD`.
    public var birthDate: String?
    /// `M`, `F` or `U` (HL7 table 0001 uses the same letters).
    public var sex: String?

    public init(id: String?, family: String?, given: String?, birthDate: String?, sex: String?) {
        self.id = id
        self.family = family
        self.given = given
        self.birthDate = birthDate
        self.sex = sex
    }
}

/// The separator that made the observations (OBX-18).
public struct HL7Equipment: Hashable, Sendable {
    public var serialNumber: String
    public var model: String

    public init(serialNumber: String, model: String) {
        self.serialNumber = serialNumber
        self.model = model
    }

    /// EI: the serial as the entity identifier, the model as its namespace.
    var field: String { HL7Text.components([serialNumber, model]) }
}

/// Segments both message kinds share.
enum CommonSegments {
    /// IHE PCD message profiles (MSH-21).
    static let pcd01Profile = HL7Text.components(["IHE_PCD_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.1.1", "ISO"])
    static let pcd04Profile = HL7Text.components(["IHE_PCD_ACM_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.4.4", "ISO"])

    /// MSH with accept acknowledgements always (MSH-15 AL) and no application acknowledgement
    /// (MSH-16 NE), as IHE PCD asks; version 2.6; UTF-8.
    static func msh(_ envelope: HL7Envelope, type: [String], profile: String?) -> HL7Segment {
        let e = envelope.endpoints
        // Fields from MSH-2 on (MSH-1 is the separator itself).
        var fields = [
            HL7Text.encodingCharacters,
            HL7Text.components([e.sendingApplication]),
            HL7Text.components([e.sendingFacility]),
            HL7Text.components([e.receivingApplication]),
            HL7Text.components([e.receivingFacility]),
            envelope.createdAt,
            "",
            HL7Text.components(type),
            HL7Text.escape(envelope.controlID),
            "P",
            "2.6",
            "", "", "AL", "NE", "", "UNICODE UTF-8", "", "",
        ]
        if let profile { fields.append(profile) }
        return HL7Segment("MSH", fields)
    }

    static func pid(_ patient: HL7Patient) -> HL7Segment {
        var pid = HL7Segment("PID", [])
        pid.set(1, "1")
        // PID-3 is required: an unknown patient is still named, as such.
        pid.set(3, HL7Text.components([patient.id ?? "UNKNOWN", nil, nil, nil, "PI"]))
        // PID-5 is required too: no name is sent as name type U (unspecified).
        let name = HL7Text.components([patient.family, patient.given])
        pid.set(5, name.isEmpty ? "^^^^^^U" : name)
        if let birth = patient.birthDate, birth.utf8.count == 8, birth.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            pid.set(7, birth)
        }
        if let sex = patient.sex, ["M", "F", "U", "O", "A", "N"].contains(sex) { pid.set(8, sex) }
        return pid
    }

    /// The visit is not known to the separator: patient class U (unknown).
    static func pv1() -> HL7Segment { HL7Segment("PV1", ["1", "U"]) }
}
