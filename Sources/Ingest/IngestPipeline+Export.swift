import ApheresisCore
import Foundation
import LiveState
import RecordStore
import SeparatorProtocol

extension IngestPipeline {
    /// A run known only from its export file, whose alarms the store has not taken yet.
    struct PendingExportAlarms: Sendable {
        var export: ExportRun
        var runRef: Int64
    }

    /// An export file: decoded by the dialect, stored in one transaction through the same store
    /// path as live messages (so a run seen live and later as a file stays one run), then, for a run
    /// known only from the file, watched after the fact by the same watcher as live runs.
    func ingestExportFile(_ file: ExportFile) async -> IngestOutcome {
        health.update(deviceName) { $0.lastByteAt = DaemonClock.monotonic }
        // Alarms of files before go first, so that the store sees them in order.
        await flushExportAlarms()
        let hash = Digest.sha256Hex(file.bytes)
        let wall = DaemonClock.wallMilliseconds
        let export: ExportRun
        do {
            export = try settings.dialect.decodeExport(String(decoding: file.bytes, as: UTF8.self))
        } catch {
            if case .incomplete = error.reason, Date().timeIntervalSince1970 - file.modifiedAtUnixSeconds < 30 {
                // No end yet: a device that writes in place instead of renaming may still be
                // writing. Unchanged for 30 s, it is cut short: malformed.
                logger.debug("export file \(file.fileName) is not complete yet")
                return .incomplete
            }
            do {
                try await store.recordMalformedExport(
                    path: file.path, contentSHA256: hash, reason: error.description, raw: file.bytes, atUnixMilliseconds: wall)
                storeWrote()
            } catch {
                // The file stays where it is, so it is read again: nothing of it is lost.
                return storeFailed(error, doing: "keeping the malformed export file \(file.fileName)")
            }
            logger.error("export file \(file.fileName) is malformed, kept in quarantine: \(error.description)")
            return .malformed(reason: error.description)
        }
        do {
            let outcome = try await store.ingestExport(export, path: file.path, contentSHA256: hash, atUnixMilliseconds: wall)
            storeWrote()
            switch outcome {
            case .ingested(let runRef, let newSamples):
                health.update(deviceName) {
                    $0.messagesStored += 1
                    $0.serialNumber = export.device.serialNumber
                }
                logger.notice(
                    "ingested export file \(file.fileName): run \(export.runID), \(newSamples) new sample(s) of \(export.rows.count)",
                    metadata: ["device_serial": "\(export.device.serialNumber)", "run_id": "\(export.runID)"])
                if newSamples == export.rows.count {
                    pendingExportAlarms.append(PendingExportAlarms(export: export, runRef: runRef))
                    await flushExportAlarms()
                }
            case .duplicateFile:
                logger.info("export file \(file.fileName) was ingested before (same content)")
            }
            return .handled
        } catch {
            if Self.isStoreFailure(error) {
                let failure = store.failure(of: error).description
                if health.storeFailed(failure, now: DaemonClock.monotonic, wallMilliseconds: DaemonClock.wallMilliseconds) != nil {
                    logger.error("cannot store export file \(file.fileName): \(failure); will retry")
                }
            } else {
                logger.error("the store refused export file \(file.fileName): \(error); will retry")
            }
            return .retry
        }
    }

    /// Records the alarms of runs known only from their files, in order; stops at the first the
    /// store refuses (they are tried again at the next file or clock tick).
    func flushExportAlarms() async {
        while let next = pendingExportAlarms.first {
            guard await recordExportAlarms(next) else { return }
            pendingExportAlarms.removeFirst()
        }
    }

    /// True when done (recorded, or nothing to record); false while the store refuses writes.
    private func recordExportAlarms(_ pending: PendingExportAlarms) async -> Bool {
        let export = pending.export
        let runRef = pending.runRef
        let messages = export.messages()
        guard let first = messages.first else { return true }
        let profiles = settings.profiles
        var monitor: RunMonitor
        var transitions: [AlarmTransition]
        var gaps: [TelemetryGap] = []
        var replayFrom = 0
        if let start = messages.first(where: { $0.kind == .runStart }) {
            monitor = RunMonitor(runStart: start, profile: RunMonitor.profile(for: start, from: profiles), receivedAt: .zero)
            transitions = monitor.initialTransitions
        } else {
            monitor = RunMonitor(midRun: first, profile: RunMonitor.profile(for: first, from: profiles), receivedAt: .zero)
            transitions = monitor.initialTransitions
            let evaluation = monitor.ingest(first, receivedAt: .zero)
            transitions += evaluation.transitions
            gaps += evaluation.gaps
            replayFrom = 1
        }
        for (index, message) in messages.enumerated() where index >= replayFrom && message.kind != .runStart {
            // Receive times are unknown for a file: space them by the message index.
            let evaluation = monitor.ingest(message, receivedAt: .seconds(index))
            transitions += evaluation.transitions
            gaps += evaluation.gaps
        }
        var changes = transitions.compactMap(AlarmChange.init)
        guard !changes.isEmpty || !gaps.isEmpty else { return true }
        let serial = export.device.serialNumber
        let key = RunKey(serial: serial, runID: export.runID)
        let wall = DaemonClock.wallMilliseconds
        do {
            // Gaps of a run seen live were stored as they were found; a retry after a refused write
            // finds them stored and adds nothing.
            if !gaps.isEmpty, try await store.gaps(runRef: runRef).isEmpty {
                try await store.recordGaps(deviceSerial: serial, runID: export.runID, gaps: gaps, atUnixMilliseconds: wall)
                for gap in gaps { logger.warning("data gap in exported run \(export.runID): \(gap.sentence)") }
            }
            guard !changes.isEmpty else {
                storeWrote()
                return true
            }
            do {
                let refs = try await store.recordAlarmChanges(
                    deviceSerial: serial, runID: export.runID, changes: changes, atUnixMilliseconds: wall)
                learnAlarmRefs(changes, refs, key: key, at: nil)
            } catch let error as RecordStoreError where error.isAlarmDisagreement {
                // The run was seen live in part (its RUN_START, say): the alarms the live watch raised
                // stay its own; the file adds the others.
                let live = Set(try await store.alarms(runRef: runRef).map(\.code))
                changes.removeAll { live.contains($0.code) }
                transitions.removeAll { live.contains($0.code.rawValue) }
                logger.notice("exported run \(export.runID): alarms \(live.sorted().joined(separator: ", ")) were raised live; the file adds the others")
                guard !changes.isEmpty else { return true }
                let refs = try await store.recordAlarmChanges(
                    deviceSerial: serial, runID: export.runID, changes: changes, atUnixMilliseconds: wall)
                learnAlarmRefs(changes, refs, key: key, at: nil)
            }
            storeWrote()
        } catch {
            if Self.isStoreFailure(error) {
                health.storeFailed(store.failure(of: error).description, now: DaemonClock.monotonic, wallMilliseconds: wall)
                return false
            }
            logger.error("cannot record the alarms of exported run \(export.runID): \(error)")
            return true
        }
        AlarmJournal.log(transitions, runID: export.runID, serial: serial, logger: logger)
        publishAlarms(changes, key: key, at: wall)
        // The file's run is closed: its alarm ids are not needed after the stream has them (unless
        // the run is also watched live).
        if monitors[key] == nil { alarmRefs[key] = nil }
        return true
    }
}
