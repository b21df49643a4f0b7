import Quantities
import SeparatorProtocol

/// When a transition happened: the daemon's clock, and the RUN_TIME and device clock of the
/// message that caused it (nil when a timer or a user caused it).
struct AlarmStamp: Sendable {
    var at: Duration
    var runTime: Seconds?
    var deviceTimestamp: DeviceTimestamp?
    var runTimeMinutes: Double? { runTime?.minutes }
}

/// The active alarms of one run: the only place they change, each change returned as the
/// transition the store records.
///
/// Invariants (AlarmStateMachineTests):
/// - At most one active alarm per code, in the order raised.
/// - Every returned transition matches a change of the active set: `raised` adds the code,
///   `cleared` removes it (only an active code clears), `escalated`/`deescalated` move its level,
///   `repeated` and `acknowledged` keep it; no change, no transition. `reconcile` returns none:
///   the store, whose set it adopts, holds them.
/// - A limit alarm (`LimitReading`) goes up as soon as a line is reached, and leaves a level it
///   holds only when the value falls below that line x (1 - hysteresis).
/// - Escalation wants a new acknowledgement; de-escalation keeps it.
/// - Acknowledging keeps a limit alarm active, its level acknowledged once; a latched alarm ends
///   with it. A latched alarm otherwise ends only with the run (`clearAll`), by `reconcile`, or,
///   already acknowledged, when seen again (raised anew); no reading or clear names a latched code.
/// - An alarm raised after its clear is a new alarm, unacknowledged.
struct AlarmBook: Sendable {
    /// In the order they were raised.
    private(set) var active: [ActiveAlarm] = []

    func level(of code: AlarmCode) -> AlarmLevel? { active.first { $0.code == code }?.level }
    func isActive(_ code: AlarmCode) -> Bool { active.contains { $0.code == code } }

    /// The highest tier reached, with hysteresis: a tier at or below the
    /// present level is left only when the value falls below
    /// threshold x (1 - hysteresis). `strict` raises above (not at) the line.
    /// A value equal to a line up to binary rounding counts as at it.
    static func level(value: Double, tiers: [(AlarmLevel, Double)], current: AlarmLevel?, hysteresis: Double, strict: Bool) -> AlarmLevel? {
        var result: AlarmLevel?
        for (tier, threshold) in tiers {
            let held = current.map { tier <= $0 } ?? false
            let reached =
                held
                ? Crossing.isAtOrAbove(value, threshold * (1 - hysteresis))
                : (strict ? Crossing.isAbove(value, threshold) : Crossing.isAtOrAbove(value, threshold))
            if reached, result.map({ tier > $0 }) ?? true { result = tier }
        }
        return result
    }

    /// Carries out what a judgement asks, in order.
    mutating func enact(_ verdicts: [AlarmVerdict], stamp: AlarmStamp) -> [AlarmTransition] {
        var out: [AlarmTransition] = []
        for verdict in verdicts {
            switch verdict {
            case .reading(let r):
                let level = Self.level(value: r.measure, tiers: r.lines, current: level(of: r.code), hysteresis: r.hysteresis, strict: r.strict)
                if let t = transition(r.code, to: level, value: r.value, limit: r.limit, unit: r.unit, message: r.message, stamp: stamp) {
                    out.append(t)
                }
            case .raise(let code, let level, let value, let limit, let unit, let message):
                if let t = apply(code, to: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp) { out.append(t) }
            case .latched(let code, let level, let value, let limit, let unit, let message):
                out += raiseLatched(code, level: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp)
            }
        }
        return out
    }

    /// Moves a limit alarm to `level` (nil = clear) and returns the transition, if any.
    /// `value` and the limit are in the clinic unit, cleaned of conversion noise.
    mutating func transition(
        _ code: AlarmCode, to level: AlarmLevel?, value: Double?, limit: (AlarmLevel) -> Double?, unit: String,
        message: (AlarmLevel?) -> String, stamp: AlarmStamp
    ) -> AlarmTransition? {
        let value = value.map(clinic)
        if let level {
            return apply(code, to: level, value: value, limit: limit(level).map(clinic), unit: unit, message: message(level), stamp: stamp)
        }
        guard let index = active.firstIndex(where: { $0.code == code }) else { return nil }
        let left = active[index].level
        active.remove(at: index)
        return AlarmTransition(
            code: code, kind: .cleared(reason: "back within limits"), level: left, value: value, limit: limit(left).map(clinic),
            unit: unit, message: message(nil), at: stamp.at, runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
    }

    /// Raises or moves an alarm to `level`; nil when it already is there.
    mutating func apply(
        _ code: AlarmCode, to level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String, stamp: AlarmStamp
    ) -> AlarmTransition? {
        func make(_ kind: AlarmTransition.Kind) -> AlarmTransition {
            AlarmTransition(
                code: code, kind: kind, level: level, value: value, limit: limit, unit: unit, message: message, at: stamp.at,
                runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
        }
        guard let index = active.firstIndex(where: { $0.code == code }) else {
            let t = make(.raised)
            active.append(ActiveAlarm(code: code, level: level, raised: t, latest: t))
            return t
        }
        let old = active[index].level
        guard old != level else { return nil }
        let t = make(level > old ? .escalated : .deescalated)
        active[index].level = level
        active[index].latest = t
        if level > old {
            // A higher level needs its own acknowledgement.
            active[index].acknowledgedBy = nil
            active[index].acknowledgedAt = nil
        }
        return t
    }

    /// Event-like alarms: raised when seen; seen again while active, the
    /// alarm is updated (and escalated if the new one is more severe).
    /// An acknowledged latched alarm still active (acknowledged before acknowledgements ended them,
    /// or adopted from the store after a restart) that is seen again ends, and a new alarm is raised:
    /// staff must see the new occurrence, and the store keeps it as its own row.
    mutating func raiseLatched(
        _ code: AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String, stamp: AlarmStamp
    ) -> [AlarmTransition] {
        var out: [AlarmTransition] = []
        if let index = active.firstIndex(where: { $0.code == code }), let by = active[index].acknowledgedBy {
            let ended = active.remove(at: index)
            out.append(Self.cleared(ended, reason: "acknowledged by \(by); seen again", stamp: stamp))
        }
        if let t = raiseLatchedOnce(code, level: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp) {
            out.append(t)
        }
        return out
    }

    private mutating func raiseLatchedOnce(
        _ code: AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String, stamp: AlarmStamp
    ) -> AlarmTransition? {
        if let index = active.firstIndex(where: { $0.code == code }) {
            let newLevel = max(level, active[index].level)
            let kind: AlarmTransition.Kind = newLevel > active[index].level ? .escalated : .repeated
            let t = AlarmTransition(
                code: code, kind: kind, level: newLevel, value: value, limit: limit, unit: unit, message: message, at: stamp.at,
                runTimeMinutes: stamp.runTimeMinutes, deviceTimestamp: stamp.deviceTimestamp)
            active[index].level = newLevel
            active[index].latest = t
            active[index].acknowledgedBy = nil
            active[index].acknowledgedAt = nil
            return t
        }
        return apply(code, to: level, value: value, limit: limit, unit: unit, message: message, stamp: stamp)
    }

    mutating func clear(_ code: AlarmCode, reason: String, stamp: AlarmStamp) -> AlarmTransition? {
        guard let index = active.firstIndex(where: { $0.code == code }) else { return nil }
        let alarm = active.remove(at: index)
        return Self.cleared(alarm, reason: reason, stamp: stamp)
    }

    mutating func clearAll(reason: String, stamp: AlarmStamp) -> [AlarmTransition] {
        let all = active
        active.removeAll()
        return all.map { Self.cleared($0, reason: reason, stamp: stamp) }
    }

    private static func cleared(_ alarm: ActiveAlarm, reason: String, stamp: AlarmStamp) -> AlarmTransition {
        AlarmTransition(
            code: alarm.code, kind: .cleared(reason: reason), level: alarm.level, value: nil, limit: nil, unit: alarm.latest.unit,
            message: "\(alarm.code) cleared: \(reason).", at: stamp.at, runTimeMinutes: stamp.runTimeMinutes,
            deviceTimestamp: stamp.deviceTimestamp)
    }

    /// See `RunMonitor.acknowledge(code:by:now:)`. The transitions carry no device clock: a user
    /// acknowledged, not a message.
    mutating func acknowledge(_ code: AlarmCode, by user: String, stamp: AlarmStamp) -> [AlarmTransition] {
        guard let index = active.firstIndex(where: { $0.code == code }) else { return [] }
        // A latched alarm acknowledged but still active (restored from an older store) can still end.
        guard active[index].acknowledgedBy == nil || code.isLatched else { return [] }
        let alarm = active[index]
        var transition = alarm.latest
        transition.kind = .acknowledged(by: user)
        transition.at = stamp.at
        transition.runTimeMinutes = stamp.runTimeMinutes
        transition.deviceTimestamp = nil
        transition.message = "Acknowledged by \(user): \(alarm.latest.message)"
        guard !code.isLatched else {
            active.remove(at: index)
            return [transition, Self.cleared(alarm, reason: "acknowledged by \(user)", stamp: stamp)]
        }
        active[index].acknowledgedBy = user
        active[index].acknowledgedAt = stamp.at
        active[index].latest = transition
        return [transition]
    }

    /// See `RunMonitor.reconcile(with:)`. `clock`: the daemon's newest reading, stamping what is
    /// adopted or newly acknowledged.
    mutating func reconcile(with stored: [StoredAlarmState], clock: Duration) {
        var reconciled: [ActiveAlarm] = []
        for state in stored where !reconciled.contains(where: { $0.code == state.code }) {
            let acknowledgedAt: Duration? = state.acknowledgedBy == nil ? nil : clock
            if var alarm = active.first(where: { $0.code == state.code }) {
                alarm.level = state.level
                alarm.latest.level = state.level
                if alarm.acknowledgedBy != state.acknowledgedBy {
                    alarm.acknowledgedBy = state.acknowledgedBy
                    alarm.acknowledgedAt = acknowledgedAt
                }
                reconciled.append(alarm)
            } else {
                let raised = AlarmTransition(
                    code: state.code, kind: .raised, level: state.level, value: state.value, limit: state.limit, unit: state.unit,
                    message: state.message, at: clock, runTimeMinutes: state.runTimeMinutes, deviceTimestamp: nil)
                reconciled.append(
                    ActiveAlarm(
                        code: state.code, level: state.level, raised: raised, latest: raised, acknowledgedBy: state.acknowledgedBy,
                        acknowledgedAt: acknowledgedAt))
            }
        }
        active = reconciled
    }
}

/// What a judgement asks of the alarm book for one code.
enum AlarmVerdict {
    /// A limit's reading: the book sets the level by its lines, with hysteresis (below all, cleared).
    case reading(LimitReading)
    /// Raise, or move to `level`, whatever the present one (a condition without a measure to hold).
    case raise(AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String)
    /// An event-like condition seen (`AlarmBook.raiseLatched`).
    case latched(AlarmCode, level: AlarmLevel, value: Double?, limit: Double?, unit: String, message: String)
}

/// A measured quantity against a limit's lines.
struct LimitReading {
    var code: AlarmCode
    /// What the lines are compared with, in their unit (SI, a deviation, a fraction).
    var measure: Double
    /// Each level with the line it is reached at.
    var lines: [(AlarmLevel, Double)]
    var hysteresis: Double
    /// Raised above (not at) the line.
    var strict = false
    /// Shown with the transition, in the clinic unit.
    var value: Double?
    var limit: (AlarmLevel) -> Double?
    var unit: String
    /// The sentence at a level; nil: back within limits.
    var message: (AlarmLevel?) -> String
}
