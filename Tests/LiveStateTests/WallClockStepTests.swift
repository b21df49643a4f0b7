import Testing

@testable import LiveState

@Suite("Wall clock steps are told from slewing and from late sleeps")
struct WallClockStepTests {
    /// Looks once a second; `wall` is where the wall clock stands at each look, in ms.
    func steps(_ walls: [Int64], monotonicStepMilliseconds: Int64 = 1000) -> [WallClockStep] {
        var detector = WallClockStepDetector()
        var found: [WallClockStep] = []
        for (i, wall) in walls.enumerated() {
            if let step = detector.observe(
                wallMilliseconds: wall, monotonic: .milliseconds(Int64(i) * monotonicStepMilliseconds))
            {
                found.append(step)
            }
        }
        return found
    }

    @Test func anNTPStepForwardsOfOneHourIsOneStepOfPlus3600Seconds() {
        let base: Int64 = 1_765_000_000_000
        let found = steps([base, base + 1000, base + 2000 + 3_600_000, base + 3000 + 3_600_000])
        #expect(found == [WallClockStep(stepSeconds: 3600, wallBeforeUnixMilliseconds: base + 1000, wallAfterUnixMilliseconds: base + 2000 + 3_600_000)])
    }

    @Test func aStepBackwardsIsNegative() {
        let base: Int64 = 1_765_000_000_000
        let found = steps([base, base + 1000 - 3_600_000, base + 2000 - 3_600_000])
        #expect(found.map(\.stepSeconds) == [-3600])
    }

    @Test func slewingAt500ppmForADayIsNoStep() {
        let base: Int64 = 1_765_000_000_000
        // 0.5 ms more wall time every second, for 24 h: 43 s in all, never 1 s at once.
        var walls: [Int64] = []
        var wall = Double(base)
        for _ in 0..<86_400 {
            walls.append(Int64(wall.rounded()))
            wall += 1000.5
        }
        #expect(steps(walls).isEmpty)
    }

    @Test func aLookTakenLateMovesBothClocksAndIsNoStep() {
        // The monotonic clock says 30 s passed between looks (a stalled process); the wall clock agrees.
        var detector = WallClockStepDetector()
        #expect(detector.observe(wallMilliseconds: 1_000, monotonic: .seconds(1)) == nil)
        #expect(detector.observe(wallMilliseconds: 31_000, monotonic: .seconds(31)) == nil)
    }

    @Test func justOverTheThresholdIsAStepAndJustUnderIsNot() {
        var detector = WallClockStepDetector(threshold: .seconds(1))
        _ = detector.observe(wallMilliseconds: 0, monotonic: .zero)
        #expect(detector.observe(wallMilliseconds: 2_000, monotonic: .seconds(1)) == nil)  // exactly 1 s: not over
        #expect(detector.observe(wallMilliseconds: 4_001, monotonic: .seconds(2))?.stepSeconds == 1.001)
    }
}

@Suite("Ages the API shows are measured on the monotonic clock")
struct MonotonicAgeTests {
    @Test func anAlarmRaisedHereAgesOnTheMonotonicClockUntilItClears() {
        let board = RunWatchBoard()
        board.alarmRaised(id: 7, at: .seconds(100))
        #expect(board.alarmAge(id: 7, now: .seconds(105.5)) == .seconds(5.5))
        #expect(board.alarmAge(id: 8, now: .seconds(105)) == nil, "an alarm this daemon did not raise has no monotonic age")
        board.alarmEnded(id: 7)
        #expect(board.alarmAge(id: 7, now: .seconds(106)) == nil)
    }

    @Test func alarmsThatNeverClearDoNotPileUp() {
        let board = RunWatchBoard()
        for id in 0..<Int64(RunWatchBoard.alarmLimit + 10) { board.alarmRaised(id: id, at: .seconds(Double(id))) }
        #expect(board.alarmAge(id: 0, now: .seconds(10_000)) == nil, "the oldest go first")
        #expect(board.alarmAge(id: Int64(RunWatchBoard.alarmLimit + 9), now: .seconds(10_000)) != nil)
    }
}
