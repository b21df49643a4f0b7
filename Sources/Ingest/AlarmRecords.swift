import ApheresisCore
import Foundation
import Logging
import RecordStore

/// Alarm transitions in the journal, with structured fields; live runs and export files alike.
enum AlarmJournal {
    /// 12 significant digits: a configured 1.8 that went through SI and back prints as 1.8.
    static func number(_ x: Double) -> String { String(format: "%.12g", x) }

    static func log(_ transitions: [AlarmTransition], runID: String, serial: String, logger: Logger) {
        for transition in transitions {
            var metadata: Logger.Metadata = ["device_serial": "\(serial)", "run_id": "\(runID)"]
            metadata["alarm_code"] = "\(transition.code.rawValue)"
            metadata["alarm_level"] = "\(transition.level.rawValue)"
            metadata["alarm_transition"] = "\(transition.kind.name)"
            // Numbers as configured and measured, without binary noise (1.8, not 1.7999999999999998).
            if let value = transition.value { metadata["alarm_value"] = "\(AlarmJournal.number(value))" }
            if let limit = transition.limit { metadata["alarm_limit"] = "\(AlarmJournal.number(limit))" }
            if !transition.unit.isEmpty { metadata["alarm_unit"] = "\(transition.unit)" }
            if let minutes = transition.runTimeMinutes { metadata["run_time_min"] = "\(AlarmJournal.number(minutes))" }
            let level: Logger.Level =
                switch transition.kind {
                case .raised, .escalated, .repeated: transition.level == .alarm ? .critical : .warning
                case .deescalated: .warning
                case .acknowledged, .cleared: .notice
                }
            logger.log(level: level, "\(transition.kind.name) \(transition.code.rawValue): \(transition.message)", metadata: metadata)
        }
    }
}

extension StoredAlarmState {
    /// The store's view of an active alarm, for a rebuilt watcher to agree with.
    init?(_ row: AlarmRow) {
        guard let level = AlarmLevel(rawValue: row.level) else { return nil }
        self.init(
            code: AlarmCode(rawValue: row.code), level: level, acknowledgedBy: row.state == .acknowledged ? row.acknowledgedBy : nil,
            value: row.value, limit: row.limit, unit: row.unit ?? "", message: row.message ?? "", runTimeMinutes: row.raisedRunTimeMinutes)
    }
}

extension RecordStoreError {
    /// The store refused alarm changes because it holds other alarms than the watcher believes.
    var isAlarmDisagreement: Bool {
        switch self {
        case .alarmAlreadyActive, .noActiveAlarm: true
        default: false
        }
    }
}

extension AlarmTransition.Kind {
    var name: String {
        switch self {
        case .raised: "raised"
        case .escalated: "escalated"
        case .deescalated: "deescalated"
        case .repeated: "repeated"
        case .acknowledged: "acknowledged"
        case .cleared: "cleared"
        }
    }
}

extension AlarmChange {
    /// The store's record of a watcher's transition. A repeat of a latched
    /// condition changes nothing the store keeps; it goes to the journal only.
    init?(_ transition: AlarmTransition) {
        let kind: AlarmChange.Kind
        var by: String?
        var reason: String?
        switch transition.kind {
        case .raised: kind = .raised
        case .escalated: kind = .escalated
        case .deescalated: kind = .deescalated
        case .repeated: return nil
        case .acknowledged(let user):
            kind = .acknowledged
            by = user
        case .cleared(let why):
            kind = .cleared
            reason = why
        }
        self.init(
            kind: kind, code: transition.code.rawValue, level: transition.level.rawValue, value: transition.value,
            limit: transition.limit, unit: transition.unit, message: transition.message,
            runTimeMinutes: transition.runTimeMinutes, by: by, reason: reason)
    }
}

extension DataQualityFlag {
    /// How the store marks a sample: the alarm class and what was seen.
    var storeLabel: String {
        switch self {
        case .decreasing(let code, let previous, let current): "DATA_DECREASING:\(code.rawValue):\(previous)>\(current)"
        case .outOfRange(let code, let value, _): "DATA_RANGE:\(code.rawValue):\(value)"
        case .unexpectedUnit(let code, let unit): "DATA_RANGE:\(code.rawValue):unit \(unit)"
        case .clockJump(let device, _, let received): "DATA_CLOCK_JUMP:device \(device.value)s vs \(received.value)s"
        }
    }
}

extension ObservationFigures {
    /// The watcher's recomputed figures for the hospital interface (PCD-01), in the units the
    /// store's outbox writes, converted here from the core's SI types.
    init(_ monitor: RunMonitor) {
        let derived = monitor.latestDerived
        self.init(
            totalBloodVolumeMillilitres: monitor.start.totalBloodVolume?.millilitres, windowRatio: derived.windowRatio,
            runRatio: derived.runRatio, acInfusionRateMillilitresPerMinutePerLitre: derived.acInfusionRate?.millilitresPerMinutePerLitre,
            citrateLoadRateMilligramsPerKilogramPerMinute: derived.citrateLoadRate?.milligramsPerKilogramPerMinute,
            citrateLoadTotalMilligramsPerKilogram: derived.citrateLoadTotal?.milligramsPerKilogram)
    }
}
