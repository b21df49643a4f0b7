import ApheresisCore
import LiveState
import RecordStore

extension IngestPipeline {
    /// The clock's turn, on the device loop's tick (also while the link is down): the restore if it
    /// is still owed, alarms and export alarms the store refused before, stale telemetry, and the
    /// open-run timeout.
    public func checkStaleness(now: Duration) async {
        await exclusively {
            if restorePending { await restoreOpenRunsInTurn(now: now) }
            for key in pendingAlarmChanges.keys { _ = await flushPending(key) }
            await flushExportAlarms()
            await evaluateAll(now: now) { $0.checkStaleness(now: now) }
            await closeSilentRuns(now: now)
        }
    }

    /// The link was lost or is heard again: an event in the record, and the open runs' LINK_DOWN.
    public func linkChanged(up: Bool, detail: String, now: Duration) async {
        do {
            try await store.recordEvent(
                kind: up ? "link_up" : "link_down", deviceSerial: serialNumber, detail: "\(deviceName): \(detail)",
                atUnixMilliseconds: DaemonClock.wallMilliseconds)
            storeWrote()
        } catch {
            _ = storeFailed(error, doing: "recording the link change")
        }
        await exclusively { await evaluateAll(now: now) { $0.linkChanged(up: up, now: now) } }
    }

    /// Runs whose RUN_END never came: closed after the open-run timeout without any message, with
    /// their alarms cleared for that reason and an event in the run's record.
    func closeSilentRuns(now: Duration) async {
        for (key, var monitor) in monitors {
            guard let last = lastMessageAt[key], now - last >= settings.openRunTimeout else { continue }
            // Its alarms still waiting for the store first, or the close would leave them active.
            guard await flushPending(key) else { continue }
            let reason = "no message for \(AlarmJournal.number(settings.openRunTimeout.seconds / 60)) min: closed by timeout without RUN_END"
            let transitions = monitor.close(reason: reason, now: now)
            let changes = transitions.compactMap(AlarmChange.init)
            do {
                guard let ref = try await runReference(key) else { continue }
                try await store.closeRunAbandoned(
                    runRef: ref, reason: reason, alarms: changes, atUnixMilliseconds: DaemonClock.wallMilliseconds)
                storeWrote()
            } catch {
                _ = storeFailed(error, doing: "closing run \(key.runID) by timeout")
                continue
            }
            logger.warning("run \(key.runID): \(reason)", metadata: metadata())
            AlarmJournal.log(transitions, runID: key.runID, serial: key.serial, logger: logger)
            publishAlarms(changes, key: key)
            forget(key)
        }
    }

    /// The run's store id: known from its commits or its restore; read only for a run known otherwise.
    func runReference(_ key: RunKey) async throws -> Int64? {
        if let known = runRefs[key] { return known }
        let ref = try await store.run(deviceSerial: key.serial, runID: key.runID)?.id
        runRefs[key] = ref
        return ref
    }

    func evaluateAll(now: Duration, _ step: (inout RunMonitor) -> [AlarmTransition]) async {
        for (key, monitor) in monitors {
            var next = monitor
            let transitions = step(&next)
            // The watcher moves on whether or not the store can take it: an alarm is shown (journal,
            // stream) when it happens, and written as soon as the store takes writes again.
            monitors[key] = next
            guard !transitions.isEmpty else { continue }
            await recordWithoutMessage(transitions, key: key)
        }
    }

    /// Alarm changes that no message carries: written (after any still pending), logged and streamed.
    func recordWithoutMessage(_ transitions: [AlarmTransition], key: RunKey) async {
        AlarmJournal.log(transitions, runID: key.runID, serial: key.serial, logger: logger)
        let changes = transitions.compactMap(AlarmChange.init)
        guard !changes.isEmpty else { return }
        let wall = DaemonClock.wallMilliseconds
        pendingAlarmChanges[key, default: []].append((changes, wall, DaemonClock.monotonic))
        _ = await flushPending(key)
        publishAlarms(changes, key: key, at: wall)
    }

    /// Writes the run's pending alarm changes in order; false while the store refuses them.
    func flushPending(_ key: RunKey) async -> Bool {
        while let next = pendingAlarmChanges[key]?.first {
            do {
                let refs = try await store.recordAlarmChanges(
                    deviceSerial: key.serial, runID: key.runID, changes: next.changes, atUnixMilliseconds: next.atUnixMilliseconds)
                learnAlarmRefs(next.changes, refs, key: key, at: next.monotonic)
                storeWrote()
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // Written before a crash, or the run is closed: nothing to keep waiting for.
                logger.error("run \(key.runID): alarm changes refused by the store (\(error)); left out", metadata: metadata())
            } catch {
                _ = storeFailed(error, doing: "writing alarm changes of run \(key.runID)")
                return false
            }
            pendingAlarmChanges[key]?.removeFirst()
            if pendingAlarmChanges[key]?.isEmpty == true { pendingAlarmChanges[key] = nil }
        }
        return true
    }
}
