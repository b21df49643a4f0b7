import SeparatorProtocol

/// Where a stored message came from.
public enum MessageSource: String, Hashable, Sendable {
    case live
    case export
}

/// The result of `RecordStore.commit`. Every case means "durably handled": the daemon may ACK.
public enum CommitOutcome: Hashable, Sendable {
    /// Newly stored, with its row id, the run it belongs to and the alarm row of each alarm change
    /// committed with it (in the order given).
    case stored(messageRef: Int64, runRef: Int64?, alarmRefs: [Int64])
    /// Already stored with the same (device serial, sequence number) and the same bytes; nothing written.
    case duplicate
    /// (device serial, sequence number) already stored with *different* bytes. The new bytes went to
    /// quarantine (never silently dropped); the stored message is untouched.
    case conflict(quarantineRef: Int64)
}

public enum ExportOutcome: Hashable, Sendable {
    /// The file's run is stored; `newSamples` counts rows not already known (e.g. from the live link).
    case ingested(runRef: Int64, newSamples: Int)
    /// A file with this content hash was already ingested; only the sighting is logged.
    case duplicateFile
}

/// One step in the life of a daemon alarm. A plain record of this module: the store does not
/// depend on how ApheresisCore models alarms.
public struct AlarmChange: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        case raised, escalated, deescalated, acknowledged, cleared
    }
    public var kind: Kind
    public var code: String
    /// The level after this change (e.g. "advisory", "warning", "alarm"), as the caller names levels.
    public var level: String
    public var value: Double?
    public var limit: Double?
    public var unit: String?
    public var message: String?
    public var runTimeMinutes: Double?
    /// Who acknowledged (for `.acknowledged`).
    public var by: String?
    /// Why it cleared, or any other note on the step.
    public var reason: String?

    public init(
        kind: Kind, code: String, level: String, value: Double? = nil, limit: Double? = nil, unit: String? = nil,
        message: String? = nil, runTimeMinutes: Double? = nil, by: String? = nil, reason: String? = nil
    ) {
        self.kind = kind
        self.code = code
        self.level = level
        self.value = value
        self.limit = limit
        self.unit = unit
        self.message = message
        self.runTimeMinutes = runTimeMinutes
        self.by = by
        self.reason = reason
    }
}

/// A daemon-side event to store in the same transaction as a message (kind e.g. "reconnect").
public struct EventNote: Hashable, Sendable {
    public var kind: String
    public var detail: String?
    public init(kind: String, detail: String? = nil) {
        self.kind = kind
        self.detail = detail
    }
}

public enum RecordStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// The file was written by a newer apheresisd: refuse rather than misread or damage it.
    case schemaTooNew(path: String, fileVersion: Int, knownVersion: Int, unknownMigrations: [String])
    /// An alarm step other than `.raised` for an alarm that is not active.
    case noActiveAlarm(deviceSerial: String, runID: String?, code: String, kind: AlarmChange.Kind)
    /// `.raised` while the same (device, run, code) alarm is still active.
    case alarmAlreadyActive(deviceSerial: String, runID: String?, code: String)
    /// SQLite integers are signed 64-bit; a larger sequence number cannot be keyed. Quarantine the message.
    case sequenceOutOfRange(UInt64)
    /// A stored value this build cannot read (named with its table and row).
    case corrupt(String)
    /// The store's volume has less free space than the reserve the store keeps (`RecordStore.Options.reserveBytes`):
    /// the write was refused before SQLite started it, so nothing of it is stored. Free space for an
    /// unprivileged process (statvfs `f_bavail * f_frsize`) on the volume holding the database file.
    case storageFull(path: String, freeBytes: UInt64, reserveBytes: UInt64)
    /// No run with this id.
    case runNotFound(runRef: Int64)
    /// No run with this run id from this device.
    case runNotKnown(deviceSerial: String, runID: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            "cannot open record store \(path): \(reason)"
        case .schemaTooNew(let path, let fileVersion, let knownVersion, let unknown):
            "record store \(path) has schema version \(fileVersion) (migrations \(unknown.joined(separator: ", "))) "
                + "but this apheresisd knows only up to version \(knownVersion); refusing to open it. "
                + "Run the newer apheresisd, or restore a backup made for this version."
        case .noActiveAlarm(let serial, let runID, let code, let kind):
            "alarm change \(kind.rawValue) for \(serial)/\(runID ?? "-")/\(code): no active alarm with that code"
        case .alarmAlreadyActive(let serial, let runID, let code):
            "alarm \(serial)/\(runID ?? "-")/\(code) raised while already active"
        case .sequenceOutOfRange(let n):
            "sequence number \(n) exceeds the storable range"
        case .corrupt(let what):
            "record store: \(what)"
        case .storageFull(let path, let free, let reserve):
            "record store \(path) is out of disk space: only \(ByteCount.text(free)) free on its volume, less than the "
                + "\(ByteCount.text(reserve)) kept in reserve for checkpoints and recovery. Nothing was written, and a device "
                + "message refused for this is NOT acknowledged (the device keeps it and sends it again). "
                + "Free space on the volume holding \(RecordStore.directory(of: path)); storing resumes by itself once "
                + "more than the reserve is free."
        case .runNotFound(let runRef):
            "record store: no run with id \(runRef)"
        case .runNotKnown(let serial, let runID):
            "record store: no run \(runID) of device \(serial)"
        }
    }
}

// MARK: - Rows returned by reads

public struct DeviceRow: Hashable, Sendable {
    public var serial: String
    public var model: String
    public var softwareVersion: String
    public var name: String?
    public var firstSeenAtUnixMilliseconds: Int64
    public var lastSeenAtUnixMilliseconds: Int64
}

public struct StoredMessage: Hashable, Sendable {
    public var id: Int64
    public var deviceSerial: String
    /// Nil for messages reconstructed from an export file.
    public var sequence: UInt64?
    public var kind: String
    public var runRef: Int64?
    public var deviceTimestamp: DeviceTimestamp?
    public var receivedAtUnixMilliseconds: Int64
    public var receivedMonotonicNanoseconds: Int64?
    public var source: MessageSource
    public var exportFileRef: Int64?
    /// The exact message text as received (for file messages: as re-encoded from the file).
    public var raw: [UInt8]
}

/// A RUN_START R record as kept in `runs.settings`.
public struct RunSetting: Hashable, Sendable {
    public var code: ParameterCode
    public var value: ResultValue
    public var unit: String
}

public struct RunRow: Hashable, Sendable {
    public enum State: String, Hashable, Sendable { case open, closed }
    public var id: Int64
    public var deviceSerial: String
    public var runID: String
    public var procedure: String
    public var patientID: String?
    public var patientFamilyName: String?
    public var patientGivenName: String?
    public var birthDate: String?
    public var sex: String?
    public var heightCentimetres: Double?
    public var weightKilograms: Double?
    public var startDeviceTimestamp: DeviceTimestamp?
    public var endDeviceTimestamp: DeviceTimestamp?
    public var openedAtUnixMilliseconds: Int64
    public var closedAtUnixMilliseconds: Int64?
    public var state: State
    public var profileName: String?
    /// Nil until the run's RUN_START has been seen (live or from its file).
    public var settings: [RunSetting]?
}

public struct SampleRow: Hashable, Sendable {
    public var id: Int64
    public var runRef: Int64
    public var messageRef: Int64
    public var deviceTimestamp: DeviceTimestamp?
    /// JSON object for codes without a column: `{"CODE": {"number": 1.5, "unit": "mL"}}` or `{"text": ...}`.
    public var extraJSON: String?
    public var qualityFlags: [String]
    public var runTimeMinutes: Double?
    public var inletVolumeMillilitres: Double?
    public var wholeBloodVolumeMillilitres: Double?
    public var acVolumeMillilitres: Double?
    public var acToPatientMillilitres: Double?
    public var collectVolumeMillilitres: Double?
    public var plasmaVolumeMillilitres: Double?
    public var inletFlowMillilitresPerMinute: Double?
    public var acFlowMillilitresPerMinute: Double?
    public var returnFlowMillilitresPerMinute: Double?
    public var collectFlowMillilitresPerMinute: Double?
    public var acRatio: Double?
    public var acInfusionRateMillilitresPerMinutePerLitre: Double?
    public var bloodVolumesProcessed: Double?
    public var centrifugeRPM: Double?
    public var accessPressureMillimetresOfMercury: Double?
    public var returnPressureMillimetresOfMercury: Double?

    /// The value of a telemetry code that has a column, in its wire unit.
    public func value(_ code: ParameterCode) -> Double? { values[code] }
    /// Every column that holds a value, keyed by code.
    public var values: [ParameterCode: Double] = [:]
}

public struct AlarmRow: Hashable, Sendable {
    public enum State: String, Hashable, Sendable { case raised, acknowledged, cleared }
    public var id: Int64
    public var deviceSerial: String
    public var runRef: Int64?
    public var code: String
    public var level: String
    public var state: State
    public var value: Double?
    public var limit: Double?
    public var unit: String?
    public var message: String?
    public var raisedAtUnixMilliseconds: Int64
    public var raisedRunTimeMinutes: Double?
    public var acknowledgedBy: String?
    public var acknowledgedAtUnixMilliseconds: Int64?
    public var clearedAtUnixMilliseconds: Int64?
    public var clearReason: String?
}

public struct AlarmEventRow: Hashable, Sendable {
    public var id: Int64
    public var alarmRef: Int64
    public var kind: AlarmChange.Kind
    public var level: String
    public var value: Double?
    public var limit: Double?
    public var runTimeMinutes: Double?
    public var actor: String?
    public var detail: String?
    public var messageRef: Int64?
    public var atUnixMilliseconds: Int64
}

public struct EventRow: Hashable, Sendable {
    public var id: Int64
    public var deviceSerial: String?
    public var runRef: Int64?
    public var messageRef: Int64?
    public var kind: String
    public var atUnixMilliseconds: Int64
    public var deviceTimestamp: DeviceTimestamp?
    public var detail: String?
}

public struct QuarantineRow: Hashable, Sendable {
    public var id: Int64
    public var deviceSerial: String?
    public var receivedAtUnixMilliseconds: Int64
    public var source: MessageSource
    public var reason: String
    public var raw: [UInt8]
}

public struct ExportFileRow: Hashable, Sendable {
    public enum Outcome: String, Hashable, Sendable { case ingested, duplicate, malformed }
    public var id: Int64
    public var path: String
    public var contentSHA256: String
    public var deviceSerial: String?
    public var runID: String?
    public var ingestedAtUnixMilliseconds: Int64
    public var outcome: Outcome
    public var detail: String?
}

/// Totals for the daemon's status line.
public struct StoreCounts: Hashable, Sendable {
    public var messages: Int
    public var samples: Int
    public var runs: Int
    public var openRuns: Int
    public var activeAlarms: Int
    public var quarantined: Int
}
