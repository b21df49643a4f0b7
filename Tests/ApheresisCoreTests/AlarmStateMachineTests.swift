@testable import ApheresisCore
import Quantities
import Testing

// The alarm state machine on its own (`AlarmBook`): worked examples of each invariant, then the
// invariants checked after every step of every short operation sequence and of long random ones.

/// One thing that can happen to the book. Limit lines for readings: warning at 10, alarm at 20,
/// hysteresis 10 % (held down to 9 and 18).
enum BookOp: CustomStringConvertible {
    case read(AlarmCode, Double, strict: Bool = false)
    case raise(AlarmCode, AlarmLevel)
    case latched(AlarmCode, AlarmLevel)
    case clear(AlarmCode)
    case acknowledge(AlarmCode, by: String)
    case clearAll
    case reconcile([StoredAlarmState])

    var description: String {
        switch self {
        case .read(let c, let v, let strict): "read(\(c), \(v)\(strict ? ", strict" : ""))"
        case .raise(let c, let l): "raise(\(c), \(l))"
        case .latched(let c, let l): "latched(\(c), \(l))"
        case .clear(let c): "clear(\(c))"
        case .acknowledge(let c, let by): "acknowledge(\(c), \(by))"
        case .clearAll: "clearAll"
        case .reconcile(let s): "reconcile(\(s.map { "\($0.code) \($0.level) \($0.acknowledgedBy ?? "-")" }))"
        }
    }
}

enum BookFixture {
    static let warnLine = 10.0
    static let alarmLine = 20.0
    static let hysteresis = 0.1

    static func stamp(_ step: Int) -> AlarmStamp { AlarmStamp(at: .seconds(step), runTime: Seconds(Double(step)), deviceTimestamp: nil) }

    static func reading(_ code: AlarmCode, _ value: Double, strict: Bool) -> AlarmVerdict {
        .reading(
            LimitReading(
                code: code, measure: value, lines: [(.warning, warnLine), (.alarm, alarmLine)], hysteresis: hysteresis, strict: strict,
                value: value, limit: { $0 == .alarm ? alarmLine : warnLine }, unit: "u", message: { "\(code) at \(value): \($0?.rawValue ?? "ok")" }))
    }

    static func stored(_ code: AlarmCode, _ level: AlarmLevel, by: String? = nil) -> StoredAlarmState {
        StoredAlarmState(code: code, level: level, acknowledgedBy: by, value: 1, limit: 2, unit: "u", message: "stored \(code)", runTimeMinutes: 3)
    }

    /// The level a reading must leave: a line is reached at or above it, or, for a level held,
    /// at or above line x (1 - hysteresis); `strict` raises only above the line.
    static func expectedLevel(_ value: Double, current: AlarmLevel?, strict: Bool) -> AlarmLevel? {
        func reached(_ tier: AlarmLevel, _ line: Double) -> Bool {
            if let current, tier <= current { return value >= line * (1 - hysteresis) }
            return strict ? value > line : value >= line
        }
        if reached(.alarm, alarmLine) { return .alarm }
        if reached(.warning, warnLine) { return .warning }
        return nil
    }
}

extension AlarmBook {
    mutating func perform(_ op: BookOp, stamp: AlarmStamp) -> [AlarmTransition] {
        switch op {
        case .read(let code, let value, let strict): return enact([BookFixture.reading(code, value, strict: strict)], stamp: stamp)
        case .raise(let code, let level):
            return enact([.raise(code, level: level, value: nil, limit: nil, unit: "", message: "\(code) raised")], stamp: stamp)
        case .latched(let code, let level):
            return enact([.latched(code, level: level, value: nil, limit: nil, unit: "", message: "\(code) seen")], stamp: stamp)
        case .clear(let code): return clear(code, reason: "condition gone", stamp: stamp).map { [$0] } ?? []
        case .acknowledge(let code, let user): return acknowledge(code, by: user, stamp: stamp)
        case .clearAll: return clearAll(reason: "run ended", stamp: stamp)
        case .reconcile(let stored):
            reconcile(with: stored, clock: stamp.at)
            return []
        }
    }

    func alarm(_ code: AlarmCode) -> ActiveAlarm? { active.first { $0.code == code } }
}

/// Every invariant of `AlarmBook` for one step; the violations found.
func bookViolations(before: AlarmBook, op: BookOp, returned: [AlarmTransition], after: AlarmBook, stamp: AlarmStamp) -> [String] {
    var v: [String] = []
    let codes = after.active.map(\.code)
    if Set(codes).count != codes.count { v.append("two active alarms share a code: \(codes)") }

    // The transitions, replayed on the active set before, give the active set after (codes, levels,
    // order); but for reconcile, which adopts the store's set, whose transitions the store holds.
    var isReconcile = false
    if case .reconcile = op { isReconcile = true }
    var replay = before.active.map { (code: $0.code, level: $0.level) }
    for t in returned {
        if t.at != stamp.at { v.append("\(t.code) \(t.kind) not stamped with the step") }
        let i = replay.firstIndex { $0.code == t.code }
        switch t.kind {
        case .raised:
            if i != nil { v.append("raised \(t.code) while active") } else { replay.append((t.code, t.level)) }
        case .escalated, .deescalated, .repeated, .acknowledged:
            guard let i else {
                v.append("\(t.kind) for \(t.code), not active")
                continue
            }
            let old = replay[i].level
            switch t.kind {
            case .escalated where t.level <= old: v.append("escalated \(t.code) from \(old) to \(t.level)")
            case .deescalated where t.level >= old: v.append("de-escalated \(t.code) from \(old) to \(t.level)")
            case .repeated where t.level != old, .acknowledged where t.level != old: v.append("\(t.kind) moved \(t.code)")
            default: break
            }
            replay[i].level = t.level
        case .cleared:
            guard let i else {
                v.append("cleared \(t.code), not active")
                continue
            }
            if replay[i].level != t.level { v.append("cleared \(t.code) at \(t.level), active at \(replay[i].level)") }
            replay.remove(at: i)
        }
    }
    if !isReconcile, replay.map(\.code) != codes || replay.map(\.level) != after.active.map(\.level) {
        v.append("transitions \(returned.map { "\($0.code) \($0.kind)" }) do not explain \(before.active.map(\.code)) -> \(codes)")
    }

    for alarm in after.active {
        let mine = returned.filter { $0.code == alarm.code }
        if let last = mine.last, alarm.latest != last { v.append("\(alarm.code): latest is not the transition returned") }
        if let raised = mine.last(where: { $0.kind == .raised }) {
            if alarm.raised != raised { v.append("\(alarm.code): raised anew but keeps the old raise") }
            if alarm.acknowledgedBy != nil { v.append("\(alarm.code): raised anew but acknowledged") }
        }
        if mine.contains(where: { $0.kind == .escalated }), alarm.acknowledgedBy != nil { v.append("\(alarm.code): escalated but acknowledged") }
        if mine.contains(where: { $0.kind == .deescalated }), alarm.acknowledgedBy != before.alarm(alarm.code)?.acknowledgedBy {
            v.append("\(alarm.code): de-escalated and lost its acknowledgement")
        }
    }

    // Latched alarms end by acknowledgement, by the run ending or by the store; never by themselves.
    for alarm in before.active where alarm.code.isLatched && after.alarm(alarm.code) == nil {
        switch op {
        case .acknowledge(let code, _) where code == alarm.code: break
        case .clearAll, .reconcile: break
        default: v.append("latched \(alarm.code) ended by \(op)")
        }
    }

    // What each operation promises.
    let touched: AlarmCode?
    switch op {
    case .read(let code, let value, let strict):
        touched = code
        let expected = BookFixture.expectedLevel(value, current: before.level(of: code), strict: strict)
        if after.level(of: code) != expected {
            v.append("read \(value) from \(String(describing: before.level(of: code))): \(String(describing: after.level(of: code))), want \(String(describing: expected))")
        }
    case .raise(let code, let level):
        touched = code
        if after.level(of: code) != level { v.append("raise: \(code) not at \(level)") }
    case .latched(let code, let level):
        touched = code
        let kinds = returned.map(\.kind)
        if let old = before.alarm(code) {
            if let by = old.acknowledgedBy {
                if kinds != [.cleared(reason: "acknowledged by \(by); seen again"), .raised] { v.append("acknowledged \(code) seen again: \(kinds)") }
            } else if kinds != [level > old.level ? .escalated : .repeated] || after.level(of: code) != max(level, old.level) {
                v.append("active \(code) seen again: \(kinds)")
            }
        } else if kinds != [.raised] {
            v.append("latched \(code) seen: \(kinds)")
        }
        if after.alarm(code)?.acknowledgedBy != nil { v.append("seen \(code) stays acknowledged") }
    case .clear(let code):
        touched = code
        let want: [AlarmTransition.Kind] = before.isActive(code) ? [.cleared(reason: "condition gone")] : []
        if returned.map(\.kind) != want || after.isActive(code) { v.append("clear(\(code)) returned \(returned.map(\.kind))") }
    case .acknowledge(let code, let user):
        touched = code
        let kinds = returned.map(\.kind)
        if let old = before.alarm(code) {
            if code.isLatched {
                if kinds != [.acknowledged(by: user), .cleared(reason: "acknowledged by \(user)")] || after.isActive(code) {
                    v.append("acknowledged latched \(code): \(kinds)")
                }
            } else if old.acknowledgedBy != nil {
                if !returned.isEmpty || after.alarm(code) != old { v.append("acknowledged \(code) twice: \(kinds)") }
            } else {
                let now = after.alarm(code)
                if kinds != [.acknowledged(by: user)] || now?.level != old.level || now?.acknowledgedBy != user || now?.acknowledgedAt != stamp.at
                    || now?.raised != old.raised
                {
                    v.append("acknowledged \(code): \(kinds), now \(String(describing: now))")
                }
            }
        } else if !returned.isEmpty {
            v.append("acknowledged inactive \(code): \(kinds)")
        }
    case .clearAll:
        touched = nil
        if !after.active.isEmpty || returned.map(\.code) != before.active.map(\.code) { v.append("clearAll left \(codes)") }
    case .reconcile(let stored):
        touched = nil
        var seen: [StoredAlarmState] = []
        for s in stored where !seen.contains(where: { $0.code == s.code }) { seen.append(s) }
        if codes != seen.map(\.code) || after.active.map(\.level) != seen.map(\.level)
            || after.active.map(\.acknowledgedBy) != seen.map(\.acknowledgedBy)
        {
            v.append("reconcile: \(codes), want \(seen.map(\.code))")
        }
        for alarm in after.active {
            if let old = before.alarm(alarm.code) {
                if alarm.raised != old.raised { v.append("reconcile lost the history of \(alarm.code)") }
            } else if alarm.raised.kind != .raised || alarm.raised.at != stamp.at || alarm.raised.message != "stored \(alarm.code)" {
                v.append("reconcile adopted \(alarm.code) wrongly")
            }
        }
        if !returned.isEmpty { v.append("reconcile returned transitions") }
    }
    // Nothing else moves.
    if let touched {
        for alarm in before.active where alarm.code != touched && after.alarm(alarm.code) != alarm {
            v.append("\(op) changed \(alarm.code)")
        }
    }
    return v
}

@Suite struct AlarmStateMachine {
    // MARK: - Worked examples

    @Test func oneAlarmPerCode() {
        var book = AlarmBook()
        _ = book.perform(.read(.acRatio, 12), stamp: BookFixture.stamp(1))
        _ = book.perform(.read(.acRatio, 25), stamp: BookFixture.stamp(2))
        _ = book.perform(.raise(.acRatio, .warning), stamp: BookFixture.stamp(3))
        _ = book.perform(.latched(.dataGap, .warning), stamp: BookFixture.stamp(4))
        _ = book.perform(.latched(.dataGap, .alarm), stamp: BookFixture.stamp(5))
        #expect(book.active.map(\.code) == [.acRatio, .dataGap])
        #expect(book.active.map(\.level) == [.warning, .alarm])
    }

    @Test func aClearOnlyForAnActiveAlarm() {
        var book = AlarmBook()
        #expect(book.perform(.clear(.linkDown), stamp: BookFixture.stamp(1)).isEmpty)
        #expect(book.perform(.read(.acRatio, 3), stamp: BookFixture.stamp(2)).isEmpty)
        #expect(book.perform(.clearAll, stamp: BookFixture.stamp(3)).isEmpty)
        _ = book.perform(.raise(.linkDown, .alarm), stamp: BookFixture.stamp(4))
        #expect(book.perform(.clear(.linkDown), stamp: BookFixture.stamp(5)).map(\.kind) == [.cleared(reason: "condition gone")])
        #expect(book.perform(.clear(.linkDown), stamp: BookFixture.stamp(6)).isEmpty)
    }

    @Test func acknowledgingKeepsALimitAlarmAndAReRaiseAfterItsClearIsANewAlarm() {
        var book = AlarmBook()
        let raised = book.perform(.read(.citrateLoad, 12), stamp: BookFixture.stamp(1))
        let ack = book.perform(.acknowledge(.citrateLoad, by: "nurse"), stamp: BookFixture.stamp(2))
        #expect(ack.map(\.kind) == [.acknowledged(by: "nurse")])
        #expect(book.alarm(.citrateLoad)?.acknowledgedBy == "nurse")
        #expect(book.alarm(.citrateLoad)?.acknowledgedAt == .seconds(2))
        #expect(book.alarm(.citrateLoad)?.raised == raised.first)
        // Its level is acknowledged once.
        #expect(book.perform(.acknowledge(.citrateLoad, by: "doctor"), stamp: BookFixture.stamp(3)).isEmpty)

        #expect(book.perform(.read(.citrateLoad, 5), stamp: BookFixture.stamp(4)).map(\.kind) == [.cleared(reason: "back within limits")])
        let again = book.perform(.read(.citrateLoad, 11), stamp: BookFixture.stamp(5))
        #expect(again.map(\.kind) == [.raised])
        #expect(book.alarm(.citrateLoad)?.raised == again.first)
        #expect(book.alarm(.citrateLoad)?.acknowledgedBy == nil)
    }

    @Test func acknowledgingALatchedAlarmEndsIt() {
        var book = AlarmBook()
        _ = book.perform(.latched(.device("E12"), .alarm), stamp: BookFixture.stamp(1))
        let out = book.perform(.acknowledge(.device("E12"), by: "nurse"), stamp: BookFixture.stamp(2))
        #expect(out.map(\.kind) == [.acknowledged(by: "nurse"), .cleared(reason: "acknowledged by nurse")])
        #expect(book.active.isEmpty)
    }

    @Test func escalationWantsANewAcknowledgementAndDeEscalationKeepsIt() {
        var book = AlarmBook()
        _ = book.perform(.read(.acInfusionRate, 10), stamp: BookFixture.stamp(1))
        _ = book.perform(.acknowledge(.acInfusionRate, by: "nurse"), stamp: BookFixture.stamp(2))
        #expect(book.perform(.read(.acInfusionRate, 20), stamp: BookFixture.stamp(3)).map(\.kind) == [.escalated])
        #expect(book.alarm(.acInfusionRate)?.acknowledgedBy == nil)
        _ = book.perform(.acknowledge(.acInfusionRate, by: "nurse"), stamp: BookFixture.stamp(4))
        #expect(book.perform(.read(.acInfusionRate, 17), stamp: BookFixture.stamp(5)).map(\.kind) == [.deescalated])
        #expect(book.alarm(.acInfusionRate)?.acknowledgedBy == "nurse")
    }

    @Test func aHeldLevelIsLeftOnlyBelowItsLineLessTheHysteresis() {
        var book = AlarmBook()
        let steps: [(Double, AlarmLevel?)] = [
            (9.9, nil), (10, .warning), (9.5, .warning), (9, .warning), (8.9, nil), (19.9, .warning), (20, .alarm), (18.5, .alarm),
            (18, .alarm), (17.9, .warning), (9, .warning), (25, .alarm), (0, nil),
        ]
        for (i, (value, want)) in steps.enumerated() {
            _ = book.perform(.read(.collectedVolume, value), stamp: BookFixture.stamp(i))
            #expect(book.level(of: .collectedVolume) == want, "at \(value)")
        }
    }

    @Test func aStrictLineIsCrossedAboveNotAt() {
        let level = { (value: Double, current: AlarmLevel?) in
            AlarmBook.level(value: value, tiers: [(.alarm, 20)], current: current, hysteresis: 0.1, strict: true)
        }
        #expect(level(20, nil) == nil)
        #expect(level(20.001, nil) == .alarm)
        #expect(level(18, .alarm) == .alarm)
        #expect(level(17.99, .alarm) == nil)
        // A value equal to the line up to binary rounding is at it.
        #expect(AlarmBook.level(value: 0.1 + 0.2, tiers: [(.warning, 0.3)], current: nil, hysteresis: 0, strict: false) == .warning)
        #expect(AlarmBook.level(value: 0.1 + 0.2, tiers: [(.warning, 0.3)], current: nil, hysteresis: 0, strict: true) == nil)
    }

    @Test func latchedAlarmsStayUntilAcknowledgedAndEndWhenSeenAgainAfterThat() {
        var book = AlarmBook()
        _ = book.perform(.latched(.dataRange, .alarm), stamp: BookFixture.stamp(1))
        _ = book.perform(.read(.acRatio, 30), stamp: BookFixture.stamp(2))
        _ = book.perform(.clearAll, stamp: BookFixture.stamp(2))
        _ = book.perform(.latched(.dataRange, .alarm), stamp: BookFixture.stamp(2))
        _ = book.perform(.read(.acRatio, 0), stamp: BookFixture.stamp(2))
        #expect(book.isActive(.dataRange))
        #expect(book.perform(.latched(.dataRange, .warning), stamp: BookFixture.stamp(3)).map(\.kind) == [.repeated])
        #expect(book.level(of: .dataRange) == .alarm)

        // Acknowledged but active (adopted from an older store): seen again, it ends and is raised anew.
        book.reconcile(with: [BookFixture.stored(.dataRange, .alarm, by: "nurse")], clock: .seconds(4))
        let out = book.perform(.latched(.dataRange, .warning), stamp: BookFixture.stamp(5))
        #expect(out.map(\.kind) == [.cleared(reason: "acknowledged by nurse; seen again"), .raised])
        #expect(book.alarm(.dataRange)?.level == .warning)
        #expect(book.alarm(.dataRange)?.acknowledgedBy == nil)
    }

    /// Readings and clears are the only ends a latched alarm must not meet: no caller makes them.
    @Test func noReadingJudgesALatchedCode() {
        let judge = LimitJudge(
            profile: .standard, start: RunStartValues(runStartMessage(targetWB: 3000)), hasRunStart: true, inferredTotalBloodVolume: nil)
        var d = DerivedValues()
        d.windowRatio = 14
        d.deviceRatioRange = 12...12
        d.ratioDisagreementFraction = 0.2
        d.acInfusionRate = .millilitresPerMinutePerLitre(2)
        d.citrateLoadRate = .milligramsPerKilogramPerMinute(2)
        d.collectedVolume = .millilitres(100)
        d.wholeBloodProcessed = .millilitres(3000)
        d.bloodVolumesProcessed = 2
        d.runTime = .minutes(300)
        let read = (judge.ratio(d) + judge.rates(d) + judge.progress(d)).compactMap { verdict -> AlarmCode? in
            if case .reading(let r) = verdict { r.code } else { nil }
        }
        #expect(read.count == 8)
        #expect(read.allSatisfy { !$0.isLatched && LimitJudge.judgedCodes.contains($0) })
        #expect(!AlarmCode.staleTelemetry.isLatched && !AlarmCode.linkDown.isLatched)  // RunMonitor's explicit clears
    }

    @Test func reconcileRestoresExactlyTheStoredActiveSet() {
        var book = AlarmBook()
        let raised = book.perform(.read(.acRatio, 25), stamp: BookFixture.stamp(1))
        _ = book.perform(.latched(.dataGap, .warning), stamp: BookFixture.stamp(2))
        book.reconcile(
            with: [
                BookFixture.stored(.staleTelemetry, .alarm), BookFixture.stored(.acRatio, .warning, by: "nurse"),
                BookFixture.stored(.staleTelemetry, .warning),
            ],
            clock: .seconds(9))
        #expect(book.active.map(\.code) == [.staleTelemetry, .acRatio])
        #expect(book.active.map(\.level) == [.alarm, .warning])
        #expect(book.alarm(.acRatio)?.raised == raised.first)  // the replay's history is kept
        #expect(book.alarm(.acRatio)?.acknowledgedBy == "nurse")
        #expect(book.alarm(.acRatio)?.acknowledgedAt == .seconds(9))
        #expect(book.alarm(.staleTelemetry)?.raised.at == .seconds(9))
        #expect(book.alarm(.staleTelemetry)?.raised.message == "stored STALE_TELEMETRY")
    }

    // MARK: - Every sequence

    /// Readings alone, all sequences of four over values on and around each line and its
    /// hysteresis edge: the level is always the oracle's.
    @Test(arguments: [false, true]) func everyReadingSequenceLandsOnTheOraclesLevel(strict: Bool) {
        let values: [Double] = [0, 8.9, 9, 9.5, 10, 10.5, 17.9, 18, 19, 20, 20.5]
        var checked = 0
        func walk(_ book: AlarmBook, _ path: [BookOp]) {
            guard path.count < 4 else { return }
            for value in values {
                let op = BookOp.read(.acRatioAgreement, value, strict: strict)
                var next = book
                let stamp = BookFixture.stamp(path.count)
                let out = next.perform(op, stamp: stamp)
                checked += 1
                let found = bookViolations(before: book, op: op, returned: out, after: next, stamp: stamp)
                guard found.isEmpty else {
                    Issue.record("\(path + [op]): \(found)")
                    return
                }
                walk(next, path + [op])
            }
        }
        walk(AlarmBook(), [])
        #expect(checked == (1...4).reduce(0) { sum, length in sum + (0..<length).reduce(1) { p, _ in p * values.count } })
    }

    /// Every sequence of four operations over a limit code and a latched code.
    @Test func everyShortSequenceKeepsTheInvariants() {
        let ops: [BookOp] = [
            .read(.acRatio, 0), .read(.acRatio, 9.5), .read(.acRatio, 19), .read(.acRatio, 25), .raise(.acRatio, .warning),
            .raise(.acRatio, .alarm), .latched(.dataGap, .warning), .latched(.dataGap, .alarm), .clear(.acRatio), .read(.acRatio, 10),
            .acknowledge(.acRatio, by: "nurse"), .acknowledge(.dataGap, by: "nurse"), .clearAll,
            .reconcile([BookFixture.stored(.dataGap, .warning, by: "nurse"), BookFixture.stored(.acRatio, .alarm)]),
        ]
        var checked = 0
        func walk(_ book: AlarmBook, _ path: [BookOp]) {
            guard path.count < 4 else { return }
            for op in ops {
                var next = book
                let stamp = BookFixture.stamp(path.count)
                let out = next.perform(op, stamp: stamp)
                checked += 1
                let found = bookViolations(before: book, op: op, returned: out, after: next, stamp: stamp)
                guard found.isEmpty else {
                    Issue.record("\(path + [op]): \(found)")
                    return
                }
                walk(next, path + [op])
            }
        }
        walk(AlarmBook(), [])
        #expect(checked == 14 + 14 * 14 + 14 * 14 * 14 + 14 * 14 * 14 * 14)
    }

    /// Long random runs over several codes, with acknowledgements by different users and
    /// reconciles with random stored sets.
    @Test func longRandomSequencesKeepTheInvariants() {
        var rng = SplitMix(seed: 12)
        let limitCodes: [AlarmCode] = [.acRatio, .citrateLoad, .staleTelemetry]
        let latchedCodes: [AlarmCode] = [.dataGap, .device("E7")]
        let all = limitCodes + latchedCodes
        let values: [Double] = [0, 8.9, 9, 9.5, 10, 17.9, 18, 19, 20, 30]
        let users = ["nurse", "doctor"]
        for run in 0..<300 {
            var book = AlarmBook()
            var path: [BookOp] = []
            for step in 0..<40 {
                let op: BookOp
                switch rng.next(below: 20) {
                case 0..<7: op = .read(limitCodes[rng.next(below: limitCodes.count)], values[rng.next(below: values.count)], strict: rng.next(below: 4) == 0)
                case 7..<9: op = .raise(limitCodes[rng.next(below: limitCodes.count)], rng.next(below: 2) == 0 ? .warning : .alarm)
                case 9..<12: op = .latched(latchedCodes[rng.next(below: latchedCodes.count)], rng.next(below: 2) == 0 ? .warning : .alarm)
                case 12..<14: op = .clear(limitCodes[rng.next(below: limitCodes.count)])
                case 14..<18: op = .acknowledge(all[rng.next(below: all.count)], by: users[rng.next(below: users.count)])
                case 18: op = .clearAll
                default:
                    let stored = (0..<rng.next(below: 4)).map { _ in
                        BookFixture.stored(
                            all[rng.next(below: all.count)], rng.next(below: 2) == 0 ? .warning : .alarm,
                            by: rng.next(below: 2) == 0 ? nil : users[rng.next(below: users.count)])
                    }
                    op = .reconcile(stored)
                }
                path.append(op)
                let before = book
                let stamp = BookFixture.stamp(step)
                let out = book.perform(op, stamp: stamp)
                let found = bookViolations(before: before, op: op, returned: out, after: book, stamp: stamp)
                if !found.isEmpty {
                    Issue.record("run \(run): \(path): \(found)")
                    return
                }
            }
        }
    }
}

/// A small seeded generator, so that a failing sequence can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below n: Int) -> Int { Int(next() % UInt64(n)) }
}
