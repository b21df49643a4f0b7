/// The five message kinds (M record, field 4).
public enum MessageKind: String, Hashable, Sendable, CaseIterable {
    case runStart = "RUN_START"
    case tick = "TICK"
    case alarm = "ALARM"
    case event = "EVENT"
    case runEnd = "RUN_END"
}

/// The sender field of the H record: `model^software version^serial number`.
public struct DeviceIdentity: Hashable, Sendable {
    public var model: String
    public var softwareVersion: String
    /// Sequence numbers are per serial number; it is the device's identity.
    public var serialNumber: String
    public init(model: String, softwareVersion: String, serialNumber: String) {
        self.model = model
        self.softwareVersion = softwareVersion
        self.serialNumber = serialNumber
    }
}

public enum Sex: String, Hashable, Sendable, CaseIterable {
    case male = "M"
    case female = "F"
    case unknown = "U"
}

/// P record. Height and weight travel as `value^cm` and `value^kg`.
public struct Patient: Hashable, Sendable {
    public var id: String
    public var familyName: String
    public var givenName: String
    public var birthDate: CalendarDate?
    public var sex: Sex
    public var heightCentimetres: Double?
    public var weightKilograms: Double?
    public init(
        id: String, familyName: String, givenName: String, birthDate: CalendarDate?, sex: Sex,
        heightCentimetres: Double?, weightKilograms: Double?
    ) {
        self.id = id
        self.familyName = familyName
        self.givenName = givenName
        self.birthDate = birthDate
        self.sex = sex
        self.heightCentimetres = heightCentimetres
        self.weightKilograms = weightKilograms
    }
}

/// The procedure of an O record (`^^^CMNC`). Unknown procedures are kept.
public struct Procedure: Hashable, Sendable, RawRepresentable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static let cmnc: Procedure = "CMNC"
    public static let mnc: Procedure = "MNC"
    public static let pbsc: Procedure = "PBSC"
    public static let tpe: Procedure = "TPE"
    public static let known: [Procedure] = [.cmnc, .mnc, .pbsc, .tpe]
}

/// O record: the run.
public struct Order: Hashable, Sendable {
    public var runID: String
    public var procedure: Procedure
    public var runStart: DeviceTimestamp?
    public init(runID: String, procedure: Procedure, runStart: DeviceTimestamp?) {
        self.runID = runID
        self.procedure = procedure
        self.runStart = runStart
    }
}

public enum ResultValue: Hashable, Sendable {
    case number(Double)
    case text(String)

    public var number: Double? { if case .number(let v) = self { v } else { nil } }
    public var text: String? { if case .text(let v) = self { v } else { nil } }
}

/// R record.
public struct ResultRecord: Hashable, Sendable {
    public var sequence: Int
    public var code: ParameterCode
    public var value: ResultValue
    /// UCUM unit code as received; empty for text settings.
    public var unit: String
    /// Result status; `F` (final) in this interface.
    public var status: String
    public var timestamp: DeviceTimestamp?
    public init(sequence: Int, code: ParameterCode, value: ResultValue, unit: String, status: String = "F", timestamp: DeviceTimestamp?) {
        self.sequence = sequence
        self.code = code
        self.value = value
        self.unit = unit
        self.status = status
        self.timestamp = timestamp
    }
}

public enum Severity: String, Hashable, Sendable, CaseIterable, Comparable {
    case info = "INFO"
    case warning = "WARNING"
    case alarm = "ALARM"

    private var rank: Int { switch self { case .info: 0; case .warning: 1; case .alarm: 2 } }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// C record: `code^text^severity`, one per alarm or event.
public struct CommentRecord: Hashable, Sendable {
    public var sequence: Int
    /// Comment source; `I` (instrument) in this interface.
    public var source: String
    public var code: String
    public var text: String
    public var severity: Severity
    /// Comment type; `G` (generic) in this interface.
    public var type: String
    public init(sequence: Int, source: String = "I", code: String, text: String, severity: Severity, type: String = "G") {
        self.sequence = sequence
        self.source = source
        self.code = code
        self.text = text
        self.severity = severity
        self.type = type
    }

    /// Operator-action codes an EVENT message carries.
    public static let eventCodes: Set<String> = ["PAUSE", "RESUME", "RINSEBACK", "OPERATOR_NOTE"]
}

/// One E1394 message from the separator: H, M, the kind's records, L.
public struct SeparatorMessage: Hashable, Sendable {
    /// H field 3: the per-device message sequence number (starts at 1, never repeats).
    public var sequenceNumber: UInt64
    /// H field 5.
    public var device: DeviceIdentity
    /// H field 10.
    public var receiverID: String
    /// H field 12; `P` (production).
    public var processingID: String
    /// H field 13; `LIS2-A2`.
    public var version: String
    /// H field 14: the device clock (UTC). Recorded, never trusted as wall time.
    public var timestamp: DeviceTimestamp
    /// M field 4.
    public var kind: MessageKind
    /// M field 5; `1` for this interface version.
    public var interfaceVersion: String
    /// P record (RUN_START and RUN_END).
    public var patient: Patient?
    /// O record (every kind).
    public var order: Order
    /// R records (RUN_START, TICK, RUN_END), in wire order.
    public var results: [ResultRecord]
    /// C records (ALARM, EVENT), in wire order.
    public var comments: [CommentRecord]

    public init(
        sequenceNumber: UInt64, device: DeviceIdentity, receiverID: String = "APHERESISD",
        processingID: String = "P", version: String = "LIS2-A2", timestamp: DeviceTimestamp,
        kind: MessageKind, interfaceVersion: String = "1", patient: Patient? = nil, order: Order,
        results: [ResultRecord] = [], comments: [CommentRecord] = []
    ) {
        self.sequenceNumber = sequenceNumber
        self.device = device
        self.receiverID = receiverID
        self.processingID = processingID
        self.version = version
        self.timestamp = timestamp
        self.kind = kind
        self.interfaceVersion = interfaceVersion
        self.patient = patient
        self.order = order
        self.results = results
        self.comments = comments
    }

    /// The first R record with this code.
    public func result(_ code: ParameterCode) -> ResultRecord? { results.first { $0.code == code } }
    /// The numeric value of the first R record with this code, in its wire unit.
    public func number(_ code: ParameterCode) -> Double? { result(code)?.value.number }
}
