import ApheresisCore
import Foundation
import LiveState
import RecordStore

extension IngestPipeline {
    /// Whether this pipeline watches the run now (it may have restored it after a restart).
    public func isWatching(deviceSerial: String, runID: String) -> Bool {
        monitors[RunKey(serial: deviceSerial, runID: runID)] != nil
    }

    /// A preset change for one of this device's open runs (RunControl): checked against the run's
    /// watcher, recorded with its audit entry, then applied. Nil when this pipeline does not watch
    /// the run. Serialized with the device's messages, so no message is judged by lines the store
    /// does not hold, and no change is recorded but not applied.
    public func changePresets(
        deviceSerial: String, runID: String, runRef: Int64, changes: [RunPreset: Double], mayRaiseLines: Bool, reason: String,
        by user: String
    ) async throws -> RunWatch? {
        guard deviceSerial == serialNumber || monitors.keys.contains(where: { $0.serial == deviceSerial }) else { return nil }
        let key = RunKey(serial: deviceSerial, runID: runID)
        return try await exclusively {
            if monitors[key] == nil, case .watching(let restored) = await restoreMonitor(key, now: DaemonClock.monotonic) {
                monitors[key] = restored
            }
            guard var monitor = monitors[key] else { return nil }
            let raised = monitor.raisedLines(changes)
            if !mayRaiseLines, !raised.isEmpty { throw RaisesLines(presets: raised) }
            try monitor.changePresets(changes)  // on a copy: refused as a whole, nothing recorded
            _ = try await store.recordPresetChange(
                runRef: runRef, changes: Dictionary(uniqueKeysWithValues: changes.map { ($0.key.rawValue, $0.value) }), reason: reason,
                by: user, atUnixMilliseconds: DaemonClock.wallMilliseconds)
            presetChanges[key] = monitor.presetChanges
            monitors[key] = monitor
            let watch = RunWatch(monitor: monitor, deviceSerial: deviceSerial, runRef: runRef)
            outlets.watches?.record(watch, addPoint: false)
            let summary = changes.sorted { $0.key < $1.key }.map { "\($0.key.rawValue) = \($0.value)" }.joined(separator: ", ")
            logger.notice("run \(runID): presets changed by \(user): \(summary) (reason: \(reason))", metadata: metadata())
            outlets.feed?.publish(
                .presets(
                    StreamEvent.Presets(
                        device: deviceName, deviceSerial: deviceSerial, runId: runID, changedBy: user, reason: reason, watch: watch,
                        at: Date())))
            return watch
        }
    }

    /// An operator's acknowledgement of one of this pipeline's run alarms, in turn with the device's
    /// messages: `record` writes it (with its audit entry), then the watcher learns of it. A latched
    /// alarm (device, data quality) ends with its acknowledgement, so the next one is a new alarm with
    /// its own row, stream event and banner. Nil when this pipeline does not watch the run.
    public func acknowledge(
        deviceSerial: String, runID: String, code: String, record: @Sendable () async throws -> AlarmRow
    ) async throws -> AlarmRow? {
        let key = RunKey(serial: deviceSerial, runID: runID)
        // Decided in the turn: at start the open runs may still be being restored.
        return try await exclusively {
            guard deviceSerial == serialNumber || monitors.keys.contains(where: { $0.serial == deviceSerial }) else { return nil }
            if monitors[key] == nil, case .watching(let restored) = await restoreMonitor(key, now: DaemonClock.monotonic) {
                monitors[key] = restored
            }
            guard monitors[key] != nil else { return nil }
            // Alarms the store has not taken yet go first: the acknowledgement must find its alarm.
            _ = await flushPending(key)
            let row = try await record()
            guard var monitor = monitors[key], let user = row.acknowledgedBy else { return row }
            let now = DaemonClock.monotonic
            // The first transition is the acknowledgement the store already holds; what follows
            // (a latched alarm's end) is written here.
            let after = Array(monitor.acknowledge(code: AlarmCode(rawValue: code), by: user, now: now).dropFirst())
            monitors[key] = monitor
            if !after.isEmpty { await recordWithoutMessage(after, key: key) }
            return row
        }
    }
}
