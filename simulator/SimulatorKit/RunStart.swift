import Quantities

/// Starting the simulator's run: a run of the same scenario that was in
/// progress when the simulator stopped goes on from where it was. The engine
/// is deterministic, so replaying it silently to the last recorded time
/// restores its state, and what it produced up to then is already in the
/// outbox. A run of another scenario is ended (its queued messages are still
/// delivered) and a new run starts with the next run number.
public struct RunStart {
    public var runID: String
    public var engine: RunEngine
    /// Simulated time the run resumes at (zero for a new run).
    public var resumedAt: Seconds

    public init(scenario: Scenario, outbox: Outbox, seed: UInt64, log: (String) -> Void) throws(OutboxError) {
        if let active = outbox.activeRun, active.scenarioName == scenario.name {
            runID = active.runID
            engine = RunEngine(scenario: scenario, runID: active.runID, seed: active.seed)
            _ = engine.advance(to: active.lastTime)
            resumedAt = active.lastTime
            log("resuming run \(active.runID) at \(active.lastTime.minutes) min, \(outbox.pending.count) message(s) queued")
            return
        }
        if let stale = outbox.activeRun {
            log("abandoning run \(stale.runID) of scenario \(stale.scenarioName); its queued messages are still sent")
            try outbox.endRun()
        }
        let number = String(outbox.lastRunNumber + 1)
        runID = "RUN-\(scenario.device.serialNumber)-\(String(repeating: "0", count: max(0, 4 - number.count)))\(number)"
        engine = RunEngine(scenario: scenario, runID: runID, seed: seed)
        try outbox.beginRun(runID: runID, seed: seed, scenarioName: scenario.name)
        resumedAt = .zero
    }
}
