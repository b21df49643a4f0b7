import ApheresisCore
import Quantities
import SeparatorProtocol
import Testing

// Gaps are data: messages missing from the device's sequence and TICKs missing from the run time
// raise DATA_GAP and lower the run's completeness; pauses and a slow but regular device do not.

extension Harness {
    /// Sends `n` TICKs with consecutive sequence numbers.
    mutating func numberedTicks(_ n: Int, paused: Bool = false) {
        for _ in 0..<n {
            feed.sequence += 1
            send(feed.tick(paused: paused))
        }
    }

    /// `n` TICKs the device sent that never arrive (sequence numbers used up).
    mutating func lostTicks(_ n: Int) {
        for _ in 0..<n {
            feed.sequence += 1
            _ = feed.tick()
        }
    }

    /// `n` TICK periods in which the device sent nothing (RUN_TIME goes on, no sequence used).
    mutating func unsentTicks(_ n: Int) {
        for _ in 0..<n { _ = feed.tick() }
    }
}

@Suite struct TelemetryGaps {
    @Test func ticksTheDeviceDidNotSendAreAWarningWithTheSpanNamed() throws {
        var h = Harness()
        h.numberedTicks(10)
        h.unsentTicks(3)
        h.numberedTicks(1)
        let raised = try #require(h.of(.dataGap).first)
        #expect(raised.kind.isRaised && raised.level == .warning)
        #expect(raised.value == 3 && raised.unit == "TICKs")
        #expect(raised.message.contains("between run time 0.83 and 1.17 min: 3 TICKs of 5 s missing"), "\(raised.message)")
        let c = h.monitor.completeness
        #expect(c.ticksReceived == 11 && c.ticksMissing == 3 && c.messagesMissing == 0)
        #expect(abs(c.fraction - 11.0 / 14.0) < 1e-12)
        #expect(!c.isComplete)
    }

    @Test func messagesMissingFromTheSequenceAreAnAlarmNamingTheNumbers() throws {
        var h = Harness()
        h.numberedTicks(5)  // #2...#6
        h.lostTicks(2)  // #7, #8 acknowledged by someone else
        h.feed.sequence += 1
        let e = h.send(h.feed.tick())  // #9
        #expect(e.gaps.contains { $0.kind == .sequence && $0.firstMissingSequence == 7 && $0.lastMissingSequence == 8 && $0.missingCount == 2 })
        let raised = try #require(h.of(.dataGap).first)
        #expect(raised.level == .alarm)
        #expect(raised.message.contains("Messages #7 to #8 of the separator never reached the record intact (2 messages missing"), "\(raised.message)")
        // The same message revealed both: one raise that says both.
        #expect(h.of(.dataGap).count == 1 && raised.message.contains("2 TICKs of 5 s missing"), "\(raised.message)")
        #expect(h.monitor.completeness.messagesMissing == 2)
        #expect(h.monitor.completeness.ticksMissing == 2)
        #expect(e.gaps.map(\.kind) == [.sequence, .runTime])
    }

    @Test func aSlowButRegularDeviceHasNoGap() {
        var h = Harness()
        h.feed.tickSeconds = 60
        h.numberedTicks(20)
        #expect(h.of(.dataGap).isEmpty, "\(h.of(.dataGap).map(\.message))")
        #expect(h.monitor.completeness.isComplete && h.monitor.completeness.ticksReceived == 20)
        #expect(h.monitor.completeness.tickInterval == Seconds(60))
    }

    @Test func coarseRunTimeAtOneSecondTicksIsNoGap() {
        // RUN_TIME sent with one decimal (0.1 min = 6 s) while the device ticks every second.
        var h = Harness()
        h.feed.tickSeconds = 1
        for _ in 0..<120 {
            h.feed.sequence += 1
            _ = h.feed.tick()
            h.send(h.feed.message(overrides: [.runTime: (h.feed.runTime / 6).rounded(.down) * 0.1]))
        }
        #expect(h.of(.dataGap).isEmpty, "\(h.of(.dataGap).map(\.message))")
        #expect(h.monitor.completeness.isComplete)
        // Ten seconds of those TICKs lost: both clocks move, and it is found.
        h.lostTicks(10)
        h.feed.sequence += 1
        _ = h.feed.tick()
        h.send(h.feed.message(overrides: [.runTime: (h.feed.runTime / 6).rounded(.down) * 0.1]))
        #expect(h.monitor.completeness.messagesMissing == 10)
        // RUN_TIME at 6 s resolution moved by one or two steps over those 11 s: at least 5 TICKs
        // are missing by the run time; the sequence says exactly 10.
        #expect((5...10).contains(h.monitor.completeness.ticksMissing), "\(h.monitor.completeness)")
    }

    @Test func aPauseIsNoGap() {
        var h = Harness()
        h.numberedTicks(6)
        h.numberedTicks(24, paused: true)  // two minutes paused: TICKs go on, RUN_TIME stands
        h.numberedTicks(6)
        #expect(h.of(.dataGap).isEmpty)
        #expect(h.monitor.completeness.fraction == 1 && h.monitor.completeness.ticksReceived == 12)
    }

    @Test func aGapAtRunEndIsReportedAndClosedWithTheRun() {
        var h = Harness()
        h.numberedTicks(10)
        h.unsentTicks(4)
        h.feed.sequence += 1
        let e = h.send(h.feed.tick(kind: .runEnd))
        #expect(e.gaps.map(\.missingCount) == [4])
        #expect(h.of(.dataGap).map(\.kind.isRaised) == [true, false])
        #expect(h.of(.dataGap).last?.kind.clearReason == "run ended")
        #expect(h.monitor.completeness.ticksMissing == 4)
    }

    @Test func aRunWatchedFromTheMiddleCountsWhatCameBefore() throws {
        var feed = Feed()
        feed.runTime = 30 * 60
        feed.elapsed = 30 * 60
        feed.sequence = 400
        var first = feed.tick()
        var monitor = RunMonitor(midRun: first, profile: .standard, receivedAt: feed.now)
        var gaps: [TelemetryGap] = []
        for _ in 0..<5 {
            gaps += monitor.ingest(first, receivedAt: feed.now).gaps
            feed.sequence += 1
            first = feed.tick()
        }
        // Judged once the period is learned: 30 min at 5 s before the first TICK seen.
        let gap = try #require(gaps.first { $0.kind == .runTime })
        #expect(gap.runTimeBefore == .zero && gap.missingCount == 360)
        #expect(monitor.activeAlarms.contains { $0.code == .dataGap })
    }

    @Test func exportMessagesWithoutSequenceNumbersAreNotSequenceGaps() {
        var h = Harness()
        h.feed.sequence = 0
        h.ticks(10)
        #expect(h.of(.dataGap).isEmpty)
    }

    @Test func aResentMessageIsNoGap() {
        var h = Harness()
        h.numberedTicks(5)
        let resent = h.feed.message()  // the same number again (a resend after a lost ACK)
        h.send(resent)
        h.numberedTicks(3)
        #expect(h.of(.dataGap).isEmpty)
    }
}

@Suite struct CompletenessOfARecordedRun {
    /// A run as a store holds it: RUN_START, a minute of TICKs every 5 s, RUN_END.
    static func messages(dropping dropped: Set<Int> = []) -> [SeparatorMessage] {
        let order = Order(runID: "R", procedure: .cmnc, runStart: testStart)
        var out = [SeparatorMessage(sequenceNumber: 100, device: testDevice, timestamp: testStart, kind: .runStart, order: order)]
        for tick in 1...11 where !dropped.contains(tick) {
            let at = testStart.adding(seconds: Int64(tick * 5))
            out.append(
                SeparatorMessage(
                    sequenceNumber: 100 + UInt64(tick), device: testDevice, timestamp: at, kind: .tick, order: order,
                    results: [record(1, .runTime, Double(tick * 5) / 60), record(2, .collectVolume, Double(tick) * 15)]))
        }
        let end = testStart.adding(seconds: 60)
        out.append(
            SeparatorMessage(
                sequenceNumber: 112, device: testDevice, timestamp: end, kind: .runEnd, order: order,
                results: [record(1, .runTime, 1), record(2, .collectVolume, 180)]))
        return out
    }

    @Test func aCompleteRunIsComplete() throws {
        let c = try #require(TelemetryCompleteness.replaying(Self.messages()))
        #expect(c.isComplete && c.ticksReceived == 12 && c.ticksExpected == 12, "\(c)")
    }

    @Test func twoTicksLostAreTwoMessagesAndTwoTicksMissing() throws {
        let c = try #require(TelemetryCompleteness.replaying(Self.messages(dropping: [4, 5])))
        #expect(c.messagesMissing == 2 && c.ticksMissing == 2 && c.ticksReceived == 10, "\(c)")
    }
}
