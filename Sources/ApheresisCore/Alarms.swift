import SeparatorProtocol

/// A stable alarm code, as the journal and the store key alarms. Device
/// alarms are `DEVICE_<device code>`.
public struct AlarmCode: Hashable, Sendable, RawRepresentable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public static let acRatio: AlarmCode = "AC_RATIO"
    public static let acRatioAgreement: AlarmCode = "AC_RATIO_AGREEMENT"
    public static let acInfusionRate: AlarmCode = "AC_INF_RATE"
    public static let citrateLoad: AlarmCode = "CITRATE_LOAD"
    public static let collectedVolume: AlarmCode = "COLLECT_VOL"
    public static let extracorporealVolume: AlarmCode = "ECV"
    public static let wholeBloodProcessed: AlarmCode = "WB_PROCESSED"
    public static let bloodVolumesProcessed: AlarmCode = "TBV_PROCESSED"
    public static let runTime: AlarmCode = "RUN_TIME"
    public static let staleTelemetry: AlarmCode = "STALE_TELEMETRY"
    public static let linkDown: AlarmCode = "LINK_DOWN"
    public static let dataDecreasing: AlarmCode = "DATA_DECREASING"
    public static let dataRange: AlarmCode = "DATA_RANGE"
    public static let dataClockJump: AlarmCode = "DATA_CLOCK_JUMP"
    /// The run is watched without its RUN_START (quarantined, or the daemon started mid-run).
    public static let dataRunStartMissing: AlarmCode = "DATA_RUN_START_MISSING"
    /// Messages missing from the device's sequence, or TICKs missing from the run time.
    public static let dataGap: AlarmCode = "DATA_GAP"

    /// The pass-through code of a separator alarm.
    public static func device(_ deviceCode: String) -> AlarmCode { AlarmCode(rawValue: "DEVICE_" + deviceCode) }
    public var isDeviceAlarm: Bool { rawValue.hasPrefix("DEVICE_") }

    /// Event-like codes: raised when seen, active until acknowledged (or the
    /// run ends), because nothing later "un-happens" them.
    public var isLatched: Bool {
        isDeviceAlarm || self == .dataDecreasing || self == .dataRange || self == .dataClockJump || self == .dataRunStartMissing
            || self == .dataGap
    }
}

/// Device INFO comments are not alarms (see `DeviceNotice`), so two levels.
public enum AlarmLevel: String, Hashable, Sendable, CaseIterable, Comparable {
    case warning
    case alarm

    private var rank: Int { self == .warning ? 0 : 1 }
    public static func < (a: AlarmLevel, b: AlarmLevel) -> Bool { a.rank < b.rank }
}

public struct AlarmTransition: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case raised
        /// warning -> alarm.
        case escalated
        /// alarm -> warning.
        case deescalated
        /// The same event-like (latched) condition seen again while its alarm
        /// is still active: the alarm's value and message are updated.
        case repeated
        case acknowledged(by: String)
        case cleared(reason: String)
    }

    public var code: AlarmCode
    public var kind: Kind
    /// The level after the transition (for `cleared`, the level it had).
    public var level: AlarmLevel
    /// In `unit`; nil when there is no number (link down, an unbounded ratio).
    public var value: Double?
    /// The threshold crossed, in `unit`.
    public var limit: Double?
    /// Clinic unit of `value` and `limit`, e.g. "mL/min/L".
    public var unit: String
    /// A plain sentence for the nurse, numbers with their units.
    public var message: String
    /// The daemon's monotonic clock.
    public var at: Duration
    /// RUN_TIME of the sample that caused it, in minutes (clinic unit).
    public var runTimeMinutes: Double?
    /// The device clock of the message that caused it, recorded as sent.
    public var deviceTimestamp: DeviceTimestamp?

    public init(
        code: AlarmCode, kind: Kind, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String,
        at: Duration, runTimeMinutes: Double?, deviceTimestamp: DeviceTimestamp?
    ) {
        self.code = code
        self.kind = kind
        self.level = level
        self.value = value
        self.limit = limit
        self.unit = unit
        self.message = message
        self.at = at
        self.runTimeMinutes = runTimeMinutes
        self.deviceTimestamp = deviceTimestamp
    }
}

public struct ActiveAlarm: Hashable, Sendable {
    public var code: AlarmCode
    public var level: AlarmLevel
    /// The transition that raised it.
    public var raised: AlarmTransition
    /// The latest transition (raised, escalated, deescalated, repeated, acknowledged).
    public var latest: AlarmTransition
    /// Who acknowledged the present level; reset when it escalates.
    public var acknowledgedBy: String?
    public var acknowledgedAt: Duration?

    public init(code: AlarmCode, level: AlarmLevel, raised: AlarmTransition, latest: AlarmTransition,
                acknowledgedBy: String? = nil, acknowledgedAt: Duration? = nil) {
        self.code = code
        self.level = level
        self.raised = raised
        self.latest = latest
        self.acknowledgedBy = acknowledgedBy
        self.acknowledgedAt = acknowledgedAt
    }
}

/// A separator ALARM comment with severity INFO: recorded with the run and
/// shown, but not an alarm (nothing to acknowledge or clear).
public struct DeviceNotice: Hashable, Sendable {
    public var code: String
    public var text: String
    public var at: Duration
    public var deviceTimestamp: DeviceTimestamp
    public init(code: String, text: String, at: Duration, deviceTimestamp: DeviceTimestamp) {
        self.code = code
        self.text = text
        self.at = at
        self.deviceTimestamp = deviceTimestamp
    }
}

/// The store's view of one active alarm, for a watcher rebuilt after a restart
/// to agree with (`RunMonitor.reconcile(with:)`). Values in the clinic unit.
public struct StoredAlarmState: Hashable, Sendable {
    public var code: AlarmCode
    public var level: AlarmLevel
    /// Who acknowledged its present level; nil when not acknowledged.
    public var acknowledgedBy: String?
    public var value: Double?
    public var limit: Double?
    public var unit: String
    public var message: String
    /// RUN_TIME when it was raised, in minutes.
    public var runTimeMinutes: Double?

    public init(
        code: AlarmCode, level: AlarmLevel, acknowledgedBy: String?, value: Double?, limit: Double?, unit: String, message: String,
        runTimeMinutes: Double?
    ) {
        self.code = code
        self.level = level
        self.acknowledgedBy = acknowledgedBy
        self.value = value
        self.limit = limit
        self.unit = unit
        self.message = message
        self.runTimeMinutes = runTimeMinutes
    }
}
