import LiveState
import Logging
import RecordStore

/// At start, before any link opens: open runs that have heard nothing for longer than the open-run
/// timeout are closed (their RUN_END never came, or their separator is no longer configured), so no
/// run stays open for ever and none is watched again only to be closed a moment later.
public enum OpenRunSweep {
    public static func closeSilentRuns(store: RecordStore, timeout: Duration, logger: Logger) async {
        let now = DaemonClock.wallMilliseconds
        let limit = Int64(timeout.components.seconds) * 1000
        do {
            for run in try await store.openRuns() {
                let last = try await store.lastMessageReceivedAt(runRef: run.id) ?? run.openedAtUnixMilliseconds
                guard now - last >= limit else { continue }
                let reason =
                    "no message for \(AlarmJournal.number(Double(now - last) / 60_000)) min (limit \(AlarmJournal.number(Double(limit) / 60_000)) min): "
                    + "closed by timeout without RUN_END"
                let alarms = try await store.activeAlarms(runRef: run.id).map {
                    AlarmChange(kind: .cleared, code: $0.code, level: $0.level, reason: reason)
                }
                try await store.closeRunAbandoned(runRef: run.id, reason: reason, alarms: alarms, atUnixMilliseconds: now)
                logger.warning(
                    "run \(run.runID): \(reason)", metadata: ["device_serial": "\(run.deviceSerial)", "run_id": "\(run.runID)"])
            }
        } catch {
            logger.error("cannot close the open runs silent past the timeout: \(error); they are left open")
        }
    }
}
